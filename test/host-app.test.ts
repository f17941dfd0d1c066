// echohub as a guest in someone else's app: its origin list, token, caps, heartbeat and shutdown
// apply to its own routes and sockets only. The app's own HTTP route and its own WebSocket route
// (in the app's own encapsulated context) are checked from the app's side, in every registration
// order: the app's routes before or after echohub's, with or without the app registering
// @fastify/websocket itself.
import t, { type Test } from 'tap'
import http from 'node:http'
import { randomBytes } from 'node:crypto'
import websocket from '@fastify/websocket'
import type { FastifyInstance, FastifyPluginAsync, FastifyServerOptions } from 'fastify'
import { echo, echohubRegistry, SHUTDOWN_REASON, type RegistryPluginOptions } from '../index.js'
import { closed, connect, listen, nextMessage, until } from './helpers/index.js'
import { frame, isUpgraded, readFrames, rawUpgrade, type HttpAnswer } from './helpers/raw.js'

interface Variant {
  name: string
  /** The app registers @fastify/websocket itself, before anything else. */
  appWebsocket: boolean
  /** The app's routes come before echohub's. */
  appFirst: boolean
}

const VARIANTS: Variant[] = [
  { name: 'app routes first, app registers @fastify/websocket', appWebsocket: true, appFirst: true },
  { name: 'echohub first, app registers @fastify/websocket', appWebsocket: true, appFirst: false },
  { name: 'app routes first, echohub registers @fastify/websocket', appWebsocket: false, appFirst: true },
  { name: 'echohub first, echohub registers @fastify/websocket', appWebsocket: false, appFirst: false }
]

const GOOD = 'https://good.example'
const EVIL = 'https://evil.example'
const TOKEN = 's3cret'

/** The app's own HTTP route, in its own encapsulated context. */
const appHttp: FastifyPluginAsync = async (app) => {
  app.get('/app/hello', async () => ({ hello: 'from the app' }))
}

/** The app's own WebSocket route, in its own encapsulated context: a plain echo. */
const appWs: FastifyPluginAsync = async (app) => {
  app.get('/app/ws', { websocket: true }, (socket) => {
    socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }))
  })
}

/**
 * Builds the host app in the variant's order. A WebSocket route needs @fastify/websocket registered
 * before it, so where echohub is to register the library, the app's WebSocket route follows
 * echohub even when its HTTP route comes first.
 */
async function hostApp (t: Test, variant: Variant, options: RegistryPluginOptions, fastifyOptions: FastifyServerOptions = {}) {
  const echohub = async (app: FastifyInstance) => {
    await app.register(echohubRegistry, options)
    await app.register(echo, { path: '/echo' })
  }
  return await listen(t, async (app) => {
    if (variant.appWebsocket) await app.register(websocket)
    if (variant.appFirst) {
      await app.register(appHttp)
      if (variant.appWebsocket) await app.register(appWs)
      await echohub(app)
      if (!variant.appWebsocket) await app.register(appWs)
    } else {
      await echohub(app)
      await app.register(appHttp)
      await app.register(appWs)
    }
  }, fastifyOptions)
}

/**
 * Tries an upgrade: 101 when accepted, the HTTP status and body of a refusal, or status 0 when the
 * server hung up without an answer. The socket is reset at once, so it cannot hold up a closing server.
 */
function tryUpgrade (port: number, path: string): Promise<{ status: number, body: string }> {
  return new Promise((resolve) => {
    const request = http.get({
      host: '127.0.0.1',
      port,
      path,
      agent: false,
      headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': randomBytes(16).toString('base64') }
    })
    request.on('upgrade', (_response, socket) => {
      socket.resetAndDestroy()
      resolve({ status: 101, body: '' })
    })
    request.on('response', (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { body += chunk })
      response.on('end', () => {
        resolve({ status: response.statusCode ?? 0, body })
        response.socket.destroy()
      })
    })
    request.on('error', () => resolve({ status: 0, body: '' }))
  })
}

function refused (answer: Awaited<ReturnType<typeof rawUpgrade>>): HttpAnswer {
  if (isUpgraded(answer)) throw new Error('the upgrade was accepted')
  return answer
}

for (const variant of VARIANTS) {
  t.test(`${variant.name}: echohub's origin list, token and caps stay off the app's routes`, async (t) => {
    const { app, port, url } = await hostApp(t, variant, { origins: [GOOD], authToken: TOKEN, maxConnections: 1, heartbeatInterval: 0 })

    // echohub's own route has its policy...
    t.equal(refused(await rawUpgrade(t, port, '/echo', { Origin: EVIL, Authorization: `Bearer ${TOKEN}` })).status, 403, 'echohub refuses an unlisted origin')
    t.equal(refused(await rawUpgrade(t, port, '/echo', { Origin: GOOD })).status, 401, 'echohub refuses a client without the token')

    // ...the app's routes do not: an unlisted origin, no token.
    const res = await fetch(`http://127.0.0.1:${port}/app/hello`, { headers: { origin: EVIL } })
    t.equal(res.status, 200, 'the app\'s HTTP route answers an unlisted origin without a token')
    t.same(await res.json(), { hello: 'from the app' })
    const mine = await connect(t, `${url}/app/ws`, { origin: EVIL })
    mine.send('hello app')
    t.equal((await nextMessage(mine)).text, 'hello app', 'the app\'s WebSocket route takes an unlisted origin without a token')

    // The app's sockets do not count against echohub's cap, and a full cap does not refuse them.
    const ours = await connect(t, `${url}/echo`, { origin: GOOD, headers: { authorization: `Bearer ${TOKEN}` } })
    t.equal(app.echohub.connections.size, 1, 'echohub holds only its own connection')
    t.equal(refused(await rawUpgrade(t, port, '/echo', { Authorization: `Bearer ${TOKEN}` })).status, 503, 'echohub\'s cap is full')
    const another = await connect(t, `${url}/app/ws`, { origin: EVIL })
    another.send('still mine')
    t.equal((await nextMessage(another)).text, 'still mine', 'the app\'s WebSocket route still takes connections')
    t.equal(ours.readyState, ours.OPEN)
    t.same(app.echohub.limitHits, { origin: 1, auth: 1, max_connections: 1 }, 'only echohub\'s refusals are counted')
  })

  t.test(`${variant.name}: echohub's heartbeat leaves the app's sockets alone`, async (t) => {
    const { app, url } = await hostApp(t, variant, { heartbeatInterval: 20 })
    // No client here answers pings. The app's connects first, so it would be pinged no later than echohub's.
    const mine = await connect(t, `${url}/app/ws`, { autoPong: false })
    let appPings = 0
    mine.on('ping', () => { appPings++ })
    const first = await connect(t, `${url}/echo`, { autoPong: false })
    await closed(first)
    // A second silent client cut off too means at least two more beats have passed since.
    const second = await connect(t, `${url}/echo`, { autoPong: false })
    await closed(second)
    t.equal(app.echohub.limitHits.heartbeat_timeout, 2, 'echohub cut off its own silent clients')
    t.equal(appPings, 0, 'the app\'s client was never pinged')
    t.equal(mine.readyState, mine.OPEN, 'and it is still connected')
    mine.send('alive')
    t.equal((await nextMessage(mine)).text, 'alive')
  })

  t.test(`${variant.name}: echohub's shutdown leaves the app's sockets to @fastify/websocket`, async (t) => {
    // Routing stays on while closing (as in echohub's own servers), so each route's refusal shows.
    const { app, port, url } = await hostApp(t, variant, { heartbeatInterval: 0, shutdownTimeout: 60000 }, { return503OnClosing: false })
    const mine = await connect(t, `${url}/app/ws`)
    const ours = await connect(t, `${url}/echo`)
    // Reads the close frame but never answers it, so echohub's wait lasts until this test ends it.
    const stubborn = await rawUpgrade(t, port, '/echo')
    if (!isUpgraded(stubborn)) throw new Error('not upgraded')
    const stubbornClose = new Promise<Buffer>((resolve) => readFrames(stubborn, (f) => { if (f.opcode === 0x8) resolve(f.payload) }))
    const mineClosed = closed(mine)
    const oursClosed = closed(ours)
    const closing = app.close()
    // What @fastify/websocket's default preClose gives every client: a close frame without a code.
    t.same(await mineClosed, { code: 1005, reason: '' }, 'the app\'s client is closed as @fastify/websocket closes it')
    // In both orders: echohub's hook runs before the library's closes every client.
    t.same(await oursClosed, { code: 1001, reason: SHUTDOWN_REASON }, 'echohub\'s client gets 1001 with the reason')
    t.equal((await stubbornClose).readUInt16BE(0), 1001)
    // While echohub waits, neither route takes a new client; echohub's own route says why.
    t.not((await tryUpgrade(port, '/app/ws')).status, 101, 'no new client on the app\'s route')
    const late = await tryUpgrade(port, '/echo')
    if (variant.appWebsocket) {
      t.not(late.status, 101, 'nor on echohub\'s (the app\'s @fastify/websocket stopped taking upgrades)')
    } else {
      t.equal(late.status, 503, 'echohub\'s route refuses with 503')
      t.equal(JSON.parse(late.body).error, 'shutting_down')
    }
    t.equal(app.echohub.draining, true, 'echohub drained')
    await until(() => app.echohub.connections.size === 1, 'the other client to leave')
    t.equal(app.echohub.connections.size, 1, 'echohub waits for its stubborn client')
    stubborn.socket.end(frame(0x8, Buffer.from([0x03, 0xe9])))
    await closing
    t.equal(app.echohub.connections.size, 0, 'echohub waited for its clients to leave')
  })
}
