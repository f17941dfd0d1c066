// Users from signed tokens on the wire: refusals before the upgrade, users in the chat's and
// echo-debug's frames, the rooms claim, expiry (4401), refresh, admin routes, a host app's own
// authenticate, and tokens kept out of the logs.
import t, { type Test } from 'tap'
import Fastify from 'fastify'
import { pino } from 'pino'
import { Writable } from 'node:stream'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { fileURLToPath } from 'node:url'
import { chat, echo, echohubRegistry, stats, ui, InvalidTokenError, type RegistryPluginOptions } from '../index.js'
import { closed, connect, inboxOf, listen } from './helpers/index.js'
import { drain, joinChat, type ChatClient, type Frame } from './helpers/chat.js'
import { isUpgraded, rawUpgrade } from './helpers/raw.js'
import { SECRET, ecKeyPair, now, token, unsignedToken } from './helpers/tokens.js'

const JWT = { secret: SECRET }

/** An app with identity on: echo (greeting, like echo-debug) at /echo, chat at /ws, the admin routes. */
async function hub (t: Test, registry: RegistryPluginOptions = { jwt: JWT }) {
  const server = await listen(t, async (app) => {
    await app.register(echohubRegistry, { heartbeatInterval: 0, ...registry })
    await app.register(echo, { path: '/echo', name: 'echo-debug', welcome: true, raw: false })
    await app.register(chat, { rateLimit: 0 })
    await app.register(stats)
  })
  return { ...server, chatUrl: `${server.url}/ws`, echoUrl: `${server.url}/echo` }
}

const bearer = (jwt: string) => ({ headers: { authorization: `Bearer ${jwt}` } })

function send (client: ChatClient, frame: object): void {
  client.ws.send(JSON.stringify(frame))
}

async function nextOf (client: ChatClient, type: string): Promise<Frame> {
  for (;;) {
    const next = await client.inbox.next()
    if (next.type === type) return next
  }
}

async function refusal (t: Test, port: number, path: string, headers: Record<string, string> = {}) {
  const answer = await rawUpgrade(t, port, path, headers)
  if (isUpgraded(answer)) throw new Error(`${path} was upgraded`)
  return { status: answer.status, body: JSON.parse(answer.body) as Frame }
}

t.test('with identity on, an upgrade without a good token is refused with 401 JSON before any WebSocket', async (t) => {
  const { app, port } = await hub(t, { jwt: JWT, authToken: 'admin-secret' })
  const rsa = ecKeyPair()
  const cases: Array<[string, Record<string, string>, string, RegExp]> = [
    ['/ws', {}, 'invalid_token', /JWT\) is required/],
    ['/echo', {}, 'invalid_token', /JWT\) is required/],
    ['/ws?token=garbage', {}, 'invalid_token', /well-formed/],
    ['/ws', { authorization: 'Bearer admin-secret' }, 'invalid_token', /well-formed/],
    ['/ws?token=admin-secret', {}, 'invalid_token', /well-formed/],
    [`/ws?token=${unsignedToken({ sub: 'u1' })}`, {}, 'invalid_token', /"none"/],
    [`/ws?token=${await token({ sub: 'u1' }, 'a-different-secret-of-thirty-two-bytes')}`, {}, 'invalid_token', /signature/],
    [`/echo?token=${await token({ sub: 'u1' }, rsa.privateKey, 'ES256')}`, {}, 'invalid_token', /accepts only HS256/],
    [`/ws?token=${await token({ sub: 'u1', exp: now() - 30 })}`, {}, 'token_expired', /expired at/],
    ['/echo', { authorization: `Bearer ${await token({ sub: 'u1', exp: now() - 30 })}` }, 'token_expired', /expired at/],
    [`/ws?token=${await token({ sub: 'u1', nbf: now() + 60 })}`, {}, 'invalid_token', /not valid yet/],
    [`/ws?token=${await token({ name: 'no sub' })}`, {}, 'invalid_token', /"sub"/]
  ]
  let refused = 0
  for (const [path, headers, error, message] of cases) {
    const { status, body } = await refusal(t, port, path, headers)
    t.equal(status, 401, `${path.slice(0, 30)}: 401`)
    t.same(Object.keys(body), ['error', 'message'])
    t.equal(body.error, error)
    t.match(body.message, message)
    refused++
  }
  t.equal(app.echohub.limitHits.auth, refused, 'each refusal counted as auth')
  t.equal(app.echohub.connections.size, 0, 'no connection was opened')
  t.same(app.echohub.snapshot().limits.settings.identity, 'jwt')
})

t.test('welcome, message and echo-debug welcome name the user; echo envelopes and server messages do not', async (t) => {
  const { app, chatUrl, echoUrl } = await hub(t)
  const ana = await joinChat(t, chatUrl, bearer(await token({ sub: 'u1', name: 'Ana' })))
  const bob = await joinChat(t, `${chatUrl}?token=${await token({ sub: 'u2' })}`)
  t.same(Object.keys(ana.welcome.payload), ['client_id', 'user', 'message', 'server_info'], 'user right after client_id')
  t.same(ana.welcome.payload.user, { id: 'u1', name: 'Ana' })
  t.same(bob.welcome.payload.user, { id: 'u2' }, 'no name claim: no name key')

  send(ana, { type: 'message', payload: 'hi' })
  for (const c of [ana, bob]) {
    const m = await nextOf(c, 'message')
    t.same(Object.keys(m), ['type', 'payload', 'from', 'user', 'id', 'timestamp'], 'user right after from')
    t.same([m.from, m.user], [ana.clientId, { id: 'u1', name: 'Ana' }])
  }
  await app.echohub.chats.get('chat')!.publish(null, 'from the server')
  const published = await nextOf(bob, 'message')
  t.equal(published.from, 0)
  t.notOk('user' in published, 'a server message has no user')

  const ws = await connect(t, echoUrl, bearer(await token({ sub: 'dev-7', name: 'Board 7' })))
  const welcome = await inboxOf(ws).next()
  t.same(Object.keys(welcome), ['type', 'message', 'timestamp', 'client_id', 'user', 'server_info'])
  t.same(welcome.user, { id: 'dev-7', name: 'Board 7' })
  ws.send('hello')
  const envelope = await inboxOf(ws).next()
  t.same(Object.keys(envelope), ['type', 'original_message', 'timestamp', 'client', 'message_id', 'server_info'], 'the echo envelope does not change')
})

t.test('rooms: joined lists users, presence names the user, and the rooms claim is enforced with forbidden', async (t) => {
  const { app, chatUrl } = await hub(t)
  const ana = await joinChat(t, chatUrl, bearer(await token({ sub: 'u1', name: 'Ana', rooms: ['lab-*'] })))
  const bob = await joinChat(t, chatUrl, bearer(await token({ sub: 'u2', name: 'Bob' })))

  send(ana, { type: 'join', room: 'lab-1' })
  const joinedA = await nextOf(ana, 'joined')
  t.same(Object.keys(joinedA.payload), ['members', 'users', 'seq', 'epoch', 'recovered', 'history'], 'users right after members')
  t.same(joinedA.payload.users, { [ana.clientId]: { id: 'u1', name: 'Ana' } })

  send(bob, { type: 'join', room: 'lab-1' })
  const joinedB = await nextOf(bob, 'joined')
  t.same(joinedB.payload.members, [ana.clientId, bob.clientId])
  t.same(joinedB.payload.users, { [ana.clientId]: { id: 'u1', name: 'Ana' }, [bob.clientId]: { id: 'u2', name: 'Bob' } })
  const presence = await nextOf(ana, 'presence')
  t.same(Object.keys(presence.payload), ['event', 'client_id', 'user', 'count'], 'user right after client_id')
  t.same(presence.payload, { event: 'join', client_id: bob.clientId, user: { id: 'u2', name: 'Bob' }, count: 2 })

  send(bob, { type: 'message', room: 'lab-1', payload: 'in the room' })
  const roomMessage = await nextOf(ana, 'message')
  t.same(Object.keys(roomMessage), ['type', 'room', 'payload', 'from', 'user', 'id', 'seq', 'timestamp'])
  t.same(roomMessage.user, { id: 'u2', name: 'Bob' })

  send(ana, { type: 'join', room: 'ops' })
  const forbidden = await nextOf(ana, 'error')
  t.same(forbidden.payload.code, 'forbidden')
  t.equal(forbidden.payload.room, 'ops')
  t.match(forbidden.payload.message, /not allowed in room "ops"/)
  send(bob, { type: 'join', room: 'ops' })
  t.equal((await nextOf(bob, 'joined')).room, 'ops', 'no rooms claim: any room')
  t.same((await drain(ana)).filter((f) => f.room === 'ops'), [], 'ana saw nothing of ops')
  t.equal(app.echohub.limitHits.forbidden, 1)

  send(bob, { type: 'leave', room: 'lab-1' })
  const left = await nextOf(ana, 'presence')
  t.same(left.payload, { event: 'leave', client_id: bob.clientId, user: { id: 'u2', name: 'Bob' }, count: 1 })
})

t.test('an expired token closes chat and echo connections with 4401 "token expired"', async (t) => {
  const { app, chatUrl, echoUrl } = await hub(t)
  const jwt = await token({ sub: 'u1', exp: now() + 2 })
  const a = await joinChat(t, chatUrl, bearer(jwt))
  const echoWs = await connect(t, echoUrl, bearer(jwt))
  t.same(await a.inbox.closed(), { code: 4401, reason: 'token expired' })
  t.same(await closed(echoWs), { code: 4401, reason: 'token expired' })
  t.equal(app.echohub.limitHits.token_expired, 2)
})

t.test('refresh: a token for the same user moves the expiry; another user or a bad token does not', async (t) => {
  const { chatUrl } = await hub(t)
  const soon = now() + 1
  const later = now() + 3
  const refreshed = await joinChat(t, chatUrl, bearer(await token({ sub: 'u1', name: 'Ana', exp: soon })))
  const other = await joinChat(t, chatUrl, bearer(await token({ sub: 'u1', exp: later })))

  const exp = now() + 3600
  send(refreshed, { type: 'refresh', token: await token({ sub: 'u1', exp }) })
  const answer = await refreshed.inbox.nextRaw()
  t.equal(answer.text, `{"type":"refreshed","exp":${exp}}`, 'refreshed with the new exp, in Unix seconds')

  send(other, { type: 'refresh', token: await token({ sub: 'u2', exp }) })
  const wrongUser = await nextOf(other, 'error')
  t.equal(wrongUser.payload.code, 'invalid_token')
  t.match(wrongUser.payload.message, /another user/)
  send(other, { type: 'refresh', token: 'garbage' })
  t.match((await nextOf(other, 'error')).payload, { code: 'invalid_token', message: /well-formed/ })
  send(other, { type: 'refresh', token: await token({ sub: 'u1', exp: now() - 60 }) })
  t.match((await nextOf(other, 'error')).payload, { code: 'invalid_token', message: /expired/ })
  send(other, { type: 'refresh' })
  t.equal((await nextOf(other, 'error')).payload.code, 'invalid_message')

  // `other` still ends at its old exp, which comes after `refreshed`'s old one: that one is past by then.
  t.same(await other.inbox.closed(), { code: 4401, reason: 'token expired' })
  t.same(await drain(refreshed), [], 'the refreshed connection is still open and answering')
})

t.test('without identity a refresh is an unknown type, and no frame carries a user', async (t) => {
  const server = await listen(t, async (app) => {
    await app.register(chat, { rateLimit: 0 })
  })
  const a = await joinChat(t, `${server.url}/ws`)
  t.same(Object.keys(a.welcome.payload), ['client_id', 'message', 'server_info'])
  send(a, { type: 'refresh', token: await token({ sub: 'u1' }) })
  const error = await nextOf(a, 'error')
  send(a, { type: 'renew' })
  const unknown = await nextOf(a, 'error')
  t.equal(error.payload.code, 'unknown_type')
  t.equal(error.payload.message, unknown.payload.message.replace('"renew"', '"refresh"'), 'the same words as any unknown type')
  send(a, { type: 'join', room: 'r' })
  t.same(Object.keys((await nextOf(a, 'joined')).payload), ['members', 'seq', 'epoch', 'recovered', 'history'])
  send(a, { type: 'message', payload: 1 })
  t.notOk('user' in await nextOf(a, 'message'))
})

t.test('admin routes: an admin JWT with identity on and no auth token; 403 admin_required without admin', async (t) => {
  const { app, port } = await hub(t)
  const base = `http://127.0.0.1:${port}`
  const admin = await token({ sub: 'root', admin: true })
  const user = await token({ sub: 'u1' })
  for (const path of ['/stats', '/metrics', '/rooms', '/connections']) {
    t.equal((await app.inject({ url: path })).statusCode, 401, `${path} without a token`)
    t.same((await app.inject({ url: path, headers: { authorization: 'Bearer nope' } })).json(), { error: 'invalid_token', message: 'the token is not a well-formed JWT (header.payload.signature, base64url)' })
    const forbidden = await app.inject({ url: path, headers: { authorization: `Bearer ${user}` } })
    t.equal(forbidden.statusCode, 403, `${path} for a user without admin`)
    t.equal(forbidden.json().error, 'admin_required')
    t.equal((await app.inject({ url: `${path}?token=${admin}` })).statusCode, 200, `${path} for an admin`)
  }
  const expired = await app.inject({ url: '/stats', headers: { authorization: `Bearer ${await token({ sub: 'root', admin: true, exp: now() - 60 })}` } })
  t.same([expired.statusCode, expired.json().error], [401, 'token_expired'])
  t.equal((await app.inject({ url: '/publish', method: 'POST', payload: { payload: 'x' }, headers: { authorization: `Bearer ${user}` } })).statusCode, 403, 'POST /publish too')
  t.equal((await app.inject({ url: '/publish', method: 'POST', payload: { payload: 'x' }, headers: { authorization: `Bearer ${admin}` } })).statusCode, 202)
  const health = await fetch(`${base}/health`)
  t.equal(health.status, 200, '/health stays open')

  const ana = await joinChat(t, `ws://127.0.0.1:${port}/ws?token=${await token({ sub: 'ana', name: 'Ana' })}`)
  const listed = (await app.inject({ url: '/connections', ...bearer(admin) })).json().connections
  t.same(listed.find((c: Frame) => c.id === ana.clientId)?.user, { id: 'ana', name: 'Ana' }, '/connections shows each connection\'s user')
})

t.test('the inspector is an admin route too: its WebSocket takes an admin user, not any user', async (t) => {
  const { port } = await listen(t, async (app) => {
    await app.register(echohubRegistry, { heartbeatInterval: 0, jwt: JWT })
    await app.register(ui)
  })
  const user = await token({ sub: 'u1' })
  const admin = await token({ sub: 'root', admin: true })
  t.equal((await refusal(t, port, '/inspect/ws')).status, 401, 'no token')
  const notAdmin = await refusal(t, port, `/inspect/ws?token=${user}`)
  t.same([notAdmin.status, notAdmin.body.error], [403, 'admin_required'])
  t.ok(isUpgraded(await rawUpgrade(t, port, `/inspect/ws?token=${admin}`)), 'an admin is let in')
})

t.test('admin routes: with --auth-token set, only it opens them, even for an admin JWT', async (t) => {
  const { app } = await hub(t, { jwt: JWT, authToken: 'admin-secret' })
  const admin = await token({ sub: 'root', admin: true })
  t.equal((await app.inject({ url: '/stats', headers: { authorization: `Bearer ${admin}` } })).statusCode, 401)
  t.equal((await app.inject({ url: '/stats', headers: { authorization: 'Bearer admin-secret' } })).statusCode, 200)
})

t.test('a host app plugs its own authenticate in: an API key table and a session cookie', async (t) => {
  const keys = new Map([['key-ana', { id: 'ana', name: 'Ana' }], ['key-ops', { id: 'ops', admin: true }]])
  const sessions = new Map([['s3cr3t', { id: 'bob', name: 'Bob', rooms: ['support'] }]])
  const server = await listen(t, async (app) => {
    await app.register(echohubRegistry, {
      heartbeatInterval: 0,
      async authenticate (request) {
        const key = request.headers['x-api-key']
        if (typeof key === 'string') {
          const user = keys.get(key)
          if (user === undefined) throw new InvalidTokenError('unknown API key')
          return user
        }
        const session = /(?:^|;\s*)session=([^;]+)/.exec(request.headers.cookie ?? '')?.[1]
        if (session === 'boom') throw new Error('session store down')
        const user = session === undefined ? undefined : sessions.get(session)
        if (user === undefined) throw new InvalidTokenError('log in first')
        return user
      }
    })
    await app.register(chat, { rateLimit: 0 })
    await app.register(stats)
    app.get('/mine', async () => ({ open: true }))
  })
  const url = `${server.url}/ws`
  const ana = await joinChat(t, url, { headers: { 'x-api-key': 'key-ana' } })
  t.same(ana.welcome.payload.user, { id: 'ana', name: 'Ana' })
  const bob = await joinChat(t, url, { headers: { cookie: 'theme=dark; session=s3cr3t' } })
  t.same(bob.welcome.payload.user, { id: 'bob', name: 'Bob' })
  send(bob, { type: 'join', room: 'lab-1' })
  t.equal((await nextOf(bob, 'error')).payload.code, 'forbidden', 'its rooms are enforced')

  t.same(await refusal(t, server.port, '/ws', { 'x-api-key': 'nope' }), { status: 401, body: { error: 'invalid_token', message: 'unknown API key' } })
  t.same(await refusal(t, server.port, '/ws'), { status: 401, body: { error: 'invalid_token', message: 'log in first' } })
  t.same(await refusal(t, server.port, '/ws', { cookie: 'session=boom' }), { status: 401, body: { error: 'invalid_token', message: 'the credentials were refused' } }, 'its own failure is not shown')

  send(ana, { type: 'refresh', token: 'x' })
  t.equal((await nextOf(ana, 'error')).payload.code, 'unknown_type', 'no verifyToken: no in-band refresh')
  t.equal((await server.app.inject({ url: '/stats', headers: { 'x-api-key': 'key-ana' } })).statusCode, 403)
  t.equal((await server.app.inject({ url: '/stats', headers: { 'x-api-key': 'key-ops' } })).statusCode, 200)
  t.equal((await server.app.inject({ url: '/mine' })).statusCode, 200, "the app's own routes are untouched")
})

t.test('a host app\'s verifyToken lets chat clients refresh; what it returns is checked', async (t) => {
  const server = await listen(t, async (app) => {
    await app.register(echohubRegistry, {
      heartbeatInterval: 0,
      authenticate: (request) => ({ id: String(request.headers['x-user']), expiresAt: Date.now() + 60_000 }),
      verifyToken: (token) => token === 'good' ? { id: 'ana', expiresAt: 1_900_000_000_000 } : token === 'odd' ? { id: 'ana', expiresAt: 'later' } as never : { id: 'mallory' }
    })
    await app.register(chat, { rateLimit: 0 })
  })
  const ana = await joinChat(t, `${server.url}/ws`, { headers: { 'x-user': 'ana' } })
  send(ana, { type: 'refresh', token: 'good' })
  t.equal((await ana.inbox.nextRaw()).text, '{"type":"refreshed","exp":1900000000}')
  send(ana, { type: 'refresh', token: 'odd' })
  t.match((await nextOf(ana, 'error')).payload, { code: 'invalid_token', message: /credentials were refused/ }, 'a malformed user from verifyToken is refused')
  send(ana, { type: 'refresh', token: 'other' })
  t.match((await nextOf(ana, 'error')).payload, { code: 'invalid_token', message: /another user/ })
})

t.test('plugin options: jwt and authenticate are checked at register', async (t) => {
  const attempt = async (options: object) => {
    const app = Fastify({ logger: false })
    t.teardown(() => app.close())
    await app.register(echohubRegistry, options)
    await app.ready()
  }
  await t.rejects(attempt({ jwt: { secret: 'short' } }), { code: 'ECHOHUB_ERR_INVALID_OPTION', message: /option "jwt.secret" is 5 bytes/ })
  await t.rejects(attempt({ jwt: { publicKey: 'nope' } }), { code: 'ECHOHUB_ERR_INVALID_OPTION', message: /option "jwt.publicKey" is not a PEM public key/ })
  await t.rejects(attempt({ jwt: { secret: SECRET, audience: 3 } }), { message: /option "jwt.audience" must be a non-empty string/ })
  await t.rejects(attempt({ jwt: {} }), { message: /option "jwt" give either secret/ })
  await t.rejects(attempt({ jwt: JWT, authenticate: () => ({ id: 'x' }) }), { message: /option "jwt" and "authenticate" exclude each other/ })
  await t.rejects(attempt({ authenticate: 'yes' }), { message: /option "authenticate" must be a function/ })
  await t.rejects(attempt({ verifyToken: () => ({ id: 'x' }) }), { message: /option "verifyToken" needs "authenticate"/ })
  await t.rejects(attempt({ jwt: { secret: SECRET, clockTolerance: -1 } }), { message: /option "clockTolerance" must be an integer from 0 to 300/ })
  await attempt({ jwt: { publicKey: ecKeyPair().publicKey } })
})

t.test('tokens never reach the logs: not the upgrade URL, not a refresh frame', async (t) => {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _enc, done) { lines.push(String(chunk)); done() } })
  const app = Fastify({ loggerInstance: pino({ level: 'debug' }, stream) })
  t.teardown(() => app.close())
  await app.register(echohubRegistry, { jwt: JWT, heartbeatInterval: 0 })
  await app.register(chat, { rateLimit: 0 })
  await app.register(echo, { path: '/echo', debug: true, raw: false })
  await app.register(stats)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as { port: number }).port
  const jwt = await token({ sub: 'u1' })
  const fresh = await token({ sub: 'u1', exp: now() + 7200 })
  const a = await joinChat(t, `ws://127.0.0.1:${port}/ws?token=${jwt}`)
  send(a, { type: 'refresh', token: fresh })
  await nextOf(a, 'refreshed')
  const echoWs = await connect(t, `ws://127.0.0.1:${port}/echo?token=${jwt}`)
  echoWs.send('x')
  await inboxOf(echoWs).next()
  await refusal(t, port, `/ws?token=${jwt.slice(0, -3)}xyz`)
  const admin = await token({ sub: 'root', admin: true })
  t.equal((await fetch(`http://127.0.0.1:${port}/stats?token=${admin}`)).status, 200)
  const all = lines.join('')
  t.notOk(all.includes(admin), 'an admin token on /stats is not logged either')
  t.ok(all.includes('message received'), 'the refresh frame was logged')
  t.ok(all.includes('[redacted'), 'with the token hidden')
  for (const secret of [jwt, fresh, jwt.split('.')[2]!, jwt.slice(0, -3)]) t.notOk(all.includes(secret), 'no token in any log line')
})

t.test('the CLI: a bad --jwt-public-key file or a short secret ends the start with exit 1 and one line', async (t) => {
  const cli = fileURLToPath(new URL('../dist/app/cli.js', import.meta.url))
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run "npm run build" first (npm test does)`)
  const dir = mkdtempSync(join(tmpdir(), 'echohub-key-'))
  writeFileSync(join(dir, 'bad.pem'), '-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n')
  const run = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
    const child = spawn(process.execPath, [cli, '--chat-port', '0', '--echo-port', '0', '--debug-port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, JWT_SECRET: '', JWT_PUBLIC_KEY: '', ...env } })
    t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
    let stderr = ''
    child.stderr.on('data', (chunk) => { stderr += String(chunk) })
    const [code] = await once(child, 'exit')
    return { code, stderr }
  }
  for (const [args, env, message] of [
    [['--jwt-public-key', join(dir, 'missing.pem')], {}, /^echohub: --jwt-public-key cannot read .*missing\.pem: ENOENT\n$/],
    [['--jwt-public-key', join(dir, 'bad.pem')], {}, /^echohub: --jwt-public-key .*bad\.pem is not a PEM public key .*\n$/],
    [[], { JWT_SECRET: 'too-short' }, /^echohub: JWT_SECRET is 9 bytes; HS256 needs a secret of at least 32 bytes/]
  ] as Array<[string[], NodeJS.ProcessEnv, RegExp]>) {
    const { code, stderr } = await run(args, env)
    t.equal(code, 1, `${args.join(' ') || JSON.stringify(env)}: exit 1`)
    t.match(stderr, message)
    t.equal(stderr.trim().split('\n').length, 1, 'one line, no stack trace')
  }
})
