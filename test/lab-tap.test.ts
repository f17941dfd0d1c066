// The inspector's tap on one ws socket: frames both ways while attached, nothing once detached.
import t, { type Test } from 'tap'
import { WebSocketServer, WebSocket } from 'ws'
import { FrameTap, PREVIEW_BYTES, type FrameEvent } from '../src/lab/tap.js'
import { closed, connect, nextMessage, until } from './helpers/index.js'

/** A plain ws server on 127.0.0.1:0; resolves with a connected client and the server's side of it. */
async function pair (t: Test): Promise<{ client: WebSocket, server: WebSocket }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  t.teardown(() => new Promise<void>((resolve) => { for (const c of wss.clients) c.terminate(); wss.close(() => resolve()) }))
  await new Promise((resolve) => wss.once('listening', resolve))
  const serverSide = new Promise<WebSocket>((resolve) => wss.once('connection', resolve))
  const port = (wss.address() as { port: number }).port
  const client = await connect(t, `ws://127.0.0.1:${port}/`)
  const server = await serverSide
  server.on('message', (data: Buffer, isBinary: boolean) => server.send(data, { binary: isBinary }))
  return { client, server }
}

t.test('the tap sees messages in and out, in order, with opcode, size and preview', async (t) => {
  const { client, server } = await pair(t)
  const events: FrameEvent[] = []
  const tap = new FrameTap(server, (e) => events.push(e))
  client.send('héllo')
  await nextMessage(client)
  client.send(Buffer.from([0xde, 0xad]))
  await nextMessage(client)
  t.same(events, [
    { dir: 'in', opcode: 'text', size: 6, fin: true, truncated: false, text: 'héllo' },
    { dir: 'out', opcode: 'text', size: 6, fin: true, truncated: false, text: 'héllo' },
    { dir: 'in', opcode: 'binary', size: 2, fin: true, truncated: false, hex: 'dead' },
    { dir: 'out', opcode: 'binary', size: 2, fin: true, truncated: false, hex: 'dead' }
  ], 'a message shows before the reply it causes')
  tap.detach()
})

t.test('outgoing fragments show frame by frame; pings, pongs and the close both ways', async (t) => {
  const { client, server } = await pair(t)
  const events: FrameEvent[] = []
  let ended = false
  // eslint-disable-next-line no-new -- a tap hooks the socket in its constructor
  new FrameTap(server, (e) => events.push(e), () => { ended = true })
  server.send(Buffer.from('abc'), { binary: false, fin: false })
  server.send(Buffer.from('def'), { binary: false, fin: true })
  t.equal((await nextMessage(client)).text, 'abcdef')
  server.ping(Buffer.from('hi'))
  client.ping(Buffer.from('yo'))
  await until(() => events.filter((e) => e.opcode === 'pong').length === 2, 'both pongs')
  server.close(4001, 'bye')
  t.same(await closed(client), { code: 4001, reason: 'bye' })
  await until(() => ended, 'the tap to report the end')
  t.same(events.map((e) => [e.dir, e.opcode, e.fin]), [
    ['out', 'text', false], ['out', 'continuation', true],
    ['out', 'ping', true], ['in', 'ping', true], ['out', 'pong', true], ['in', 'pong', true],
    ['out', 'close', true], ['in', 'close', true]
  ], 'every frame, in order: a ping before the pong answering it')
  const close = events.find((e) => e.dir === 'out' && e.opcode === 'close')!
  t.same([close.code, close.text, close.size], [4001, 'bye', 5])
})

t.test('a frame is shown up to 1024 bytes and marked truncated', async (t) => {
  const { client, server } = await pair(t)
  const events: FrameEvent[] = []
  // eslint-disable-next-line no-new -- a tap hooks the socket in its constructor
  new FrameTap(server, (e) => events.push(e))
  client.send(Buffer.alloc(5000, 0xab))
  await nextMessage(client)
  t.equal(events[0]!.size, 5000)
  t.equal(events[0]!.hex!.length, PREVIEW_BYTES * 2, '1024 bytes in hex')
  t.equal(events[0]!.truncated, true)
})

t.test('detach gives the socket back its own methods and listeners', async (t) => {
  const { client, server } = await pair(t)
  const listeners = ['message', 'ping', 'pong', 'close'].map((e) => server.listenerCount(e))
  const events: FrameEvent[] = []
  const tap = new FrameTap(server, (e) => events.push(e))
  t.ok(Object.hasOwn(server, 'send'), 'send is shadowed while tapped')
  tap.detach()
  for (const name of ['send', 'ping', 'pong', 'close']) t.notOk(Object.hasOwn(server, name), `${name} is the prototype's again`)
  t.same(['message', 'ping', 'pong', 'close'].map((e) => server.listenerCount(e)), listeners, 'no listener left behind')
  client.send('after')
  await nextMessage(client)
  t.same(events, [], 'nothing is seen once detached')
})
