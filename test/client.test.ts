// echohub/client in Node (with ws, loaded by the client itself): acks, a send retried across a
// forced disconnect delivered once, a resume on another instance with no gap and no duplicate, a
// token refreshed past its first exp, a Redis restarted empty reported as reason `epoch`, and the
// ordering of room messages (held, reordered, repeats dropped) against a scripted server.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { connect, expiryOf, type ChatMessage, type ConnectionState, type JoinedEvent, type SocketEvent, type WebSocketLike } from '../src/client/index.js'
import { joinChat, drain } from './helpers/chat.js'
import { eventually } from './helpers/index.js'
import { client, drop, losingAcks, next, opened, startChat } from './helpers/client.js'
import { REDIS_URL, ownRedis, redisMissing, redisServerMissing, testPrefix } from './helpers/redis.js'
import { SECRET, now, token } from './helpers/tokens.js'

const redisSkip = await redisMissing()
if (redisSkip !== undefined && process.env.CI) t.fail(`${redisSkip}: CI must run the multi-instance client tests`)
const serverSkip = redisSkip ?? await redisServerMissing()
if (serverSkip !== undefined && process.env.CI) t.fail(`${serverSkip}: CI must run the Redis restart client test`)

/** Every `message` event of a client, in the order delivered. */
function collect (chat: ReturnType<typeof connect>): ChatMessage[] {
  const got: ChatMessage[] = []
  chat.on('message', (m) => got.push(m))
  return got
}

t.test('the pages\' server serves the compiled client as /client.js, a module with no imports', async (t) => {
  const { http } = await startChat(t)
  const res = await fetch(`${http}/client.js`)
  t.equal(res.status, 200)
  t.match(res.headers.get('content-type'), /^text\/javascript/)
  t.equal(res.headers.get('x-content-type-options'), 'nosniff')
  const code = await res.text()
  t.equal(code, readFileSync(fileURLToPath(new URL('../dist/src/client/index.js', import.meta.url)), 'utf8'), 'the built file')
  t.match(code, /export function connect/)
  t.notMatch(code, /^import /m, 'nothing a page would have to fetch besides it')
})

t.test('send resolves with the ack\'s id and seq, and every member gets the message once', async (t) => {
  const { ws } = await startChat(t)
  const ana = client(t, ws)
  const bob = client(t, ws)
  const anaGot = collect(ana)
  const bobGot = collect(bob)
  const joined = await ana.join('lab')
  t.equal(joined.recovered, true)
  t.equal(joined.seq, 0)
  await bob.join('lab')
  const result = await ana.send('lab', { text: 'hi' })
  t.same(result, { id: result.id, seq: 1, duplicate: false }, 'acked with seq 1, not a duplicate')
  await eventually(async () => bobGot.length === 1 && anaGot.length === 1, 'the message at both members')
  t.equal(bobGot[0]!.id, result.id)
  t.same(bobGot[0]!.payload, { text: 'hi' })
  const lobby = await bob.send(null, 'everyone')
  t.equal(lobby.seq, null, 'a lobby message has no seq')
  await t.rejects(ana.send('nowhere', 'x'), { code: 'not_in_room' }, 'a refusal rejects with the error\'s code')
  await t.rejects(ana.send('lab', 'x', { key: 'bad key!' }), { code: 'invalid_key' })
})

t.test('a send retried across a forced disconnect is delivered exactly once', async (t) => {
  const { ws, http } = await startChat(t)
  const observer = await joinChat(t, ws)
  observer.ws.send('{"type":"join","room":"lab"}')
  t.equal((await observer.inbox.next()).type, 'joined')

  // The first connection loses its acks: the server takes the message, the client never hears so.
  let first = true
  const ana = client(t, ws, { WebSocket: losingAcks(() => { const lossy = first; first = false; return lossy }) })
  const got = collect(ana)
  await ana.join('lab')
  const firstId = await opened(ana)
  const sent = ana.send('lab', 'once', { key: 'k-once' })
  let seen = await observer.inbox.next()
  while (seen.type === 'presence') seen = await observer.inbox.next()
  t.match(seen, { type: 'message', room: 'lab', payload: 'once', seq: 1 }, 'the server took it')

  // The connection dies before any ack could arrive; the client comes back and sends it again.
  const rejoined = next(ana, 'joined', (j) => j.rejoined)
  await drop(http, firstId)
  const result = await sent
  t.same(result, { id: seen.id, seq: 1, duplicate: true }, 'acked on the new connection as the first one\'s duplicate')
  t.not(ana.clientId, firstId, 'on a new connection')
  t.equal((await rejoined).recovered, true)

  // A send made while disconnected waits for the new connection, then goes once.
  const waiting = next(ana, 'state', (s) => s.state === 'waiting')
  await drop(http, ana.clientId!)
  await waiting
  const later = await ana.send('lab', 'while away')
  t.equal(later.duplicate, false)
  t.equal(later.seq, 2)

  const rest = await drain(observer)
  t.same(rest.filter((f) => f.type === 'message').map((f) => f.payload), ['while away'], 'the observer got each message once')
  await eventually(async () => got.length >= 2, 'the sender\'s own copies')
  t.same(got.map((m) => [m.seq, m.payload]), [[1, 'once'], [2, 'while away']], 'the sender delivered each once, in order')
})

t.test('a client that reconnects to another instance resumes with no gap and no duplicate', { skip: redisSkip ?? false }, async (t) => {
  const prefix = testPrefix(t)
  const args = ['--redis', REDIS_URL, '--redis-prefix', prefix, '--rate-limit', '1000', '--rate-burst', '1000']
  const one = await startChat(t, args)
  const two = await startChat(t, args)
  // As behind a load balancer: the first instance while it is up, then the other.
  let oneUp = true
  const reader = client(t, () => oneUp ? one.ws : two.ws)
  const writer = client(t, two.ws)
  const got = collect(reader)
  await reader.join('feed')
  await writer.join('feed')

  const acked: number[] = []
  const sendSome = async (n: number) => {
    for (let i = 0; i < n; i++) acked.push((await writer.send('feed', { n: acked.length + 1 })).seq!)
  }
  await sendSome(20)
  const waiting = next(reader, 'state', (s) => s.state === 'waiting')
  const rejoined = next(reader, 'joined', (j) => j.rejoined)
  oneUp = false
  await one.close()
  await waiting
  await sendSome(20) // while the reader is away, or rejoining
  t.equal((await rejoined).recovered, true, 'resumed on the other instance')
  await sendSome(20)
  await eventually(async () => got.length >= 60, 'all 60 messages at the reader')
  t.same(acked, Array.from({ length: 60 }, (_, i) => i + 1), 'the writer\'s sends were acked with seqs 1-60')
  t.same(got.map((m) => m.seq), acked, 'the reader got every acked message once, in order')
  await writer.send('feed', 'last')
  await eventually(async () => got.length === 61, 'the last message')
  t.equal(got.length, 61, 'and nothing twice')
})

t.test('a token refresh keeps the connection past the first token\'s exp', async (t) => {
  const { ws, http } = await startChat(t, ['--jwt-secret', SECRET])
  const observer = await joinChat(t, ws, { headers: { authorization: `Bearer ${await token({ sub: 'obs' })}` } })
  const first = await token({ sub: 'u1', exp: now() + 3 })
  let issued = 0
  const states: ConnectionState[] = []
  const ana = client(t, ws, { token: first, getToken: async () => { issued++; return await token({ sub: 'u1' }) } })
  const clientId = await opened(ana)
  t.equal(issued, 0, 'connected with the first token')
  ana.on('state', (s) => states.push(s))
  // Past the first token's exp, with a second to spare for the server's check.
  const until = expiryOf(first)! + 1500 - Date.now()
  await new Promise((resolve) => setTimeout(resolve, until))
  t.ok(issued >= 1, 'getToken was called for a new token')
  t.equal(ana.state.state, 'open', 'still open')
  t.equal(ana.clientId, clientId, 'on the same connection')
  t.same(states, [], 'never disconnected')
  const list = await (await fetch(`${http}/connections`, { headers: { authorization: `Bearer ${await token({ sub: 'admin', admin: true })}` } })).json() as { connections: Array<{ id: number }> }
  t.ok(list.connections.some((c) => c.id === clientId), 'the server still holds it')
  void ana.send(null, 'after exp').catch(() => {})
  t.match(await observer.inbox.next(), { type: 'message', payload: 'after exp', from: clientId }, 'and it still sends')
})

t.test('after Redis restarts empty, a rejoin reports recovered:false with reason epoch', { skip: serverSkip ?? false }, async (t) => {
  const redis = await ownRedis(t)
  const { http, ws } = await startChat(t, ['--redis', redis.url])
  const ana = client(t, ws)
  await ana.join('lab')
  // Acks can come before the messages themselves, which reach their sender through Redis.
  const third = next(ana, 'message', (m: ChatMessage) => m.seq === 3)
  for (const text of ['a', 'b', 'c']) await ana.send('lab', text)
  await third
  const before = ana.rooms()[0]!
  t.equal(before.seq, 3)
  ana.stop()
  const redisState = async () => ((await (await fetch(`${http}/health`)).json()) as { redis?: string }).redis
  await redis.stop()
  await eventually(async () => await redisState() === 'down', 'echohub to see Redis gone', 15_000)
  await redis.start()
  await eventually(async () => await redisState() !== 'down', 'echohub back on Redis', 15_000)
  const joined = next(ana, 'joined', (j: JoinedEvent) => j.rejoined)
  ana.reconnect()
  const event = await joined
  t.equal(event.recovered, false, JSON.stringify(event))
  t.equal(event.reason, 'epoch')
  t.not(event.epoch, before.epoch, 'a new epoch')
  const delivered = next(ana, 'message', (m: ChatMessage) => m.seq === 1)
  const after = await ana.send('lab', 'new')
  t.equal(after.seq, 1, 'seq starts again')
  await delivered
  t.equal(ana.rooms()[0]!.seq, 1, 'and the client follows it')
})

t.test('a client connected while Redis restarts empty follows the new epoch: the next message is delivered', { skip: serverSkip ?? false }, async (t) => {
  const redis = await ownRedis(t)
  const { http, ws } = await startChat(t, ['--redis', redis.url])
  const ana = client(t, ws)
  const bob = client(t, ws)
  const got = collect(ana)
  await ana.join('lab')
  await bob.join('lab')
  for (const text of ['a', 'b']) await bob.send('lab', text)
  await eventually(async () => got.length === 2, 'the first two')
  const redisState = async () => ((await (await fetch(`${http}/health`)).json()) as { redis?: string }).redis
  let told = false
  ana.on('reset', () => { told = true })
  ana.on('joined', (j) => { if (j.reason === 'epoch') told = true })
  await redis.stop()
  await eventually(async () => await redisState() === 'down', 'echohub to see Redis gone', 15_000)
  await redis.start()
  await eventually(async () => await redisState() !== 'down', 'echohub back on Redis', 15_000)
  const sent = await bob.send('lab', 'new epoch')
  t.equal(sent.seq, 1, 'the room counts again from 1')
  await eventually(async () => got.length === 3, 'the new epoch\'s first message')
  t.ok(told, 'the client was told: a reset, or a rejoin with reason epoch')
  t.same(got.map((m) => [m.seq, m.payload]), [[1, 'a'], [2, 'b'], [1, 'new epoch']], 'delivered once, after the two before')
})

/** A server the test scripts: what the client sent, and a way to send it frames. */
class ScriptedSocket implements WebSocketLike {
  static last: ScriptedSocket | undefined
  readyState = 0
  readonly sent: Array<Record<string, unknown>> = []
  readonly #listeners = new Map<string, Array<(event: SocketEvent) => void>>()
  readonly url: string
  constructor (url: string) {
    this.url = url
    ScriptedSocket.last = this
    queueMicrotask(() => {
      this.readyState = 1
      this.#fire('open', { type: 'open' })
      this.push({ type: 'welcome', payload: { client_id: 1, message: 'hi', server_info: 'script' } })
    })
  }

  send (data: string): void { this.sent.push(JSON.parse(data) as Record<string, unknown>) }
  close (): void { this.readyState = 3 }
  addEventListener (type: string, listener: (event: SocketEvent) => void): void {
    this.#listeners.set(type, [...(this.#listeners.get(type) ?? []), listener])
  }

  push (frame: object): void { this.#fire('message', { type: 'message', data: JSON.stringify(frame) }) }
  #fire (type: string, event: SocketEvent): void { for (const l of this.#listeners.get(type) ?? []) l(event) }
}

const msg = (seq: number) => ({ type: 'message', room: 'lab', payload: seq, from: 2, id: 100 + seq, seq, timestamp: '' })

t.test('room messages are delivered once and in seq order: held across a gap, repeats dropped, the gap filled by a rejoin', async (t) => {
  const chat = client(t, 'ws://127.0.0.1:1/ws', { WebSocket: ScriptedSocket })
  const got = collect(chat)
  const joining = chat.join('lab')
  await opened(chat)
  const socket = ScriptedSocket.last!
  t.match(socket.sent[0], { type: 'join', room: 'lab' })
  t.notOk('since' in socket.sent[0]!, 'a first join has no since')
  // A live message before the joined answer is held, not lost.
  socket.push(msg(6))
  socket.push({ type: 'joined', ref: socket.sent[0]!.ref, room: 'lab', payload: { members: [1], seq: 5, epoch: 'e1', recovered: true, history: [] } })
  await joining
  for (const seq of [8, 7, 7, 6, 9]) socket.push(msg(seq))
  t.same(got.map((m) => m.seq), [6, 7, 8, 9], 'reordered, each once')

  // 11 without 10: held; a rejoin with since 9 and the epoch asks for what is missing.
  socket.push(msg(11))
  t.same(got.map((m) => m.seq), [6, 7, 8, 9])
  await eventually(async () => socket.sent.length === 2, 'a rejoin', 3000)
  t.match(socket.sent[1], { type: 'join', room: 'lab', since: 9, epoch: 'e1' })
  socket.push({ type: 'joined', ref: socket.sent[1]!.ref, room: 'lab', payload: { members: [1], seq: 11, epoch: 'e1', recovered: true, history: [msg(10), msg(11)] } })
  t.same(got.map((m) => m.seq), [6, 7, 8, 9, 10, 11], 'the gap filled, 11 not twice')

  // A reset: the room's history started over, and so do the numbers.
  const reset = next(chat, 'reset')
  socket.push({ type: 'reset', room: 'lab', payload: { epoch: 'e2', seq: 0 }, timestamp: '' })
  t.same(await reset, { room: 'lab', epoch: 'e2', seq: 0 })
  socket.push(msg(1))
  t.same(got.map((m) => m.seq), [6, 7, 8, 9, 10, 11, 1], 'the new epoch\'s first message is delivered')

  // A reset that arrives after the new epoch already has messages: they are read from its start.
  got.length = 0
  socket.push({ type: 'reset', room: 'lab', payload: { epoch: 'e3', seq: 2 }, timestamp: '' })
  const asked = socket.sent.at(-1)!
  t.match(asked, { type: 'history', room: 'lab', since: 0 }, 'history from the new epoch\'s start')
  socket.push(msg(3))
  t.same(got, [], 'a live message waits for the ones before it')
  socket.push({ type: 'history', ref: asked.ref, room: 'lab', epoch: 'e3', payload: [msg(1), msg(2)] })
  t.same(got.map((m) => m.seq), [1, 2, 3], 'then all three, in order')
})
