import t from 'tap'
import { randomBytes } from 'node:crypto'
import { networkInterfaces } from 'node:os'
import { Writable } from 'node:stream'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import { pino } from 'pino'
import type { WebSocket } from 'ws'
import { echo, stats, ConnectionRegistry, echohubRegistry } from '../index.js'
import { closed, connect, listen, nextJson, nextMessage, until } from './helpers/index.js'

const ISO_MS_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

t.test('echo replies to text with the six-key envelope, keys in the SPEC order', async (t) => {
  const { url } = await listen(t, async (app) => { await app.register(echo) })
  const ws = await connect(t, url + '/')
  const text = 'héllo "world"\n\u0000 😀'
  const before = Date.now()
  ws.send(text)
  const reply = await nextMessage(ws)
  t.equal(reply.isBinary, false, 'the envelope is a text frame')
  const envelope = JSON.parse(reply.text)
  t.same(Object.keys(envelope), ['type', 'original_message', 'timestamp', 'client', 'message_id', 'server_info'])
  t.equal(envelope.type, 'echo')
  t.equal(envelope.original_message, text, 'the text comes back exactly as sent')
  t.match(envelope.timestamp, ISO_MS_UTC, 'ISO 8601 UTC with milliseconds and Z')
  t.ok(Date.parse(envelope.timestamp) >= before - 1 && Date.parse(envelope.timestamp) <= Date.now(), 'timestamp is now')
  t.equal(envelope.client, `127.0.0.1:${(ws as unknown as { _socket: { localPort: number } })._socket.localPort}`, 'client is the peer address:port')
  t.equal(envelope.message_id, 1)
  t.equal(envelope.server_info, 'echohub echo server')
})

t.test('echo counts message_id from 1 per connection', async (t) => {
  const { url } = await listen(t, async (app) => { await app.register(echo) })
  const a = await connect(t, url)
  const b = await connect(t, url)
  for (const expected of [1, 2, 3]) {
    a.send(`a${expected}`)
    t.equal((await nextJson(a)).message_id, expected)
  }
  b.send('b1')
  t.equal((await nextJson(b)).message_id, 1, 'a second connection counts on its own')
})

t.test('echo sends binary back as the same bytes, with no envelope', async (t) => {
  const { url } = await listen(t, async (app) => { await app.register(echo) })
  const ws = await connect(t, url)
  const bytes = Buffer.concat([Buffer.from([0x00, 0xff, 0xfe, 0xc3]), randomBytes(4096)])
  ws.send(bytes)
  const reply = await nextMessage(ws)
  t.equal(reply.isBinary, true)
  t.ok(reply.data.equals(bytes), 'byte-exact')
})

t.test('/raw echoes text as the same text and binary as the same bytes', async (t) => {
  const { url } = await listen(t, async (app) => { await app.register(echo) })
  const ws = await connect(t, url + '/raw')
  ws.send('plain {"not": "wrapped"}')
  const text = await nextMessage(ws)
  t.equal(text.isBinary, false)
  t.equal(text.text, 'plain {"not": "wrapped"}')
  const bytes = randomBytes(300)
  ws.send(bytes)
  const binary = await nextMessage(ws)
  t.equal(binary.isBinary, true)
  t.ok(binary.data.equals(bytes))
})

t.test('/raw keeps replies in order when small and large ones, text and binary, alternate', async (t) => {
  // small replies are framed by echohub and written straight to the socket, large ones go through ws
  const { url } = await listen(t, async (app) => { await app.register(echo) })
  const ws = await connect(t, url + '/raw')
  const sent = [1, 5000, 1024, 1025, 0, 70_000, 64].flatMap((size, i) => [randomBytes(size), 'x'.repeat(size + i)])
  const replies: Array<Buffer | string> = []
  const all = new Promise<void>((resolve) => ws.on('message', (data: Buffer, isBinary: boolean) => {
    replies.push(isBinary ? Buffer.from(data) : data.toString())
    if (replies.length === sent.length) resolve()
  }))
  for (const m of sent) ws.send(m)
  await all
  t.same(replies, sent, 'every reply, byte for byte, in the order sent')
})

t.test('any other path echoes like /, as devices configured with any path expect', async (t) => {
  const { url } = await listen(t, async (app) => {
    await app.register(echo)
    await app.register(stats)
  })
  for (const path of ['/ws', '/echo', '/device/1']) {
    const ws = await connect(t, url + path)
    ws.send(path)
    const envelope = await nextJson(ws)
    t.equal(envelope.original_message, path, `${path} echoes with the envelope`)
    ws.close()
  }
  const res = await fetch(url.replace('ws:', 'http:') + '/health')
  t.equal(res.status, 200, 'HTTP routes of the server still answer')
})

t.test('a plain HTTP GET on an echo path answers 426 with a JSON body saying how to connect', async (t) => {
  const { app } = await listen(t, async (app) => { await app.register(echo) })
  const res = await app.inject({ method: 'GET', url: '/' })
  t.equal(res.statusCode, 426)
  t.equal(res.json().error, 'upgrade_required')
  t.match(res.json().message, /WebSocket/)
})

t.test('welcome greets each client with a process-wide client_id', async (t) => {
  const registry = new ConnectionRegistry()
  const { app } = await listen(t, async (app) => {
    await app.register(echohubRegistry, { registry })
    await app.register(echo, { name: 'plain', path: '/plain' })
    await app.register(echo, { name: 'debug', path: '/debug', welcome: true, serverInfo: 'my server (debug)' })
  })
  const welcomes: Array<Record<string, unknown>> = []
  const onInit = (ws: WebSocket) => ws.once('message', (data) => { welcomes.push(JSON.parse(String(data))) })
  const plain = await app.injectWS('/plain')
  t.teardown(() => plain.terminate())
  for (let i = 0; i < 2; i++) {
    const ws = await app.injectWS('/debug', {}, { onInit })
    t.teardown(() => ws.terminate())
  }
  await until(() => welcomes.length === 2, 'two welcomes')
  t.same(Object.keys(welcomes[0]!), ['type', 'message', 'timestamp', 'client_id', 'server_info'])
  t.equal(welcomes[0]!.type, 'welcome')
  t.equal(welcomes[0]!.message, 'Welcome to the echohub echo server!')
  t.match(welcomes[0]!.timestamp, ISO_MS_UTC)
  t.equal(welcomes[0]!.server_info, 'my server (debug)')
  t.same(welcomes.map((w) => w.client_id), [2, 3], 'numbers every connection of the registry, not just this endpoint')
})

t.test('/raw never sends a welcome, even on an endpoint that greets', async (t) => {
  const { url } = await listen(t, async (app) => { await app.register(echo, { welcome: true }) })
  const greeted = await connect(t, url + '/')
  t.equal((await nextJson(greeted)).type, 'welcome')
  const plain = await connect(t, url + '/raw')
  plain.send('first')
  t.equal((await nextMessage(plain)).text, 'first', 'the first frame on /raw is the echo itself')
})

const hasIPv6Loopback = Object.values(networkInterfaces()).flat().some((a) => a?.internal === true && a.family === 'IPv6')
t.test('IPv4-mapped peers show as plain IPv4, IPv6 peers in brackets', { skip: hasIPv6Loopback ? false : 'this machine has no IPv6 loopback' }, async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(echo)
  await app.listen({ host: '::', port: 0 })
  const { port } = app.server.address() as { port: number }
  const v4 = await connect(t, `ws://127.0.0.1:${port}/`)
  v4.send('x')
  t.match((await nextJson(v4)).client, /^127\.0\.0\.1:\d+$/)
  const v6 = await connect(t, `ws://[::1]:${port}/`)
  v6.send('x')
  t.match((await nextJson(v6)).client, /^\[::1\]:\d+$/)
})

t.test('every closed connection leaves the registry, however it closed', async (t) => {
  const { app, url } = await listen(t, async (app) => { await app.register(echo) })
  const clean = await connect(t, url)
  const abrupt = await connect(t, url + '/raw')
  await until(() => app.echohub.connections.size === 2, 'two connections registered')
  clean.close(1000)
  abrupt.terminate()
  await until(() => app.echohub.connections.size === 0, 'registry to empty')
  const figures = app.echohub.snapshot().endpoints.echo!.connections
  t.same(figures, { current: 0, peak: 2, total: 2 })
})

t.test('an open connection does not keep the upgrade request alive: one error listener, echohub\'s', async (t) => {
  function appListener (): void {}
  const { app, url } = await listen(t, async (app) => {
    await app.register(echo)
    app.websocketServer.on('connection', (ws) => ws.on('error', appListener))
  })
  const ws = await connect(t, url)
  ws.send('x')
  await nextMessage(ws)
  const [server] = app.websocketServer.clients
  // @fastify/websocket's own listener closes over the Fastify request and reply; echohub drops it
  // and keeps any the app added.
  t.same(server!.listeners('error').map((l) => l.name), ['appListener', 'onError'])
})

t.test('a message over maxPayload closes the connection with 1009', async (t) => {
  const { app, url } = await listen(t, async (app) => { await app.register(echo, { maxPayload: 1000 }) })
  const ws = await connect(t, url)
  ws.send('x'.repeat(1000))
  t.equal((await nextJson(ws)).original_message, 'x'.repeat(1000), 'a message at the cap is echoed')
  ws.send('x'.repeat(1001))
  const { code, reason } = await closed(ws)
  t.same([code, reason], [1009, 'message of 1001 bytes over the 1000-byte limit'])
  t.equal(app.echohub.limitHits.oversize, 1, 'counted as an oversize close')
})

t.test('a message over the WebSocket server\'s own cap closes 1009 with a reason naming the limit, and the log says the same', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({ write (chunk, _enc, done) { lines.push(JSON.parse(String(chunk))); done() } })
  const app = Fastify({ loggerInstance: pino({ level: 'info' }, sink) })
  t.teardown(() => app.close())
  await app.register(echo)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const ws = await connect(t, `ws://127.0.0.1:${(app.server.address() as { port: number }).port}/`)
  ws.send(Buffer.alloc(1048577))
  const { code, reason } = await closed(ws)
  t.same([code, reason], [1009, 'message of 1048577 bytes over the 1048576-byte limit'])
  await until(() => app.echohub.limitHits.oversize === 1, 'the hit to be counted')
  const line = lines.find((l) => l.level === 40)
  t.same([line?.msg, line?.bytes, line?.max_payload], ['message of 1048577 bytes over the 1048576-byte limit; connection closed with 1009', 1048577, 1048576], 'one warning with the same words')
  t.notOk(lines.some((l) => /broke the protocol/.test(String(l.msg))), 'not called a protocol violation')
})

t.test('debug logs every frame once, each direction: text, and hex for binary', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({ write (chunk, _enc, done) { lines.push(JSON.parse(String(chunk))); done() } })
  const app = Fastify({ loggerInstance: pino({ level: 'debug' }, sink) })
  t.teardown(() => app.close())
  await app.register(echo, { debug: true })
  await app.ready()
  const ws = await app.injectWS('/')
  t.teardown(() => ws.terminate())
  ws.send(Buffer.from([0x00, 0x01, 0xff]))
  await nextMessage(ws)
  ws.send('line\nbreak')
  await nextMessage(ws)
  const frames = lines.filter((l) => l.msg === 'frame received')
  t.equal(frames.length, 2)
  t.equal(frames[0]!.hex, '00 01 ff')
  t.equal(frames[0]!.opcode, 'binary')
  t.equal(frames[1]!.text, 'line\\nbreak', 'control characters escaped')
  const sent = lines.filter((l) => l.msg === 'frame sent')
  t.same(sent.map((l) => [l.opcode, l.n]), [['binary', 1], ['text', 2]], 'each outgoing frame too')
  t.equal(sent[0]!.hex, '00 01 ff')
  t.match(sent[1]!.text, /^\{"type":"echo","original_message":"line\\nbreak"/, 'the envelope as sent')
  t.notOk(lines.some((l) => l.msg === 'message received' || l.msg === 'echo sent'), 'the received text is not logged a second time')
  t.ok(lines.some((l) => l.msg === 'client connected' && typeof l.connections === 'number'), 'connect is logged with the count')
})

t.test('without debug, each received message and each echo are logged at info', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({ write (chunk, _enc, done) { lines.push(JSON.parse(String(chunk))); done() } })
  const app = Fastify({ loggerInstance: pino({ level: 'info' }, sink) })
  t.teardown(() => app.close())
  await app.register(echo, { debug: true })
  await app.ready()
  const ws = await app.injectWS('/')
  t.teardown(() => ws.terminate())
  ws.send('line\nbreak')
  await nextMessage(ws)
  t.ok(lines.some((l) => l.msg === 'message received' && l.text === 'line\\nbreak'), 'each received message is logged')
  t.ok(lines.some((l) => l.msg === 'echo sent' && l.message_id === 1), 'each echo is logged')
  t.notOk(lines.some((l) => l.level === 20), 'no debug line: debug: true needs the logger at debug')
})

t.test('as a library: two echo endpoints in one app, @fastify/websocket registered once', async (t) => {
  const { app, url } = await listen(t, async (app) => {
    await app.register(websocket)
    await app.register(echo, { path: '/one', name: 'one', serverInfo: 'one' })
    await app.register(echo, { path: '/two', name: 'two', serverInfo: 'two', raw: false })
    await app.register(echo, { prefix: '/v1', path: '/three', name: 'three' })
  })
  const one = await connect(t, url + '/one')
  const two = await connect(t, url + '/two')
  const three = await connect(t, url + '/v1/three')
  one.send('a')
  two.send('b')
  three.send('c')
  t.equal((await nextJson(one)).server_info, 'one')
  t.equal((await nextJson(two)).server_info, 'two')
  t.equal((await nextJson(three)).original_message, 'c', 'Fastify prefix applies to the routes')
  const oneRaw = await connect(t, url + '/one/raw')
  oneRaw.send('r')
  t.equal((await nextMessage(oneRaw)).text, 'r')
  await t.rejects(connect(t, url + '/two/raw'), /Unexpected server response: 404/, 'raw: false leaves /raw out')
  t.same(Object.keys(app.echohub.snapshot().endpoints), ['one', 'two', 'three'])
  t.equal(app.server.listeners('upgrade').length, 1, 'one upgrade listener: websocket registered once')
})

t.test('a wrong option fails register with an error naming the option', async (t) => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ path: 'no-slash' }, /option "path"/],
    [{ serverInfo: 42 }, /option "serverInfo"/],
    [{ welcome: 'yes' }, /option "welcome"/],
    [{ maxPayload: -1 }, /option "maxPayload"/]
  ]
  for (const [opts, message] of cases) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(echo, opts) }, { code: 'ECHOHUB_ERR_INVALID_OPTION', message }, JSON.stringify(opts))
  }
  const app = Fastify()
  t.teardown(() => app.close())
  app.register(echo, { path: '/a' })
  app.register(echo, { path: '/b' })
  await t.rejects(async () => { await app.ready() }, { code: 'ECHOHUB_ERR_INVALID_OPTION', message: /option "name"/ }, 'two endpoints need two names')
})
