// The admin routes that show or act on single clients (/connections and its actions, /rooms,
// POST /publish, /inspect, /inspect/ws): this machine only while no credential is set, the admin
// Origin rule for reads too, and no `Access-Control-Allow-Origin: *`. /health, /stats and /metrics
// stay as they were.
import t, { type Test } from 'tap'
import { request as httpRequest } from 'node:http'
import { networkInterfaces } from 'node:os'
import { Writable } from 'node:stream'
import type { FastifyInstance, FastifyServerOptions } from 'fastify'
import cors from '@fastify/cors'
import { WebSocket } from 'ws'
import { echo, chat, stats, ui, echohubRegistry, type RegistryPluginOptions } from '../index.js'
import { fromLoopback, isLoopback } from '../src/auth/access.js'
import { connect, listen } from './helpers/index.js'
import { startServers } from './helpers/browser.js'
import { SECRET, token as signToken } from './helpers/tokens.js'

async function lab (t: Test, registry: RegistryPluginOptions = {}, options: FastifyServerOptions = {}, origins: '*' | string[] = '*'): Promise<{ app: FastifyInstance, port: number, url: string }> {
  return await listen(t, async (app) => {
    await app.register(echohubRegistry, { heartbeatInterval: 0, origins, ...registry })
    // As echohub's own servers do: CORS on every route, before the routes.
    await app.register(cors, { origin: origins, methods: ['GET', 'HEAD'] })
    await app.register(echo, { path: '/echo' })
    await app.register(chat)
    await app.register(ui)
    await app.register(stats)
  }, options)
}

const REMOTE = '192.0.2.9'
const CLIENT_ROUTES = [
  { method: 'GET' as const, url: '/connections' },
  { method: 'POST' as const, url: '/connections/1/ping' },
  { method: 'GET' as const, url: '/rooms' },
  { method: 'POST' as const, url: '/publish', payload: { payload: 'hi' } },
  { method: 'GET' as const, url: '/inspect' }
]

t.test('loopback: 127.0.0.0/8, ::1 and their IPv4-mapped forms; with a proxy chain, every address', async (t) => {
  for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) t.ok(isLoopback(a), a)
  for (const a of ['192.0.2.9', '::ffff:192.0.2.9', 'fd00::2', '0.0.0.0', '1127.0.0.1', undefined]) t.notOk(isLoopback(a), String(a))
  t.ok(fromLoopback('127.0.0.1', undefined), 'no proxy trusted: the peer alone')
  t.ok(fromLoopback('127.0.0.1', ['127.0.0.1', '::1']))
  t.notOk(fromLoopback('192.0.2.9', ['192.0.2.9', '127.0.0.1']), 'X-Forwarded-For: 127.0.0.1 from another host')
  t.notOk(fromLoopback('127.0.0.1', ['127.0.0.1', '203.0.113.5']), 'a remote client behind a local proxy')
})

t.test('with no credential set, the routes that show or act on single clients answer this machine only', async (t) => {
  const { app } = await lab(t)
  for (const route of CLIENT_ROUTES) {
    const res = await app.inject({ ...route, remoteAddress: REMOTE })
    t.equal(res.statusCode, 403, `${route.method} ${route.url} from another host`)
    t.same(res.json(), {
      error: 'admin_local_only',
      message: 'this route shows or acts on single clients and, with no admin credential set, answers only this machine: set the "authToken" option to use it from another host'
    }, 'a host app is told the plugin option')
  }
  t.equal((await app.inject({ url: '/connections', remoteAddress: '127.0.0.1' })).statusCode, 200, 'this machine passes')
  t.equal((await app.inject({ url: '/connections', remoteAddress: '::1' })).statusCode, 200)
  t.equal((await app.inject({ url: '/rooms', remoteAddress: '::ffff:127.0.0.1' })).statusCode, 200)
  for (const url of ['/health', '/stats', '/metrics']) {
    t.equal((await app.inject({ url, remoteAddress: REMOTE })).statusCode, 200, `${url} stays as it was`)
  }
  t.equal((await app.inject('/stats')).json().limits.hits.admin_local_only, CLIENT_ROUTES.length, 'counted as admin_local_only')
})

t.test('the refusal is logged with the client address', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({ write (chunk: Buffer, _enc, done) { lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done() } })
  const { app } = await lab(t, {}, { logger: { level: 'warn', stream } })
  await app.inject({ url: '/connections', remoteAddress: REMOTE })
  const line = lines.find((l) => l.limit === 'admin_local_only')
  t.ok(line, 'a warn line')
  t.match(line?.client, /^192\.0\.2\.9/)
  t.match(line?.msg, /admin request refused/)
})

t.test('a credential opens them to other hosts: the token, or an admin user', async (t) => {
  const token = await lab(t, { authToken: 's3cret' })
  t.equal((await token.app.inject({ url: '/connections', remoteAddress: REMOTE })).statusCode, 401, 'the token is still needed')
  t.equal((await token.app.inject({ url: '/connections', remoteAddress: REMOTE, headers: { authorization: 'Bearer s3cret' } })).statusCode, 200)
  const users = await lab(t, { jwt: { secret: SECRET } })
  const admin = await signToken({ sub: 'ana', admin: true })
  t.equal((await users.app.inject({ url: '/rooms', remoteAddress: REMOTE, headers: { authorization: `Bearer ${admin}` } })).statusCode, 200)
})

t.test('with trustProxy, the forwarded addresses must be loopback too', async (t) => {
  const { app } = await lab(t, {}, { trustProxy: true })
  const spoofed = await app.inject({ url: '/connections', remoteAddress: REMOTE, headers: { 'x-forwarded-for': '127.0.0.1' } })
  t.equal(spoofed.statusCode, 403, 'X-Forwarded-For: 127.0.0.1 from another host does not open them')
  const behind = await app.inject({ url: '/connections', remoteAddress: '127.0.0.1', headers: { 'x-forwarded-for': '203.0.113.5' } })
  t.equal(behind.statusCode, 403, 'a remote client behind a local proxy')
  const prefixed = await app.inject({ url: '/connections', remoteAddress: '127.0.0.1', headers: { 'x-forwarded-for': '127.0.0.1, 203.0.113.5' } })
  t.equal(prefixed.statusCode, 403, 'a remote client that prefixed its own X-Forwarded-For')
  const local = await app.inject({ url: '/connections', remoteAddress: '127.0.0.1', headers: { 'x-forwarded-for': '127.0.0.1' } })
  t.equal(local.statusCode, 200, 'a browser on this machine through a local proxy')
})

t.test('admin reads: no Access-Control-Allow-Origin *, and the admin Origin rule', async (t) => {
  const { app, port } = await lab(t)
  const host = `127.0.0.1:${port}`
  const evil = await app.inject({ url: '/connections', headers: { origin: 'https://evil.example', host } })
  t.same([evil.statusCode, evil.json().error], [403, 'origin_not_allowed'], 'another site\'s page may not read the list')
  t.equal(evil.headers['access-control-allow-origin'], undefined)
  const rebound = await app.inject({ url: '/rooms', headers: { origin: `http://evil.example:${port}`, host: `evil.example:${port}` } })
  t.equal(rebound.statusCode, 403, 'nor a DNS-rebinding page, whose Host and Origin agree')
  const own = await app.inject({ url: '/connections', headers: { origin: `http://${host}`, host } })
  t.equal(own.statusCode, 200, 'the page\'s own origin on an IP address')
  t.equal(own.headers['access-control-allow-origin'], undefined, 'and no CORS header: it needs none')
  const plain = await app.inject('/rooms')
  t.equal(plain.statusCode, 200, 'no Origin: curl, scripts')
  t.equal(plain.headers['access-control-allow-origin'], undefined, 'never *')
  const preflight = await app.inject({ method: 'OPTIONS', url: '/connections', headers: { origin: 'https://evil.example', host, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' } })
  t.equal(preflight.headers['access-control-allow-origin'], undefined, 'nor a preflight')
  t.equal(preflight.statusCode, 403)
  const page = await app.inject({ url: '/inspect', headers: { origin: 'https://evil.example', host } })
  t.equal(page.statusCode, 403, 'the inspector page too')
  const figures = await app.inject({ url: '/stats', headers: { origin: 'https://evil.example' } })
  t.equal(figures.statusCode, 200, '/stats stays as it was')
  t.equal(figures.headers['access-control-allow-origin'], '*')
})

t.test('only an origin listed in --origins gets CORS headers on them', async (t) => {
  const listed = 'https://dash.example'
  const { app, port } = await lab(t, {}, {}, [listed])
  const res = await app.inject({ url: '/connections', headers: { origin: listed, host: `127.0.0.1:${port}` } })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['access-control-allow-origin'], listed)
  const preflight = await app.inject({ method: 'OPTIONS', url: '/connections/1/ping', headers: { origin: listed, 'access-control-request-method': 'POST' } })
  t.equal(preflight.headers['access-control-allow-origin'], listed, 'and its preflights are answered')
})

/** A non-loopback address of this machine, to connect from. */
function lanAddress (): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (!a.internal && a.family === 'IPv4') return a.address
  }
  return undefined
}
const lan = lanAddress()
const noLan = lan === undefined ? 'this machine has no non-loopback IPv4 address to connect from' : false
if (noLan !== false && process.env.CI) t.fail(`${noLan}: CI must run the wire test of the local-only admin routes`)

/** A GET from `localAddress` to 127.0.0.1: the server sees that address as the peer. */
async function getFrom (port: number, path: string, localAddress?: string): Promise<{ status: number, body: string }> {
  return await new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, ...(localAddress === undefined ? {} : { localAddress }) }, (res) => {
      let body = ''
      res.on('data', (chunk: Buffer) => { body += chunk.toString() })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('on the wire: a client on another address gets 403 naming --auth-token; this machine is let in', { skip: noLan }, async (t) => {
  const hub = await startServers(t, ['--only', 'chat', '--chat-port', '0'])
  const port = hub.servers[0]!.port
  const far = await getFrom(port, '/connections', lan)
  t.equal(far.status, 403)
  t.same(JSON.parse(far.body).error, 'admin_local_only')
  t.match(JSON.parse(far.body).message, /set --auth-token to use it from another host$/, 'the CLI names its flag')
  t.equal((await getFrom(port, '/stats', lan)).status, 200, '/stats stays open')
  t.equal((await getFrom(port, '/connections')).status, 200, 'from 127.0.0.1')
  const refused = await new Promise<number>((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/inspect/ws`, { localAddress: lan })
    ws.on('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); ws.terminate() })
    ws.on('open', () => { resolve(101); ws.terminate() })
    ws.on('error', reject)
  })
  t.equal(refused, 403, 'the inspector\'s WebSocket from another host')
  await connect(t, `ws://127.0.0.1:${port}/inspect/ws`)
  t.pass('the inspector from this machine')
  const device = await connect(t, `ws://127.0.0.1:${port}/ws`, { localAddress: lan })
  t.equal(device.readyState, WebSocket.OPEN, 'clients themselves connect from anywhere')
})
