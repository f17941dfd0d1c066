// Transport on the wire: subprotocol negotiation per endpoint, permessage-deflate (text, binary,
// large, fragmented, the 1 KiB threshold, a chat broadcast to compressed and plain clients alike),
// and the client address from X-Forwarded-For only with --trust-proxy.
import t, { type Test } from 'tap'
import { Writable } from 'node:stream'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import { pino } from 'pino'
import { WebSocket } from 'ws'
import { chat, echo, echohubRegistry, parseConfig, startEchohub, type Config, type Echohub } from '../index.js'
import { connect, inboxOf, listen, nextJson, nextMessage } from './helpers/index.js'
import { joinChat, drain, type ChatClient } from './helpers/chat.js'
import { frame, isUpgraded, rawUpgrade, type Upgraded } from './helpers/raw.js'

function testConfig (extra: string[] = []): Config {
  const parsed = parseConfig(['--host', '127.0.0.1', '--echo-port', '0', '--debug-port', '0', '--chat-port', '0', ...extra], {})
  if (parsed.help) throw new Error('unexpected')
  return parsed.config
}

/** Starts the composed servers; `lines` collects their JSON log lines. */
async function hub (t: Test, extra: string[]): Promise<{ hub: Echohub, lines: Array<Record<string, any>>, port: (name: string) => number }> {
  const lines: Array<Record<string, any>> = []
  const sink = new Writable({ write (chunk: Buffer, _enc, done) { lines.push(JSON.parse(String(chunk)) as Record<string, any>); done() } })
  const started = await startEchohub(testConfig(extra), { logger: pino({ level: 'info' }, sink) })
  t.teardown(() => started.close())
  return { hub: started, lines, port: (name) => started.servers.find((s) => s.name === name)!.port }
}

/** The Sec-WebSocket-Protocol the server answered an upgrade offering `offered` with (undefined: none). */
async function negotiated (t: Test, port: number, path: string, offered: string): Promise<string | undefined> {
  const answer = await rawUpgrade(t, port, path, { 'Sec-WebSocket-Protocol': offered })
  if (!isUpgraded(answer)) throw new Error(`expected 101 on ${path}, got ${answer.status} ${answer.body}`)
  answer.socket.destroy()
  return answer.headers['sec-websocket-protocol']
}

t.test('subprotocols: echo takes the first offered, or the first offered on its list; chat takes none unless told', async (t) => {
  const { port } = await listen(t, async (app) => {
    await app.register(echo, { path: '/any' })
    await app.register(echo, { path: '/listed', name: 'listed', subprotocols: ['mqtt', 'wamp.2.json'] })
    await app.register(chat, { path: '/chat' })
    await app.register(chat, { path: '/chat2', name: 'chat2', subprotocols: ['chat.v1'] })
  })
  t.equal(await negotiated(t, port, '/any', 'b, a'), 'b', 'by default the client\'s first choice')
  t.equal(await negotiated(t, port, '/any/raw', 'x'), 'x', 'on /raw too')
  t.equal(await negotiated(t, port, '/listed', 'x, wamp.2.json, mqtt'), 'wamp.2.json', 'with a list: the first offered that is on it')
  t.equal(await negotiated(t, port, '/listed', 'x, y'), undefined, 'none on the list: the upgrade succeeds without a protocol header')
  t.equal(await negotiated(t, port, '/chat', 'chat.v1'), undefined, 'chat accepts none by default')
  t.equal(await negotiated(t, port, '/chat2', 'other, chat.v1'), 'chat.v1', 'chat with a list')
})

t.test('subprotocols are decided per endpoint even when the app registered @fastify/websocket with its own handleProtocols', async (t) => {
  const { port } = await listen(t, async (app) => {
    await app.register(websocket, { options: { handleProtocols: (offered: Set<string>) => offered.has('app.v2') ? 'app.v2' : false } })
    app.get('/app', { websocket: true }, (socket) => { socket.on('message', (d: Buffer) => socket.send(d)) })
    await app.register(echo, { path: '/echo', subprotocols: ['mqtt'] })
    await app.register(chat, { path: '/chat' })
  })
  t.equal(await negotiated(t, port, '/app', 'mqtt, app.v2'), 'app.v2', 'the app\'s own route keeps the app\'s choice')
  t.equal(await negotiated(t, port, '/echo', 'app.v2, mqtt'), 'mqtt', 'echohub\'s echo follows its own list')
  t.equal(await negotiated(t, port, '/chat', 'app.v2'), undefined, 'and the chat its own (none)')
})

t.test('a bad subprotocols option fails register naming it', async (t) => {
  for (const [plugin, subprotocols] of [[echo, ['has space']], [echo, 'mqtt'], [chat, '*'], [chat, [1]]] as const) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(plugin as typeof echo, { subprotocols } as never) }, { code: 'ECHOHUB_ERR_INVALID_OPTION', message: /"subprotocols"/ })
  }
})

t.test('--subprotocols and --chat-subprotocols; echo-debug names the chosen one in its welcome', async (t) => {
  const { port } = await hub(t, ['--subprotocols', 'mqtt,v2.echo', '--chat-subprotocols', 'chat.v1', '--log-level', 'silent'])
  t.equal(await negotiated(t, port('echo'), '/', 'v2.echo'), 'v2.echo')
  t.equal(await negotiated(t, port('echo'), '/', 'other'), undefined)
  t.equal(await negotiated(t, port('chat'), '/ws', 'chat.v1'), 'chat.v1')
  const device = new WebSocket(`ws://127.0.0.1:${port('echo-debug')}/`, ['mqtt'])
  t.teardown(() => device.terminate())
  inboxOf(device)
  await once(device, 'open')
  t.equal(device.protocol, 'mqtt')
  const welcome = await nextJson(device)
  t.same(Object.keys(welcome).slice(-2), ['server_info', 'subprotocol'], 'after server_info')
  t.equal(welcome.subprotocol, 'mqtt')
  const plain = await connect(t, `ws://127.0.0.1:${port('echo-debug')}/`)
  t.notOk('subprotocol' in await nextJson(plain), 'absent when none was chosen')
})

/** First frame header byte of each message the server sends on a raw connection: RSV1 tells a compressed message. */
function firstBytes (upgraded: Upgraded): Array<{ rsv1: boolean, opcode: number }> {
  const seen: Array<{ rsv1: boolean, opcode: number }> = []
  let buffer = upgraded.rest
  const parse = () => {
    while (buffer.length >= 2) {
      let len = buffer[1]! & 0x7f
      let offset = 2
      if (len === 126) { if (buffer.length < 4) return; len = buffer.readUInt16BE(2); offset = 4 }
      if (len === 127) { if (buffer.length < 10) return; len = Number(buffer.readBigUInt64BE(2)); offset = 10 }
      if (buffer.length < offset + len) return
      seen.push({ rsv1: (buffer[0]! & 0x40) !== 0, opcode: buffer[0]! & 0x0f })
      buffer = buffer.subarray(offset + len)
    }
  }
  upgraded.socket.on('data', (chunk: Buffer) => { buffer = Buffer.concat([buffer, chunk]); parse() })
  parse()
  return seen
}

t.test('compression: negotiated only when on, and messages from 1 KiB go out compressed', async (t) => {
  const off = await listen(t, async (app) => { await app.register(echo) })
  const declined = await rawUpgrade(t, off.port, '/raw', { 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits' })
  if (!isUpgraded(declined)) throw new Error('not upgraded')
  t.equal(declined.headers['sec-websocket-extensions'], undefined, 'off by default: the offer is declined')

  const on = await listen(t, async (app) => {
    await app.register(echohubRegistry, { compression: true })
    await app.register(echo)
  })
  const accepted = await rawUpgrade(t, on.port, '/raw', { 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits' })
  if (!isUpgraded(accepted)) throw new Error('not upgraded')
  t.match(accepted.headers['sec-websocket-extensions'], /^permessage-deflate/, 'on: accepted')
  const seen = firstBytes(accepted)
  accepted.socket.write(frame(0x1, Buffer.from('x'.repeat(1023))))
  accepted.socket.write(frame(0x1, Buffer.from('x'.repeat(1024))))
  accepted.socket.write(frame(0x2, Buffer.alloc(5000, 7)))
  while (seen.length < 3) await new Promise((resolve) => accepted.socket.once('data', resolve))
  t.same(seen, [{ rsv1: false, opcode: 1 }, { rsv1: true, opcode: 1 }, { rsv1: true, opcode: 2 }], 'under 1 KiB as is; from 1 KiB compressed, text and binary')
  t.equal(on.app.echohub.snapshot().limits.settings.compression, true, '/stats shows it')
})

t.test('compressed round trips: text and binary, small, large and fragmented, on the envelope echo and /raw', async (t) => {
  const { url } = await listen(t, async (app) => {
    await app.register(echohubRegistry, { compression: true })
    await app.register(echo)
  })
  const raw = await connect(t, `${url}/raw`)
  t.equal(raw.extensions, 'permessage-deflate', 'a ws client negotiates it')
  const texts = ['short', 'é€😀'.repeat(400), JSON.stringify({ rows: Array.from({ length: 5000 }, (_, i) => ({ i, name: `row ${i}` })) })]
  for (const text of texts) {
    raw.send(text)
    const back = await nextMessage(raw)
    t.equal(back.text, text, `text of ${Buffer.byteLength(text)} bytes`)
    t.notOk(back.isBinary)
  }
  for (const bytes of [randomBytes(100), randomBytes(300_000), Buffer.alloc(700_000, 0x41)]) {
    raw.send(bytes)
    const back = await nextMessage(raw)
    t.ok(back.isBinary && back.data.equals(bytes), `binary of ${bytes.length} bytes`)
  }
  // Fragmented: one message sent as several frames, compressed as one.
  const parts = [Buffer.from('a'.repeat(3000)), Buffer.from('b'.repeat(10)), Buffer.from('c'.repeat(5000))]
  parts.forEach((part, i) => raw.send(part, { fin: i === parts.length - 1, binary: false }))
  t.equal((await nextMessage(raw)).text, Buffer.concat(parts).toString(), 'a fragmented text message')

  const envelope = await connect(t, `${url}/`)
  envelope.send(texts[2]!)
  t.equal((await nextJson(envelope)).original_message, texts[2], 'the envelope echo, compressed both ways')
})

t.test('a chat broadcast reaches compressed and plain clients alike, in the same order', async (t) => {
  const { url } = await listen(t, async (app) => {
    await app.register(echohubRegistry, { compression: true })
    await app.register(chat, { rateLimit: 0 })
  })
  const compressed = [await joinChat(t, `${url}/ws`), await joinChat(t, `${url}/ws`)]
  const plain = [await joinChat(t, `${url}/ws`, { perMessageDeflate: false }), await joinChat(t, `${url}/ws`, { perMessageDeflate: false })]
  t.same(compressed.map((c) => c.ws.extensions), ['permessage-deflate', 'permessage-deflate'])
  t.same(plain.map((c) => c.ws.extensions), ['', ''])
  const everyone: ChatClient[] = [...compressed, ...plain]
  const sent: unknown[] = []
  // Small and large payloads, from both kinds of sender, several in one turn of the loop.
  for (let i = 0; i < 12; i++) {
    const payload = i % 3 === 0 ? { i, big: 'z'.repeat(5000 + i) } : { i, text: `hi ${i}` }
    sent.push(payload)
    everyone[i % everyone.length]!.ws.send(JSON.stringify({ type: 'message', payload }))
  }
  const received = await Promise.all(everyone.map(async (c) => {
    const frames = []
    while (frames.length < sent.length) frames.push(await c.inbox.next())
    return frames
  }))
  const ids = received[0]!.map((f) => f.id)
  t.same(ids, [...ids].sort((a, b) => a - b), 'ids in order')
  for (const [n, frames] of received.entries()) {
    t.same(frames.map((f) => f.id), ids, `client ${n} got every message, in the same order`)
    t.same(frames.map((f) => f.type), Array(sent.length).fill('message'))
  }
  t.same(new Set(received[0]!.map((f) => JSON.stringify(f.payload))), new Set(sent.map((p) => JSON.stringify(p))), 'each payload as sent')
  const texts = received.map((frames) => frames.map((f) => JSON.stringify(f)).join('\n'))
  t.ok(texts.every((x) => x === texts[0]), 'compressed and plain clients got identical frames')
  for (const c of everyone) t.same(await drain(c), [], 'nothing more')
})

t.test('compression where the app registered @fastify/websocket itself fails register: it is the app\'s server', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(websocket)
  await t.rejects(async () => { await app.register(echohubRegistry, { compression: true }) }, { code: 'ECHOHUB_ERR_INVALID_OPTION', message: /"compression".*perMessageDeflate/ })
})

t.test('X-Forwarded-For is ignored without --trust-proxy', async (t) => {
  const { port, lines } = await hub(t, ['--only', 'echo'])
  const ws = await connect(t, `ws://127.0.0.1:${port('echo')}/`, { headers: { 'X-Forwarded-For': '203.0.113.9' } })
  ws.send('who am i')
  t.match((await nextJson(ws)).client, /^127\.0\.0\.1:\d+$/, 'the TCP peer, with its port')
  t.match(lines.find((l) => l.msg === 'client connected')?.client, /^127\.0\.0\.1:\d+$/)
})

t.test('with --trust-proxy the client address comes from X-Forwarded-For: envelopes, logs, per-address caps', async (t) => {
  const { port, lines } = await hub(t, ['--only', 'echo,chat', '--trust-proxy', '--max-connections-per-ip', '1'])
  const url = `ws://127.0.0.1:${port('echo')}/`
  const ws = await connect(t, url, { headers: { 'X-Forwarded-For': '198.51.100.7, 203.0.113.9' } })
  ws.send('who am i')
  t.equal((await nextJson(ws)).client, '198.51.100.7', 'every hop trusted: the first address, without a port')
  t.equal(lines.find((l) => l.msg === 'client connected')?.client, '198.51.100.7', 'in the logs too')
  const v6 = await connect(t, url, { headers: { 'X-Forwarded-For': '2001:db8::1' } })
  v6.send('x')
  t.equal((await nextJson(v6)).client, '2001:db8::1', 'IPv6 without brackets, as there is no port')

  const again = await rawUpgrade(t, port('echo'), '/', { 'X-Forwarded-For': '198.51.100.7' })
  t.equal(isUpgraded(again) ? 101 : again.status, 429, 'the per-address cap counts the forwarded address')
  const other = await connect(t, url, { headers: { 'X-Forwarded-For': '203.0.113.10' } })
  t.equal(other.readyState, WebSocket.OPEN, 'another forwarded address from the same proxy is its own client')

  const stats = await (await fetch(`http://127.0.0.1:${port('echo')}/stats`)).json() as Record<string, any>
  t.equal(stats.limits.settings.trust_proxy, true, '/stats shows it')
  const c = await joinChat(t, `ws://127.0.0.1:${port('chat')}/ws`, { headers: { 'X-Forwarded-For': '192.0.2.44' } })
  t.ok(c.clientId > 0)
  t.equal(lines.find((l) => l.msg === 'chat client connected')?.client, '192.0.2.44', 'the chat too')
})

t.test('--trust-proxy with a hop count or proxy addresses believes only those proxies', async (t) => {
  const hops = await hub(t, ['--only', 'echo', '--trust-proxy', '1', '--log-level', 'silent'])
  const one = await connect(t, `ws://127.0.0.1:${hops.port('echo')}/`, { headers: { 'X-Forwarded-For': '198.51.100.7, 203.0.113.9' } })
  one.send('x')
  t.equal((await nextJson(one)).client, '203.0.113.9', 'one hop: the address the nearest proxy saw')
  const junk = await connect(t, `ws://127.0.0.1:${hops.port('echo')}/`, { headers: { 'X-Forwarded-For': '"},"type":"forged' } })
  junk.send('x')
  t.match((await nextJson(junk)).client, /^127\.0\.0\.1:\d+$/, 'a forwarded value that is no IP address is ignored')

  const listed = await hub(t, ['--only', 'echo', '--trust-proxy', '10.0.0.0/8,192.168.1.1', '--log-level', 'silent'])
  const ws = await connect(t, `ws://127.0.0.1:${listed.port('echo')}/`, { headers: { 'X-Forwarded-For': '203.0.113.9' } })
  ws.send('x')
  t.match((await nextJson(ws)).client, /^127\.0\.0\.1:\d+$/, 'a peer that is not a listed proxy cannot choose its address')
})
