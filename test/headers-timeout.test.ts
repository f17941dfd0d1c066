// Slow requests: a socket that has not completed its request's headers in --headers-timeout ms
// (from accept, its TLS handshake included) is closed, counted and logged; until then it counts
// against the per-address cap by its peer address, unless that is a proxy trustProxy names.
import t, { type Test } from 'tap'
import { connect as tcpConnect, type Socket } from 'node:net'
import { Writable } from 'node:stream'
import type { FastifyInstance, FastifyServerOptions } from 'fastify'
import { WebSocket } from 'ws'
import { echo, stats, echohubRegistry, parseConfig, type RegistryPluginOptions } from '../index.js'
import { headersDeadline } from '../src/transport/headers-deadline.js'
import { selfSignedTls } from '../src/transport/tls.js'
import { connect, eventually, listen, until } from './helpers/index.js'
import { isUpgraded, rawUpgrade } from './helpers/raw.js'

async function server (t: Test, registry: RegistryPluginOptions, options: FastifyServerOptions = {}): Promise<{ app: FastifyInstance, port: number, url: string }> {
  return await listen(t, async (app) => {
    await app.register(echohubRegistry, { heartbeatInterval: 0, ...registry })
    await app.register(echo)
    await app.register(stats)
  }, options)
}

/** A raw TCP socket to the server, destroyed in teardown. */
async function socketTo (t: Test, port: number): Promise<Socket> {
  const socket = tcpConnect({ host: '127.0.0.1', port })
  t.teardown(() => socket.destroy())
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  return socket
}

/** Sockets the server holds open. */
async function accepted (app: FastifyInstance): Promise<number> {
  return await new Promise((resolve, reject) => app.server.getConnections((err, n) => { if (err !== null) reject(err); else resolve(n) }))
}

/**
 * Resolves with how long after `since` the socket closed; rejects when it is still open after
 * `bound` ms (a bound for the failure's sake, far above the timeout under test).
 */
async function closedWithin (socket: Socket, since: number, bound: number): Promise<number> {
  return await new Promise((resolve, reject) => {
    const guard = setTimeout(() => reject(new Error(`still open after ${bound} ms`)), bound)
    socket.once('close', () => {
      clearTimeout(guard)
      resolve(Date.now() - since)
    })
  })
}

t.test('a socket that trickles its headers is closed once --headers-timeout has passed since accept', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({ write (chunk: Buffer, _enc, done) { lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done() } })
  const { app, port } = await server(t, { headersTimeout: 300 }, { logger: { level: 'warn', stream } })
  const started = Date.now()
  const slow = await socketTo(t, port)
  slow.on('error', () => {})
  slow.write('GET / HTTP/1.1\r\n')
  // One header line every 50 ms: it never finishes, and it never stays quiet for long.
  const trickle = setInterval(() => { if (!slow.destroyed) slow.write('X-Slow: 1\r\n') }, 50)
  t.teardown(() => clearInterval(trickle))
  const after = await closedWithin(slow, started, 5000)
  clearInterval(trickle)
  t.ok(after >= 290, `closed after ${after} ms, not before the timeout`)
  const body = (await app.inject('/stats')).json()
  t.equal(body.limits.hits.headers_timeout, 1, 'counted as headers_timeout')
  t.equal(body.limits.settings.headers_timeout_ms, 300, 'shown in the settings')
  const line = lines.find((l) => l.timeout_ms === 300)
  t.match(line?.msg, /headers not complete in time/, 'and logged')
  t.match(line?.client, /^127\.0\.0\.1:\d+$/)
  t.equal(headersDeadline(app.echohub).pending, 0, 'no socket is left counted')
})

t.test('a socket that sends nothing at all is closed too', async (t) => {
  const { port } = await server(t, { headersTimeout: 200 })
  const started = Date.now()
  const idle = await socketTo(t, port)
  idle.on('error', () => {})
  t.ok(await closedWithin(idle, started, 5000) >= 190)
})

t.test('a TLS socket that never handshakes is closed after the timeout, the handshake included', async (t) => {
  const tls = await selfSignedTls(t.testdir() + '/.echohub', ['localhost', '127.0.0.1'])
  const { app, port } = await server(t, { headersTimeout: 300 }, { https: { cert: tls.cert, key: tls.key } } as FastifyServerOptions)
  const started = Date.now()
  const mute = await socketTo(t, port)
  mute.on('error', () => {})
  t.ok(await closedWithin(mute, started, 5000) >= 290, 'closed, though TLS alone would wait 120 s')
  t.equal(app.echohub.limitHits.headers_timeout, 1)
  const client = await connect(t, `wss://127.0.0.1:${port}/`, { rejectUnauthorized: false })
  t.equal(client.readyState, WebSocket.OPEN, 'a client that handshakes and sends its headers in time connects')
  // A socket accepted after the client's: once it is closed, the client's deadline has passed too.
  const since = Date.now()
  const later = await socketTo(t, port)
  later.on('error', () => {})
  await closedWithin(later, since, 5000)
  t.equal(client.readyState, WebSocket.OPEN, 'and stays open past its deadline: its TLS socket\'s headers were seen')
  t.equal(app.echohub.limitHits.headers_timeout, 2)
})

t.test('a socket whose headers came in time is not touched by the timeout', async (t) => {
  const { url, port } = await server(t, { headersTimeout: 200 })
  const client = await connect(t, url + '/raw')
  // A socket accepted after the client's: once it is closed, the client's deadline has passed too.
  const started = Date.now()
  const later = await socketTo(t, port)
  later.on('error', () => {})
  await closedWithin(later, started, 5000)
  t.equal(client.readyState, WebSocket.OPEN, 'the WebSocket stays open')
  client.send('still here')
  const echoed = await new Promise<string>((resolve) => client.once('message', (data: Buffer) => resolve(data.toString())))
  t.equal(echoed, 'still here')
})

t.test('sockets still sending their headers count against the per-address cap', async (t) => {
  const { app, port } = await server(t, { headersTimeout: 60_000, maxConnectionsPerIp: 3 })
  const half = await Promise.all([0, 1, 2].map(async () => {
    const s = await socketTo(t, port)
    s.write('GET / HTTP/1.1\r\nHost: x\r\n')
    return s
  }))
  await eventually(async () => await accepted(app) === 3, 'the server to accept the three sockets')
  t.equal(headersDeadline(app.echohub).pendingFrom('127.0.0.1'), 3, 'all three wait for their headers')
  const refused = await rawUpgrade(t, port, '/raw')
  t.equal(isUpgraded(refused) ? 101 : refused.status, 429, 'the upgrade is refused while they hold the address\'s share')
  if (!isUpgraded(refused)) t.equal(JSON.parse(refused.body).error, 'too_many_connections')
  for (const s of half) s.destroy()
  await until(() => headersDeadline(app.echohub).pendingFrom('127.0.0.1') === 0, 'the sockets to be gone')
  const admitted = await rawUpgrade(t, port, '/raw')
  t.ok(isUpgraded(admitted), 'once they are gone, the upgrade is let in')
})

t.test('a proxy named in trustProxy is exempt from that count', async (t) => {
  const { app, port } = await server(t, { headersTimeout: 60_000, maxConnectionsPerIp: 2 }, { trustProxy: '127.0.0.1' })
  for (let i = 0; i < 3; i++) (await socketTo(t, port)).write('GET / HTTP/1.1\r\n')
  await eventually(async () => await accepted(app) === 3, 'the server to accept the three sockets')
  t.equal(headersDeadline(app.echohub).pendingFrom('127.0.0.1'), 3, 'all three wait for their headers')
  const admitted = await rawUpgrade(t, port, '/raw')
  t.ok(isUpgraded(admitted), 'the proxy\'s waiting sockets are many clients\', not one address\'s')
})

t.test('--headers-timeout: flag, environment variable, plugin option checked at register', async (t) => {
  const flag = parseConfig(['--headers-timeout', '2500'], {})
  t.equal(flag.help ? undefined : flag.config.headersTimeout, 2500)
  const env = parseConfig([], { HEADERS_TIMEOUT: '700' })
  t.equal(env.help ? undefined : env.config.headersTimeout, 700)
  const dflt = parseConfig([], {})
  t.equal(dflt.help ? undefined : dflt.config.headersTimeout, 10000)
  t.throws(() => parseConfig(['--headers-timeout', '0'], {}), /headers-timeout/)
  const { default: Fastify } = await import('fastify')
  const bad = Fastify({ logger: false })
  t.teardown(() => bad.close())
  await t.rejects(async () => { await bad.register(echohubRegistry, { headersTimeout: 0 }).ready() }, { code: 'ECHOHUB_ERR_INVALID_OPTION', message: /headersTimeout/ })
})
