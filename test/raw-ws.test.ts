// The raw WebSocket client the bench and these tests share: its framing must agree with RFC 6455
// however the bytes are split across reads, or the bench counts wrong and the tests read garbage.
import t from 'tap'
import { pino } from 'pino'
import { connectWs, deflateMessage, encodeFrame, FrameCounter, FrameReader, MessageQueue, OP_TEXT, type ServerFrame } from '../bench/raw-ws.js'
import { parseConfig, startEchohub } from '../index.js'

/** An unmasked frame as a server sends it. */
function serverFrame (len: number, opcode = 1, fin = true): Buffer {
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8
  const b = Buffer.alloc(2 + ext + len, 0x41)
  b[0] = (fin ? 0x80 : 0) | opcode
  if (ext === 0) {
    b[1] = len
  } else if (ext === 2) {
    b[1] = 126
    b.writeUInt16BE(len, 2)
  } else {
    b[1] = 127
    b.writeBigUInt64BE(BigInt(len), 2)
  }
  return b
}

/** Feeds `all` in random pieces through one reused buffer, as the load generator's shared read buffer does. */
function feed (all: Buffer, push: (chunk: Buffer) => void, seed: number): void {
  let x = seed
  const shared = Buffer.alloc(all.length)
  for (let i = 0; i < all.length;) {
    x = (x * 1103515245 + 12345) % 2 ** 31
    const piece = all.subarray(i, i + 1 + (x % 300))
    piece.copy(shared)
    push(shared.subarray(0, piece.length))
    shared.fill(0xff) // anything kept without a copy is now garbage
    i += piece.length
  }
}

t.test('encodeFrame masks the payload with the key it writes, and leaves it plain when asked', async (t) => {
  for (const len of [0, 5, 125, 126, 65535, 65536]) {
    const payload = Buffer.alloc(len, 0x61)
    const masked = encodeFrame(payload, 2)
    const ext = len < 126 ? 0 : len < 65536 ? 2 : 8
    t.equal(masked[0], 0x82, `FIN and opcode (${len} B)`)
    t.equal(masked[1]! & 0x80, 0x80, 'mask bit')
    const key = masked.subarray(2 + ext, 6 + ext)
    const body = Buffer.from(masked.subarray(6 + ext))
    for (let i = 0; i < body.length; i++) body[i]! ^= key[i & 3]!
    t.ok(body.equals(payload), `unmasks to the payload (${len} B)`)
    t.ok(encodeFrame(payload, 1, false).subarray(2 + ext).equals(payload), `plain when mask is false (${len} B)`)
  }
})

t.test('FrameCounter counts every message however reads split it, and hands over pings and short chatter', async (t) => {
  for (const shortLen of [-1, 1]) {
    for (let seed = 1; seed <= 40; seed++) {
      const frames: Buffer[] = []
      let messages = 0
      let short = 0
      for (let i = 0; i < 60; i++) {
        const kind = (seed * 31 + i * 7) % 10
        if (kind === 0) { // a one-byte text frame: socket.io's ping when shortLen is 1
          frames.push(serverFrame(1))
          if (shortLen >= 1) short++
          else messages++
        } else if (kind === 1) { // a ping
          frames.push(serverFrame(2, 9))
          short++
        } else if (kind === 2) { // one message in two fragments
          frames.push(serverFrame(200, 1, false), serverFrame(300, 0))
          messages++
        } else {
          frames.push(serverFrame(2 + ((seed * i) % 70_000)))
          messages++
        }
      }
      let counted = 0
      const seen: string[] = []
      const counter = new FrameCounter((op, p) => { seen.push(`${op}:${p.toString()}`) }, shortLen)
      feed(Buffer.concat(frames), (chunk) => { counted += counter.push(chunk) }, seed)
      if (counted !== messages || seen.length !== short || !seen.every((s) => s === '1:A' || s === '9:AA')) {
        t.fail(`seed ${seed}, shortLen ${shortLen}: counted ${counted} of ${messages}, ${seen.length} of ${short} short`)
        return
      }
    }
  }
  t.pass('every split counted right')
})

t.test('FrameReader returns whole frames across splits, and hands over the rest after stop()', async (t) => {
  const frames = [serverFrame(3), serverFrame(130), serverFrame(70_000), serverFrame(0, 8)]
  const got: ServerFrame[] = []
  const reader = new FrameReader((f) => { got.push({ ...f, payload: Buffer.from(f.payload) }) })
  feed(Buffer.concat(frames), (chunk) => reader.push(Buffer.from(chunk)), 7)
  t.same(got.map((f) => [f.opcode, f.payload.length]), [[1, 3], [1, 130], [1, 70_000], [8, 0]])

  const stopping = new FrameReader(() => stopping.stop())
  stopping.push(Buffer.concat([serverFrame(3), serverFrame(4)]))
  t.ok(stopping.rest().equals(serverFrame(4)), 'the frame after stop() is left in rest()')
})

t.test('over wss with permessage-deflate: pre-deflated frames go out, compressed replies come back and inflate', async (t) => {
  t.chdir(t.testdir()) // --tls-self-signed keeps its certificate in .echohub/ here
  const parsed = parseConfig(['--host', '127.0.0.1', '--echo-port', '0', '--only', 'echo', '--tls-self-signed', '--compression', '--log-level', 'silent'], {})
  if (parsed.help) throw new Error('unexpected')
  const hub = await startEchohub(parsed.config, { logger: pino({ level: 'silent' }) })
  t.teardown(() => hub.close())
  const port = hub.servers[0]!.port
  const conn = await connectWs(port, '/raw', { tls: true, deflate: true })
  t.teardown(() => conn.socket.destroy())
  const messages = new MessageQueue(conn)
  const text = 'the same words again '.repeat(500)
  conn.socket.write(encodeFrame(deflateMessage(text), OP_TEXT, true, true))
  conn.socket.write(encodeFrame('short'))
  t.equal((await messages.next()).data.toString(), text, 'a compressed message sent and echoed compressed, inflated')
  t.equal((await messages.next()).data.toString(), 'short', 'a plain one beside it')

  const plain = await connectWs(port, '/raw', { tls: true })
  t.teardown(() => plain.socket.destroy())
  await t.rejects(connectWs(port, '/raw', { deflate: true, timeoutMs: 2000 }), 'plain TCP to a TLS port gets no upgrade')
})
