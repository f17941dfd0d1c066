import t from 'tap'
import * as ws from 'ws'
import type { EventEmitter } from 'node:events'

// ws's own frame parser (exported at run time, absent from its type definitions).
const { Receiver } = ws as unknown as { Receiver: new (options: { isServer: boolean }) => EventEmitter & { write: (chunk: Buffer) => void } }
import { dataFrame, textFrame } from '../src/transport/frames.js'

// Each size class of the length field, read back as a client would read it.
for (const size of [0, 125, 126, 65535, 65536, 200000]) {
  t.test(`textFrame of ${size} bytes parses as one text message`, async (t) => {
    const payload = Buffer.alloc(size, 'é'.charCodeAt(0) % 128)
    const receiver = new Receiver({ isServer: false })
    const got = new Promise<[Buffer, boolean]>((resolve) => receiver.on('message', (data: Buffer, isBinary: boolean) => resolve([data, isBinary])))
    receiver.write(textFrame(payload))
    const [data, isBinary] = await got
    t.equal(isBinary, false)
    t.ok(Buffer.from(data).equals(payload))
  })
}

t.test('dataFrame of binary bytes parses as one binary message', async (t) => {
  const payload = Buffer.from([0, 255, 1, 254])
  const receiver = new Receiver({ isServer: false })
  const got = new Promise<[Buffer, boolean]>((resolve) => receiver.on('message', (data: Buffer, isBinary: boolean) => resolve([data, isBinary])))
  receiver.write(dataFrame(payload, true))
  const [data, isBinary] = await got
  t.equal(isBinary, true)
  t.ok(Buffer.from(data).equals(payload))
})
