// The device lab's controls on the echo endpoint, checked frame by frame from a raw client.
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { WebSocket } from 'ws'
import { echo, echohubRegistry, stats, type EchoOptions, type RegistryPluginOptions } from '../index.js'
import { LabSession } from '../src/lab/session.js'
import { closed, connect, listen, nextJson, until } from './helpers/index.js'
import { isUpgraded, rawClient, rawUpgrade, type FrameReader } from './helpers/raw.js'

const TEXT = 0x1
const BINARY = 0x2
const CONTINUATION = 0x0
const CLOSE = 0x8
const PING = 0x9
const PONG = 0xa

async function echoServer (t: Test, registry: RegistryPluginOptions = {}, echoOptions: EchoOptions = {}): Promise<{ app: FastifyInstance, port: number, url: string }> {
  return await listen(t, async (app) => {
    await app.register(echohubRegistry, { heartbeatInterval: 0, ...registry })
    await app.register(echo, echoOptions)
    await app.register(stats)
  })
}

async function hits (app: FastifyInstance): Promise<Record<string, number>> {
  return (await app.inject('/stats')).json().limits.hits
}

/** Reads one whole message, however many frames it came in. */
async function message (reader: FrameReader): Promise<{ opcode: number, payload: Buffer, frames: number }> {
  const first = await reader.next()
  const parts = [first.payload]
  let last = first
  while (!last.fin) {
    last = await reader.next()
    if (last.opcode !== CONTINUATION) throw new Error(`expected a continuation frame, got opcode ${last.opcode}`)
    parts.push(last.payload)
  }
  return { opcode: first.opcode, payload: Buffer.concat(parts), frames: parts.length }
}

t.test('a bad control is answered 400 before the upgrade, naming it, and counted', async (t) => {
  const { app, port } = await echoServer(t)
  for (const path of ['/?delay=abc', '/raw?repeat=0', '/device/1?token=x&close_after=2&close_code=1005']) {
    const answer = await rawUpgrade(t, port, path)
    if (isUpgraded(answer)) {
      t.fail(`${path} was upgraded`)
      continue
    }
    t.equal(answer.status, 400, `${path}: 400`)
    t.match(answer.headers['content-type'], /^application\/json/)
    const body = JSON.parse(answer.body)
    t.same(Object.keys(body), ['error', 'control', 'message'], `${path}: the SPEC's body`)
    t.equal(body.error, 'invalid_control')
    t.equal(body.control, path.includes('delay') ? 'delay' : path.includes('repeat') ? 'repeat' : 'close_code')
  }
  t.equal((await hits(app)).invalid_control, 3, 'each refusal counted as invalid_control')
  t.equal(app.echohub.connections.size, 0, 'no connection was opened')
})

t.test('unknown parameters are ignored and a plain connection keeps the plain echo', async (t) => {
  const { url } = await echoServer(t)
  const ws = await connect(t, url + '/device/7?firmware=1.2&token=abc&Delay=500')
  ws.send('hi')
  const reply = await nextJson(ws)
  t.equal(reply.original_message, 'hi')
})

t.test('echo-debug\'s welcome shows the controls in force, after server_info', async (t) => {
  const { url } = await echoServer(t, {}, { welcome: true })
  const ws = await connect(t, url + '/?push=60000&foo=1&close_reason=bye&delay=100&close_after=5')
  const welcome = await nextJson(ws)
  t.same(Object.keys(welcome), ['type', 'message', 'timestamp', 'client_id', 'server_info', 'controls'])
  t.same(welcome.controls, { delay: 100, close_after: 5, close_reason: 'bye', push: 60000 }, 'only those given, numbers as numbers')
  const plain = await connect(t, url + '/?foo=1')
  t.notOk('controls' in (await nextJson(plain)), 'no controls key without controls')
})

t.test('delay: each reply is sent no sooner than delay ms after its message', async (t) => {
  const { port } = await echoServer(t)
  const reader = await rawClient(t, port, '/raw?delay=80')
  const sentAt = Date.now()
  reader.send('late')
  const f = await reader.next()
  const waited = Date.now() - sentAt
  t.equal(f.payload.toString(), 'late')
  t.ok(waited >= 75, `reply came after ${waited} ms`)
})

t.test('jitter: replies are spread out but never reordered', async (t) => {
  const { port } = await echoServer(t)
  const reader = await rawClient(t, port, '/?delay=5&jitter=40')
  for (let i = 1; i <= 30; i++) reader.send(`m${i}`)
  const ids: number[] = []
  for (let i = 1; i <= 30; i++) ids.push(JSON.parse((await reader.next()).payload.toString()).message_id)
  t.same(ids, Array.from({ length: 30 }, (_, i) => i + 1), 'message_id 1..30 in order')
})

t.test('repeat: each reply is sent that many times', async (t) => {
  const { port } = await echoServer(t)
  const reader = await rawClient(t, port, '/?repeat=3')
  reader.send('one')
  reader.send('two')
  const got = []
  for (let i = 0; i < 6; i++) {
    const env = JSON.parse((await reader.next()).payload.toString())
    got.push(`${env.original_message}#${env.message_id}`)
  }
  t.same(got, ['one#1', 'one#1', 'one#1', 'two#2', 'two#2', 'two#2'])
})

t.test('fragment: a reply comes as a first frame and continuation frames of at most N bytes', async (t) => {
  const { port } = await echoServer(t)
  const reader = await rawClient(t, port, '/raw?fragment=5')
  reader.send('hello world!')
  const frames = [await reader.next(), await reader.next(), await reader.next()]
  t.same(frames.map((f) => [f.opcode, f.fin, f.payload.toString()]), [
    [TEXT, false, 'hello'], [CONTINUATION, false, ' worl'], [CONTINUATION, true, 'd!']
  ], 'text opcode first, then continuations; FIN on the last')
  const bytes = Buffer.from(Array.from({ length: 11 }, (_, i) => 250 + i & 0xff))
  reader.send(bytes)
  const whole = await message(reader)
  t.equal(whole.opcode, BINARY, 'binary opcode on the first fragment')
  t.equal(whole.frames, 3)
  t.ok(whole.payload.equals(bytes), 'the fragments join to the same bytes')
  reader.send('abc')
  const small = await reader.next()
  t.same([small.opcode, small.fin, small.payload.toString()], [TEXT, true, 'abc'], 'a reply within the size is one frame')
})

t.test('fragment with a ws client: an envelope split mid-character still joins to valid JSON', async (t) => {
  const { url } = await echoServer(t)
  const ws = await connect(t, url + '/?fragment=3&repeat=2')
  ws.send('😀 é 中文')
  for (let i = 0; i < 2; i++) t.equal((await nextJson(ws)).original_message, '😀 é 中文')
})

t.test('silent: every message is read, none is answered', async (t) => {
  const { app, port } = await echoServer(t)
  const reader = await rawClient(t, port, '/?silent=1')
  reader.send('a')
  reader.send(Buffer.from([1, 2]))
  reader.send('ping?', PING)
  const first = await reader.next()
  t.equal(first.opcode, PONG, 'the first frame back is the pong to the ping sent after the messages')
  t.equal([...app.echohub.connections][0]!.messagesReceived, 2, 'both messages were read')
})

t.test('close_after: after N replies the server closes with close_code and close_reason', async (t) => {
  const { port } = await echoServer(t)
  const reader = await rawClient(t, port, '/raw?close_after=2&close_code=4001&close_reason=' + encodeURIComponent('bye now'))
  for (const m of ['1', '2', '3']) reader.send(m)
  t.equal((await reader.next()).payload.toString(), '1')
  t.equal((await reader.next()).payload.toString(), '2')
  const close = await reader.next()
  t.equal(close.opcode, CLOSE, 'then a close frame, not a third reply')
  t.equal(close.payload.readUInt16BE(0), 4001)
  t.equal(close.payload.subarray(2).toString(), 'bye now')
})

t.test('close_after counts a repeated reply once, and defaults to 1000', async (t) => {
  const { url } = await echoServer(t)
  const ws = await connect(t, url + '/?close_after=1&repeat=3')
  ws.send('x')
  for (let i = 0; i < 3; i++) t.equal((await nextJson(ws)).message_id, 1)
  t.same(await closed(ws), { code: 1000, reason: '' })
})

t.test('drop_after: after N replies TCP ends with no close frame', async (t) => {
  const { app, port } = await echoServer(t)
  const reader = await rawClient(t, port, '/raw?drop_after=2&repeat=2')
  reader.send('1')
  reader.send('2')
  await reader.ended()
  t.same(reader.frames.map((f) => [f.opcode, f.payload.toString()]), [[TEXT, '1'], [TEXT, '1'], [TEXT, '2'], [TEXT, '2']], 'every reply arrived, and no close frame')
  await until(() => app.echohub.connections.size === 0, 'the connection to leave the registry')
  const ws = await connect(t, `ws://127.0.0.1:${port}/?drop_after=1`)
  ws.send('x')
  await nextJson(ws)
  t.equal((await closed(ws)).code, 1006, 'a ws client sees an abnormal closure')
})

t.test('push: unsolicited frames counting from 1, JSON or `push n` on /raw', async (t) => {
  const { port } = await echoServer(t)
  const json = await rawClient(t, port, '/?push=10')
  const raw = await rawClient(t, port, '/raw?push=10')
  for (const seq of [1, 2, 3]) {
    const push = JSON.parse((await json.next()).payload.toString())
    t.same(Object.keys(push), ['type', 'seq', 'timestamp'])
    t.same([push.type, push.seq], ['push', seq])
    t.match(push.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    t.equal((await raw.next()).payload.toString(), `push ${seq}`)
  }
})

t.test('burst: N frames of burst_size bytes of x on connect, or counting bytes with burst_binary', async (t) => {
  const { port } = await echoServer(t)
  const text = await rawClient(t, port, '/raw?burst=3000&burst_size=100')
  for (let i = 0; i < 3000; i++) {
    const f = await text.next()
    if (f.opcode !== TEXT || f.payload.length !== 100 || f.payload.toString() !== 'x'.repeat(100)) {
      t.fail(`frame ${i} is not 100 x: opcode ${f.opcode}, ${f.payload.length} bytes`)
      return
    }
  }
  t.pass('3000 text frames of 100 x')
  text.send('after')
  t.equal((await text.next()).payload.toString(), 'after', 'then the echo as usual')
  const binary = await rawClient(t, port, '/raw?burst=2&burst_size=300&burst_binary=1')
  const expected = Buffer.from(Array.from({ length: 300 }, (_, i) => i % 256))
  for (let i = 0; i < 2; i++) {
    const f = await binary.next()
    t.equal(f.opcode, BINARY)
    t.ok(f.payload.equals(expected), 'bytes count 0-255 over and over')
  }
})

t.test('burst: a client that does not read holds the server to a bounded buffer, then gets every frame', async (t) => {
  const { app, port } = await echoServer(t)
  const reader = await rawClient(t, port, '/raw?burst=20000&burst_size=1000')
  reader.upgraded.socket.pause()
  const server = [...app.websocketServer.clients][0]!
  const conn = [...app.echohub.connections][0]!
  // The kernel's buffers fill first; then the server holds at most a window of unsent frames.
  await until(() => server.bufferedAmount > 0 && conn.messagesSent > 100, 'the server to start buffering', 10_000)
  let peak = 0
  for (let i = 0; i < 50; i++) {
    await new Promise((resolve) => setImmediate(resolve))
    peak = Math.max(peak, server.bufferedAmount)
  }
  t.ok(peak <= 256 * 1024 + 1010, `unsent bytes stay within the window: ${peak}`)
  t.ok(conn.messagesSent < 20000, `not every frame was queued: ${conn.messagesSent} so far`)
  reader.upgraded.socket.resume()
  let count = 0
  while (count < 20000) {
    const f = await reader.next()
    if (f.payload.length !== 1000) throw new Error(`frame ${count} has ${f.payload.length} bytes`)
    count++
  }
  t.equal(count, 20000, 'every frame arrived once the client read')
})

t.test('ping: the connection is pinged on its own period and cut off when it does not answer', async (t) => {
  const { app, port } = await echoServer(t)
  const reader = await rawClient(t, port, '/raw?ping=1000')
  const first = await reader.next()
  t.equal(first.opcode, PING, 'a ping within the period')
  await reader.ended()
  t.equal(reader.frames.filter((f) => f.opcode === CLOSE).length, 0, 'terminated, not closed')
  t.equal((await hits(app)).heartbeat_timeout, 1, 'counted as heartbeat_timeout')
})

t.test('ping=0 exempts the connection from the server-wide heartbeat', async (t) => {
  const { app, port } = await echoServer(t, { heartbeatInterval: 30 })
  const plain = await rawClient(t, port, '/raw')
  const exempt = await rawClient(t, port, '/raw?ping=0')
  await plain.ended()
  t.ok(plain.frames.some((f) => f.opcode === PING), 'the plain connection was pinged, never answered, and was cut off')
  exempt.send('still here')
  const f = await exempt.next()
  t.same([f.opcode, f.payload.toString()], [TEXT, 'still here'], 'the exempt one was never pinged and is still open')
  t.equal(exempt.frames.filter((x) => x.opcode === PING).length, 0)
  t.equal((await hits(app)).heartbeat_timeout, 1)
})

t.test('a closed connection leaves no lab timer behind', async (t) => {
  const { app, url } = await echoServer(t)
  const before = LabSession.live
  const clients: WebSocket[] = []
  for (let i = 0; i < 300; i++) clients.push(new WebSocket(url + `/?push=10&delay=1000&ping=60000&i=${i}`))
  await Promise.all(clients.map((ws) => new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })))
  await until(() => LabSession.live === before + 300, 'every session to start')
  for (const [i, ws] of clients.entries()) {
    ws.send('pending reply')
    if (i % 2 === 0) ws.close()
    else ws.terminate()
  }
  await until(() => app.echohub.connections.size === 0, 'every connection to leave the registry', 10_000)
  t.equal(LabSession.live, before, 'every session stopped, its timers cleared')
})
