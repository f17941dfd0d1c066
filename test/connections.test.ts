// GET /connections and the actions on one connection: send, ping, close, drop, on echo and chat alike.
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { WebSocket } from 'ws'
import { echo, chat, stats, echohubRegistry, type RegistryPluginOptions } from '../index.js'
import { closed, connect, inboxOf, listen, nextJson, nextMessage, until } from './helpers/index.js'
import { joinChat } from './helpers/chat.js'

async function lab (t: Test, registry: RegistryPluginOptions = {}): Promise<{ app: FastifyInstance, port: number, url: string }> {
  return await listen(t, async (app) => {
    await app.register(echohubRegistry, { heartbeatInterval: 0, ...registry })
    await app.register(echo)
    await app.register(chat, { path: '/chat' })
    await app.register(stats)
  })
}

async function list (app: FastifyInstance): Promise<Array<Record<string, any>>> {
  const res = await app.inject('/connections')
  if (res.statusCode !== 200) throw new Error(`/connections answered ${res.statusCode}`)
  return res.json().connections
}

const post = (app: FastifyInstance, path: string, body?: unknown, headers: Record<string, string> = {}) => app.inject({
  method: 'POST',
  url: path,
  headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
  ...(body === undefined ? {} : { payload: typeof body === 'string' ? body : JSON.stringify(body) })
})

t.test('GET /connections lists every connection of the process in the SPEC\'s shape', async (t) => {
  const { app, url } = await lab(t)
  const device = new WebSocket(url + '/device/1?delay=5&token=abc&fw=2', 'mqtt')
  inboxOf(device)
  t.teardown(() => device.terminate())
  await new Promise((resolve, reject) => { device.once('open', resolve); device.once('error', reject) })
  device.send('hello')
  await nextJson(device)
  const chatter = await joinChat(t, url + '/chat')
  const [d, c] = await list(app)
  t.same(Object.keys(d!), ['id', 'endpoint', 'client', 'path', 'controls', 'connected_at', 'messages', 'bytes', 'buffered', 'rtt_ms', 'subprotocol'])
  t.equal(d!.endpoint, 'echo')
  t.match(d!.client, /^127\.0\.0\.1:\d+$/)
  t.equal(d!.path, '/device/1', 'the path without its query (and its token)')
  t.same(d!.controls, { delay: 5 })
  t.match(d!.connected_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
  t.same(d!.messages, { received: 1, sent: 1 })
  t.equal(d!.bytes.received, 5)
  t.ok(d!.bytes.sent > 5, 'the envelope\'s bytes')
  t.equal(d!.buffered, 0)
  t.equal(d!.rtt_ms, null, 'no ping answered yet')
  t.equal(d!.subprotocol, 'mqtt', 'the subprotocol chosen')
  t.equal(c!.endpoint, 'chat')
  t.equal(c!.id, chatter.clientId, 'id is the client_id')
  t.same(c!.controls, {})
  t.equal(c!.subprotocol, null)
})

t.test('send: a text or a binary frame to the connection', async (t) => {
  const { app, url } = await lab(t)
  const ws = await connect(t, url + '/raw')
  const [{ id }] = await list(app) as [{ id: number }]
  const res = await post(app, `/connections/${id}/send`, { text: 'from the server' })
  t.equal(res.statusCode, 202)
  t.same(res.json(), { id, action: 'send', status: 'accepted' })
  const text = await nextMessage(ws)
  t.same([text.isBinary, text.text], [false, 'from the server'])
  t.equal((await post(app, `/connections/${id}/send`, { binary: Buffer.from([0xde, 0xad, 0xbe, 0xef]).toString('base64') })).statusCode, 202)
  const binary = await nextMessage(ws)
  t.equal(binary.isBinary, true)
  t.same([...binary.data], [0xde, 0xad, 0xbe, 0xef])
  const [after] = await list(app)
  t.same(after!.messages, { received: 0, sent: 2 }, 'counted as sent')
})

t.test('bad bodies are 400, unknown ids and actions 404, all with JSON bodies', async (t) => {
  const { app, url } = await lab(t)
  await connect(t, url + '/raw')
  const [{ id }] = await list(app) as [{ id: number }]
  const bad: Array<[string, unknown]> = [
    ['send', undefined], ['send', {}], ['send', { text: 'a', binary: 'YQ==' }], ['send', { text: 5 }],
    ['send', { binary: 'not base64!' }], ['send', { binary: 'YQ' }], ['send', [1]], ['send', '{"text":'],
    ['close', { code: 1005 }], ['close', { code: 999 }], ['close', { code: '4001' }], ['close', { reason: 'x'.repeat(124) }], ['close', 'null']
  ]
  for (const [action, body] of bad) {
    const res = await post(app, `/connections/${id}/${action}`, body)
    t.equal(res.statusCode, 400, `${action} ${JSON.stringify(body)}: 400`)
    t.equal(res.json().error, 'invalid_body')
    t.type(res.json().message, 'string')
  }
  for (const path of ['/connections/999/ping', '/connections/abc/ping', `/connections/${id}/explode`]) {
    const res = await post(app, path)
    t.equal(res.statusCode, 404, `${path}: 404`)
    t.equal(res.json().error, 'not_found')
  }
  t.equal(app.echohub.connections.size, 1, 'the connection is untouched')
})

t.test('ping: the client is pinged and rtt_ms is its round trip', async (t) => {
  const { app, url } = await lab(t)
  const ws = await connect(t, url + '/raw')
  const pinged = new Promise((resolve) => ws.once('ping', resolve))
  const [{ id }] = await list(app) as [{ id: number }]
  t.equal((await post(app, `/connections/${id}/ping`)).statusCode, 202)
  t.equal((await post(app, `/connections/${id}/ping`, '')).statusCode, 202, 'an empty JSON body is no body')
  await pinged
  const conn = [...app.echohub.connections][0]!
  await until(() => conn.rttMs !== undefined, 'the pong')
  const [after] = await list(app)
  t.type(after!.rtt_ms, 'number')
  t.ok(after!.rtt_ms >= 0 && after!.rtt_ms < 5000, `rtt_ms ${after!.rtt_ms}`)
})

t.test('close: the client gets exactly the code and reason; drop ends TCP with no close frame', async (t) => {
  const { app, url } = await lab(t)
  const a = await connect(t, url + '/')
  const b = await connect(t, url + '/raw')
  const [ca, cb] = await list(app)
  t.equal((await post(app, `/connections/${ca!.id}/close`, { code: 4001, reason: 'kicked by the lab' })).statusCode, 202)
  t.same(await closed(a), { code: 4001, reason: 'kicked by the lab' })
  t.equal((await post(app, `/connections/${cb!.id}/drop`)).statusCode, 202)
  t.same(await closed(b), { code: 1006, reason: '' }, 'no close frame: 1006')
  await until(() => app.echohub.connections.size === 0, 'both to leave')
  const c = await connect(t, url + '/')
  const [cc] = await list(app)
  t.equal((await post(app, `/connections/${cc!.id}/close`)).statusCode, 202)
  t.same(await closed(c), { code: 1000, reason: '' }, 'close without a body: 1000')
})

t.test('the actions work on chat connections, broadcasts and all', async (t) => {
  const { app, url } = await lab(t)
  const alice = await joinChat(t, url + '/chat')
  const res = await post(app, `/connections/${alice.clientId}/send`, { text: '{"type":"notice","payload":"hi"}' })
  t.equal(res.statusCode, 202)
  t.same(await alice.inbox.next(), { type: 'notice', payload: 'hi' })
  t.equal((await post(app, `/connections/${alice.clientId}/close`, { code: 4002, reason: 'bye' })).statusCode, 202)
  t.same(await alice.inbox.closed(), { code: 4002, reason: 'bye' })
})

t.test('a POST or a read from another site\'s page is refused with 403; the page\'s own origin on an IP passes', async (t) => {
  const { app, port, url } = await lab(t)
  const ws = await connect(t, url + '/raw')
  const [{ id }] = await list(app) as [{ id: number }]
  const host = `127.0.0.1:${port}`
  const evil = await post(app, `/connections/${id}/drop`, undefined, { origin: 'https://evil.example', host })
  t.equal(evil.statusCode, 403)
  t.equal(evil.json().error, 'origin_not_allowed')
  t.equal(app.echohub.connections.size, 1, 'not dropped')
  const own = await post(app, `/connections/${id}/send`, { text: 'ok' }, { origin: `http://${host}`, host })
  t.equal(own.statusCode, 202)
  t.equal((await nextMessage(ws)).text, 'ok')
  const read = await app.inject({ url: '/connections', headers: { origin: 'https://evil.example' } })
  t.same([read.statusCode, read.json().error], [403, 'origin_not_allowed'], 'nor may it read the list')
})

t.test('with --auth-token, /connections and its actions need the token', async (t) => {
  const { app } = await lab(t, { authToken: 's3cret' })
  t.equal((await app.inject('/connections')).statusCode, 401)
  t.equal((await post(app, '/connections/1/ping')).statusCode, 401)
  t.equal((await app.inject({ url: '/connections', headers: { authorization: 'Bearer s3cret' } })).statusCode, 200)
  t.equal((await app.inject('/connections?token=s3cret')).statusCode, 200)
})

t.test('the list covers every app sharing the registry', async (t) => {
  const { ConnectionRegistry } = await import('../index.js')
  const registry = new ConnectionRegistry()
  const one = await listen(t, async (app) => {
    await app.register(echohubRegistry, { registry, heartbeatInterval: 0 })
    await app.register(echo, { name: 'echo' })
    await app.register(stats)
  })
  const two = await listen(t, async (app) => {
    await app.register(echohubRegistry, { registry, heartbeatInterval: 0 })
    await app.register(chat)
  })
  const ws = await connect(t, two.url + '/ws')
  inboxOf(ws)
  await until(() => registry.connections.size === 1, 'the chat connection')
  const [c] = await list(one.app)
  t.equal(c!.endpoint, 'chat', 'a chat connection of another app, listed on the echo app\'s port')
  t.equal((await post(one.app, `/connections/${c!.id}/close`, { code: 4003 })).statusCode, 202)
  t.equal((await closed(ws)).code, 4003)
})
