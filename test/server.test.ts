import t from 'tap'
import net from 'node:net'
import { Writable } from 'node:stream'
import { networkInterfaces } from 'node:os'
import { pino } from 'pino'
import { parseConfig, startEchohub, VERSION, type Config } from '../index.js'
import { clientUrls } from '../app/server.js'
import { closed, connect, nextJson, nextMessage } from './helpers/index.js'
import { closeCode, frame, isUpgraded, rawUpgrade } from './helpers/raw.js'
import pkg from '../package.json' with { type: 'json' }

const silent = pino({ level: 'silent' })

function testConfig (extra: string[] = []): Config {
  const parsed = parseConfig(['--host', '127.0.0.1', '--echo-port', '0', '--debug-port', '0', '--chat-port', '0', ...extra], {})
  if (parsed.help) throw new Error('unexpected')
  return parsed.config
}

t.test('runs echo and echo-debug on their own ports over one registry', async (t) => {
  const hub = await startEchohub(testConfig(['--only', 'echo,echo-debug']), { logger: silent })
  t.teardown(() => hub.close())
  t.same(hub.servers.map((s) => s.name), ['echo', 'echo-debug'])
  const [echoServer, debugServer] = hub.servers
  t.not(echoServer!.port, debugServer!.port)
  t.same(echoServer!.urls, [`ws://127.0.0.1:${echoServer!.port}/`, `ws://127.0.0.1:${echoServer!.port}/raw`, `ws://127.0.0.1:${echoServer!.port}/conformance`])
  t.same(debugServer!.urls, [`ws://127.0.0.1:${debugServer!.port}/`, `ws://127.0.0.1:${debugServer!.port}/raw`, `ws://127.0.0.1:${debugServer!.port}/conformance`], 'echo-debug serves the suite too, and says so')

  const plain = await connect(t, `ws://127.0.0.1:${echoServer!.port}/`)
  plain.send('hi')
  const envelope = await nextJson(plain)
  t.equal(envelope.server_info, 'echohub echo server')
  t.equal(envelope.message_id, 1)

  const debug = await connect(t, `ws://127.0.0.1:${debugServer!.port}/`)
  const welcome = await nextJson(debug)
  t.equal(welcome.type, 'welcome', 'echo-debug greets')
  t.equal(welcome.client_id, 2, 'client_id counts connections of the whole process')
  t.equal(welcome.server_info, 'echohub echo server (debug)')
  debug.send('x')
  t.equal((await nextJson(debug)).server_info, 'echohub echo server (debug)')

  const stats = await (await fetch(`http://127.0.0.1:${echoServer!.port}/stats`)).json() as Record<string, any>
  t.equal(stats.server_info, `echohub ${VERSION}`)
  t.same(Object.keys(stats.endpoints), ['echo', 'echo-conformance', 'echo-debug', 'echo-debug-conformance'], '/stats on one port covers every server (and the conformance suite on each)')
  t.equal(stats.connections.current, 2)
})

t.test('--only runs just the named servers', async (t) => {
  const hub = await startEchohub(testConfig(['--only', 'echo-debug']), { logger: silent })
  t.teardown(() => hub.close())
  t.same(hub.servers.map((s) => s.name), ['echo-debug'])
})

t.test('close() drains: clients get 1001 with a reason and the registry empties', async (t) => {
  const hub = await startEchohub(testConfig(), { logger: silent })
  const port = hub.servers[0]!.port
  const ws = await connect(t, `ws://127.0.0.1:${port}/raw`)
  ws.send('x')
  await nextMessage(ws)
  const closing = closed(ws)
  await hub.close()
  t.same(await closing, { code: 1001, reason: 'server shutting down' })
  t.equal(hub.registry.draining, true)
  t.equal(hub.registry.connections.size, 0)
})

t.test('while draining, /health answers 503 draining and new upgrades are refused with 503', async (t) => {
  const hub = await startEchohub(testConfig(['--shutdown-timeout', '60000']), { logger: silent })
  const port = hub.servers[0]!.port
  const stubborn = await rawUpgrade(t, port)
  if (!isUpgraded(stubborn)) throw new Error('not upgraded')
  const gotClose = closeCode(stubborn) // it reads the close frame but never answers it
  const closing = hub.close()
  t.equal(await gotClose, 1001)
  const health = await fetch(`http://127.0.0.1:${port}/health`)
  t.equal(health.status, 503)
  t.equal(((await health.json()) as { status: string }).status, 'draining')
  const late = await rawUpgrade(t, port)
  t.equal(isUpgraded(late) ? 101 : late.status, 503, 'no new connections while draining')
  t.equal(isUpgraded(late) ? '' : JSON.parse(late.body).error, 'shutting_down')
  // Not answering the close frame keeps it open until the timeout; end the wait by sending the close reply now.
  stubborn.socket.end(frame(0x8, Buffer.from([0x03, 0xe9])))
  await closing
  t.equal(hub.registry.connections.size, 0)
})

t.test('shutdown cuts off clients that never finish closing once --shutdown-timeout passes', async (t) => {
  const hub = await startEchohub(testConfig(['--shutdown-timeout', '50']), { logger: silent })
  const stubborn = await rawUpgrade(t, hub.servers[0]!.port)
  if (!isUpgraded(stubborn)) throw new Error('not upgraded')
  const socketClosed = new Promise((resolve) => stubborn.socket.once('close', resolve))
  await hub.close()
  await socketClosed
  t.equal(hub.registry.connections.size, 0, 'terminated and removed')
})

t.test('a port in use fails with a clear error naming the port and the flag', async (t) => {
  const blocker = net.createServer()
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
  t.teardown(() => blocker.close())
  const port = (blocker.address() as net.AddressInfo).port
  await t.rejects(startEchohub(testConfig(['--debug-port', String(port)]), { logger: silent }), {
    code: 'ECHOHUB_ERR_PORT_IN_USE',
    message: new RegExp(`port ${port} \\(echo-debug server\\) is already in use.*--debug-port`)
  })
})

t.test('start-up URLs: localhost plus each LAN IPv4 on 0.0.0.0, only the bound address otherwise', async (t) => {
  const lan = Object.values(networkInterfaces()).flat().filter((a) => a !== undefined && a.family === 'IPv4' && !a.internal).map((a) => a!.address)
  const paths = [{ scheme: 'ws' as const, path: '/' }]
  t.same(clientUrls('0.0.0.0', 8765, paths), ['ws://localhost:8765/', ...lan.map((a) => `ws://${a}:8765/`)])
  t.same(clientUrls('127.0.0.1', 8765, paths), ['ws://127.0.0.1:8765/'], 'none when bound to loopback')
  t.same(clientUrls('::1', 1, paths), ['ws://[::1]:1/'])
})

t.test('VERSION matches package.json', async (t) => {
  t.equal(VERSION, pkg.version)
})

t.test('every port answers CORS and preflights on its HTTP routes, under the same --origins rule', async (t) => {
  const hub = await startEchohub(testConfig(['--origins', 'https://app.example.com']), { logger: silent })
  t.teardown(() => hub.close())
  for (const server of hub.servers) {
    const base = `http://127.0.0.1:${server.port}`
    for (const path of ['/stats', '/health', '/metrics']) {
      const res = await fetch(base + path, { headers: { origin: 'https://app.example.com' } })
      t.equal(res.headers.get('access-control-allow-origin'), 'https://app.example.com', `${server.name} ${path}: a listed origin`)
      await res.arrayBuffer()
    }
    const other = await fetch(base + '/stats', { headers: { origin: 'https://evil.example' } })
    t.equal(other.headers.get('access-control-allow-origin'), null, `${server.name}: an unlisted origin gets no CORS header`)
    await other.arrayBuffer()
    const preflight = await fetch(base + '/stats', {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example.com', 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' }
    })
    t.equal(preflight.status, 204, `${server.name}: a preflight is answered`)
    t.equal(preflight.headers.get('access-control-allow-origin'), 'https://app.example.com')
    t.match(preflight.headers.get('access-control-allow-headers'), /authorization/i, 'a token header may be sent')
  }
})

t.test('the servers log at their level but never below the logger handed in', async (t) => {
  const lines: Array<Record<string, any>> = []
  const sink = new Writable({ write (chunk, _enc, done) { lines.push(JSON.parse(String(chunk))); done() } })
  for (const level of ['warn', 'trace']) {
    const hub = await startEchohub(testConfig(['--only', 'echo']), { logger: pino({ level }, sink) })
    t.teardown(() => hub.close())
    const ws = await connect(t, `ws://127.0.0.1:${hub.servers[0]!.port}/`)
    ws.send('hi')
    await nextJson(ws)
    if (level === 'warn') t.same(lines, [], 'a logger at warn gets no info line')
    else t.ok(lines.some((l) => l.msg === 'message received' && l.level === 30), 'a logger at trace gets the info lines (the servers stay at info)')
    t.notOk(lines.some((l) => l.level < 30), 'and no debug line')
  }
})

t.test('the chat server\'s banner URLs include the inspector and conformance pages', async (t) => {
  const hub = await startEchohub(testConfig(['--only', 'chat']), { logger: silent })
  t.teardown(() => hub.close())
  const port = hub.servers[0]!.port
  t.same(hub.servers[0]!.urls, [`http://127.0.0.1:${port}/`, `ws://127.0.0.1:${port}/ws`, `http://127.0.0.1:${port}/inspect`, `http://127.0.0.1:${port}/conformance`])
})
