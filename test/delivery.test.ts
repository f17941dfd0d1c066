// Delivery you can build on, on the wire, in one process: refs on every answer, acks, idempotent
// sends with keys, room epochs, the latest value, and the history budget shared by all rooms.
import t, { type Test } from 'tap'
import { chat, echohubRegistry, stats, type ChatOptions } from '../index.js'
import { listen } from './helpers/index.js'
import { ask, drain, joinChat, next, ofType, send, type Frame } from './helpers/chat.js'
import { SECRET, token } from './helpers/tokens.js'

const ISO_MS_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

async function chatServer (t: Test, options: ChatOptions = {}) {
  const server = await listen(t, async (app) => {
    await app.register(chat, { rateLimit: 0, ...options })
    await app.register(stats)
  })
  return { ...server, url: server.url + '/ws' }
}

t.test('every answer to a frame with a ref carries it right after type', async (t) => {
  const { url } = await chatServer(t)
  const a = await joinChat(t, url)
  const joined = await ask(a, { type: 'join', room: 'lab-1', ref: 'j1' }, 'joined')
  t.same(Object.keys(joined), ['type', 'ref', 'room', 'payload', 'timestamp'])
  t.equal(joined.ref, 'j1')
  const history = await ask(a, { type: 'history', room: 'lab-1', ref: 7 }, 'history')
  t.same(Object.keys(history), ['type', 'ref', 'room', 'epoch', 'payload'])
  t.equal(history.ref, 7, 'a number comes back as a number')
  const pong = await ask(a, { type: 'ping', ref: 0 }, 'pong')
  t.same([Object.keys(pong), pong.ref], [['type', 'ref', 'timestamp'], 0])
  const custom = await ask(a, { type: 'custom_event', payload: { x: 1 }, ref: 'c"\\1' }, 'custom_event')
  t.same([Object.keys(custom), custom.ref, custom.payload], [['type', 'ref', 'payload', 'timestamp'], 'c"\\1', { status: 'received', data: { x: 1 } }], 'a ref with quotes and backslashes comes back as sent')
  const left = await ask(a, { type: 'leave', room: 'lab-1', ref: 'l'.repeat(64) }, 'left')
  t.same([Object.keys(left), left.ref], [['type', 'ref', 'room', 'timestamp'], 'l'.repeat(64)])
  const error = await ask(a, { type: 'message', room: 'lab-1', payload: 1, ref: 'm1' }, 'error')
  t.same(Object.keys(error), ['type', 'ref', 'payload'])
  t.same([error.ref, error.payload.code, error.payload.room], ['m1', 'not_in_room', 'lab-1'])

  const refusals: Array<[object, string]> = [
    [{ ref: 'e1' }, 'invalid_message'],
    [{ type: 'nope', ref: 'e1' }, 'unknown_type'],
    [{ type: 'join', room: 'bad room', ref: 'e1' }, 'invalid_room'],
    [{ type: 'history', room: 'lab-1', limit: 0, ref: 'e1' }, 'invalid_message'],
    [{ type: 'message', ref: 'e1' }, 'invalid_message'],
    [{ type: 'refresh', token: 'x', ref: 'e1' }, 'unknown_type']
  ]
  for (const [frame, code] of refusals) {
    const refused = await ask(a, frame, 'error')
    t.same([refused.ref, refused.payload.code], ['e1', code], `${JSON.stringify(frame)}: ${code}, with its ref`)
  }
  const noRef = await ask(a, { type: 'ping' }, 'pong')
  t.same(Object.keys(noRef), ['type', 'timestamp'], 'without a ref, nothing changes')
})

t.test('a bad ref is refused with invalid_ref, which carries no ref', async (t) => {
  const { url } = await chatServer(t)
  const a = await joinChat(t, url)
  for (const ref of ['', 'x'.repeat(65), -1, 1.5, null, true, { a: 1 }, [1], 2 ** 53]) {
    const error = await ask(a, { type: 'ping', ref }, 'error')
    t.same(Object.keys(error), ['type', 'payload'], `${JSON.stringify(ref)}: no ref on the error`)
    t.equal(error.payload.code, 'invalid_ref')
    t.match(error.payload.message, /"ref" must be a string of 1 to 64 characters or a whole number from 0/)
  }
  t.same(await drain(a), [], 'nothing else was answered')
})

t.test('rate_limited and a failed refresh carry the ref of the frame they refuse', async (t) => {
  const limited = await chatServer(t, { rateLimit: 1, rateBurst: 1 })
  const a = await joinChat(t, limited.url)
  send(a, { type: 'message', payload: 1 })
  send(a, { type: 'message', payload: 2, ref: 'second' })
  const error = await next(a, ofType('error'))
  t.same([error.ref, error.payload.code], ['second', 'rate_limited'])

  const server = await listen(t, async (app) => {
    await app.register(echohubRegistry, { heartbeatInterval: 0, jwt: { secret: SECRET } })
    await app.register(chat, { rateLimit: 0 })
  })
  const user = await joinChat(t, server.url + '/ws', { headers: { authorization: `Bearer ${await token({ sub: 'u1' })}` } })
  const refreshed = await ask(user, { type: 'refresh', token: await token({ sub: 'u1' }), ref: 'r1' }, 'refreshed')
  t.same([Object.keys(refreshed), refreshed.ref], [['type', 'ref', 'exp'], 'r1'])
  const refused = await ask(user, { type: 'refresh', token: await token({ sub: 'u2' }), ref: 'r2' }, 'error')
  t.same([refused.ref, refused.payload.code], ['r2', 'invalid_token'])
})

t.test('a message with a ref is acked with its id, and its seq in a room', async (t) => {
  const { url } = await chatServer(t)
  const a = await joinChat(t, url)
  const b = await joinChat(t, url)
  send(a, { type: 'message', payload: 'hi', ref: 'lobby-1' })
  const lobbyAck = await next(a, ofType('ack'))
  t.same(Object.keys(lobbyAck), ['type', 'ref', 'payload', 'timestamp'])
  t.same(Object.keys(lobbyAck.payload), ['id'], 'no seq in the lobby')
  t.match(lobbyAck.timestamp, ISO_MS_UTC)
  const seen = await next(b, ofType('message'))
  t.equal(lobbyAck.payload.id, seen.id, 'the id of the broadcast')

  await ask(a, { type: 'join', room: 'r' }, 'joined')
  await ask(b, { type: 'join', room: 'r' }, 'joined')
  send(a, { type: 'message', room: 'r', payload: 'in room', ref: 9 })
  const ack = await next(a, ofType('ack'))
  const message = await next(b, (f) => f.type === 'message' && f.room === 'r')
  t.same(ack.payload, { id: message.id, seq: 1 })
  t.equal(ack.ref, 9)
  send(a, { type: 'message', room: 'r', payload: 'no ref' })
  t.notOk((await drain(a)).some((f) => f.type === 'ack'), 'no ref, no ack')
})

t.test('a repeated key within the window is acked as a duplicate and not sent again, from any connection', async (t) => {
  const { url, app } = await chatServer(t)
  const a = await joinChat(t, url)
  const b = await joinChat(t, url)
  const c = await joinChat(t, url)
  for (const client of [a, b, c]) await ask(client, { type: 'join', room: 'r' }, 'joined')
  send(a, { type: 'message', room: 'r', payload: 'once', key: 'k-1', ref: 'first' })
  const first = await next(a, ofType('ack'))
  t.same(Object.keys(first.payload), ['id', 'seq'], 'the first is not a duplicate')
  send(a, { type: 'message', room: 'r', payload: 'once', key: 'k-1', ref: 'again' })
  const again = await next(a, ofType('ack'))
  t.same(again.payload, { id: first.payload.id, seq: first.payload.seq, duplicate: true })
  t.same(Object.keys(again.payload), ['id', 'seq', 'duplicate'])
  send(b, { type: 'message', room: 'r', payload: 'once', key: 'k-1', ref: 'from b' })
  t.same((await next(b, ofType('ack'))).payload, { id: first.payload.id, seq: first.payload.seq, duplicate: true }, 'another connection, the same key: a duplicate')
  send(b, { type: 'message', payload: 'lobby', key: 'k-1', ref: 'lobby' })
  const lobby = await next(b, ofType('ack'))
  t.notOk(lobby.payload.duplicate, 'the lobby is another target')
  send(a, { type: 'message', payload: 'lobby', key: 'k-1', ref: 'lobby again' })
  t.same((await next(a, ofType('ack'))).payload, { id: lobby.payload.id, duplicate: true }, 'a lobby duplicate: its id, no seq')
  send(a, { type: 'message', room: 'r', payload: 'silent repeat', key: 'k-1' })
  const messages = (await drain(c)).filter((f) => f.type === 'message')
  t.same(messages.map((m) => [m.room ?? null, m.payload]), [['r', 'once'], [null, 'lobby']], 'each reached the others once')
  t.equal((await app.inject('/rooms')).json().rooms[0].seq, 1, 'the room numbered one message')

  const bad = await ask(a, { type: 'message', room: 'r', payload: 1, key: 'has space', ref: 'bad' }, 'error')
  t.same([bad.ref, bad.payload.code, bad.payload.room], ['bad', 'invalid_key', 'r'])
  for (const key of ['', 'k'.repeat(65), 5, null]) {
    t.equal((await ask(a, { type: 'message', payload: 1, key }, 'error')).payload.code, 'invalid_key', `key ${JSON.stringify(key)}`)
  }
})

t.test('a key is forgotten after the dedupe window, and past dedupeMaxKeys the oldest first', async (t) => {
  const { url, app } = await chatServer(t, { dedupeWindow: 150, dedupeMaxKeys: 2 })
  const a = await joinChat(t, url)
  send(a, { type: 'message', payload: 1, key: 'w', ref: 1 })
  const first = await next(a, ofType('ack'))
  const sentAt = Date.now()
  send(a, { type: 'message', payload: 1, key: 'w', ref: 2 })
  t.equal((await next(a, ofType('ack'))).payload.duplicate, true, 'within the window: a duplicate')
  // The window is wall-clock time: wait until it is over, then repeat.
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, sentAt + 200 - Date.now())))
  send(a, { type: 'message', payload: 1, key: 'w', ref: 3 })
  const late = await next(a, ofType('ack'))
  t.notOk(late.payload.duplicate, 'after the window: sent again')
  t.ok(late.payload.id > first.payload.id, 'as a new message')

  for (const key of ['k1', 'k2', 'k3']) send(a, { type: 'message', payload: key, key })
  send(a, { type: 'message', payload: 'k3', key: 'k3', ref: 'k3' })
  t.equal((await next(a, (f) => f.type === 'ack' && f.ref === 'k3')).payload.duplicate, true, 'the newest key is remembered')
  send(a, { type: 'message', payload: 'k1', key: 'k1', ref: 'k1' })
  t.notOk((await next(a, (f) => f.type === 'ack' && f.ref === 'k1')).payload.duplicate, 'the oldest was forgotten at the cap of 2')
  const body = (await app.inject('/stats')).json()
  t.ok(body.limits.hits.dedupe_evicted >= 1, 'counted as dedupe_evicted')
  t.match(body.endpoints.chat.limits, { dedupe_window_ms: 150, dedupe_max_keys: 2 })
})

t.test('with identity on, a key is the user\'s: another user\'s same key is another message', async (t) => {
  const server = await listen(t, async (app) => {
    await app.register(echohubRegistry, { heartbeatInterval: 0, jwt: { secret: SECRET } })
    await app.register(chat, { rateLimit: 0 })
  })
  const as = async (sub: string) => await joinChat(t, server.url + '/ws', { headers: { authorization: `Bearer ${await token({ sub })}` } })
  const ana1 = await as('ana')
  const ana2 = await as('ana')
  const bob = await as('bob')
  send(ana1, { type: 'message', payload: 'x', key: 'same', ref: 1 })
  const first = await next(ana1, ofType('ack'))
  send(ana2, { type: 'message', payload: 'x', key: 'same', ref: 1 })
  t.same((await next(ana2, ofType('ack'))).payload, { id: first.payload.id, duplicate: true }, 'the same user on another connection: a duplicate')
  send(bob, { type: 'message', payload: 'x', key: 'same', ref: 1 })
  t.notOk((await next(bob, ofType('ack'))).payload.duplicate, 'another user: a message of its own')
})

t.test('joined and history carry the room epoch; a room forgotten after its ttl has a new one', async (t) => {
  const { url, app } = await chatServer(t, { roomTtl: 30 })
  const a = await joinChat(t, url)
  const joined = await ask(a, { type: 'join', room: 'e' }, 'joined')
  const epoch = joined.payload.epoch
  t.match(epoch, /^[A-Za-z0-9_.:-]{1,64}$/)
  send(a, { type: 'message', room: 'e', payload: 1 })
  send(a, { type: 'message', room: 'e', payload: 2 })
  const history = await ask(a, { type: 'history', room: 'e' }, 'history')
  t.equal(history.epoch, epoch, 'history: the same epoch')
  const b = await joinChat(t, url)
  const resumed = await ask(b, { type: 'join', room: 'e', since: 1, epoch }, 'joined')
  t.same([resumed.payload.recovered, resumed.payload.history.map((m: Frame) => m.seq)], [true, [2]], 'the same epoch resumes')
  t.notOk('reason' in resumed.payload, 'no reason when recovered')
  await ask(a, { type: 'leave', room: 'e' }, 'left')
  await ask(b, { type: 'leave', room: 'e' }, 'left')
  const deadline = Date.now() + 5000
  while ((await app.inject('/rooms')).json().rooms.length > 0) {
    if (Date.now() > deadline) throw new Error('the room was not forgotten')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  const c = await joinChat(t, url)
  const after = await ask(c, { type: 'join', room: 'e', since: 2, epoch }, 'joined')
  t.same(Object.keys(after.payload), ['members', 'seq', 'epoch', 'recovered', 'reason', 'history'])
  t.not(after.payload.epoch, epoch, 'a new epoch')
  t.same([after.payload.seq, after.payload.recovered, after.payload.reason, after.payload.history], [0, false, 'epoch', []], 'reason epoch: the history was lost')
  send(c, { type: 'message', room: 'e', payload: 'new' })
  await next(c, ofType('message'))
  const d = await joinChat(t, url)
  const stale = await ask(d, { type: 'join', room: 'e', since: 2, epoch }, 'joined')
  t.same([stale.payload.reason, stale.payload.history.map((m: Frame) => m.payload)], ['epoch', ['new']], 'since is ignored: what the new epoch kept')

  for (const bad of ['', 'has space', 'x'.repeat(65), 3, null]) {
    const error = await ask(d, { type: 'join', room: 'e', since: 0, epoch: bad, ref: 'x' }, 'error')
    t.same([error.ref, error.payload.code, error.payload.room], ['x', 'invalid_epoch', 'e'], `epoch ${JSON.stringify(bad)}`)
  }
})

t.test('join with latest gets the room\'s last message', async (t) => {
  const { url } = await chatServer(t)
  const a = await joinChat(t, url)
  const empty = await ask(a, { type: 'join', room: 'gauge', latest: true }, 'joined')
  t.same(empty.payload.history, [], 'no message yet: nothing')
  for (const value of [1, 2, 3]) send(a, { type: 'message', room: 'gauge', payload: { value } })
  await drain(a)
  const b = await joinChat(t, url)
  const joined = await ask(b, { type: 'join', room: 'gauge', latest: true }, 'joined')
  t.same(joined.payload.history.map((m: Frame) => [m.seq, m.payload]), [[3, { value: 3 }]], 'the last message')
  t.same([joined.payload.seq, joined.payload.recovered], [3, true])
  const c = await joinChat(t, url)
  const plain = await ask(c, { type: 'join', room: 'gauge', latest: false }, 'joined')
  t.same(plain.payload.history, [], 'latest false: as without it')
  const d = await joinChat(t, url)
  const resumed = await ask(d, { type: 'join', room: 'gauge', since: 1, latest: true }, 'joined')
  t.same(resumed.payload.history.map((m: Frame) => m.seq), [2, 3], 'with since, latest is ignored')
  send(a, { type: 'message', room: 'gauge', payload: { value: 4 } })
  t.equal((await next(b, ofType('message'))).seq, 4, 'then the live ones')
  for (const latest of ['yes', 1, null]) {
    const error = await ask(d, { type: 'join', room: 'gauge', latest }, 'error')
    t.same([error.payload.code, error.payload.room], ['invalid_message', 'gauge'], `latest ${JSON.stringify(latest)}`)
  }
})

t.test('the history budget is shared by all rooms: the oldest messages go first, whatever their room', async (t) => {
  const payload = 'x'.repeat(1000)
  // Each stored frame is about 1.1 KB: room a's three and room b's two fill 5.5 KB of a 5 KB budget.
  const { url, app } = await chatServer(t, { historyMaxBytes: 5000 })
  const client = await joinChat(t, url)
  await ask(client, { type: 'join', room: 'a' }, 'joined')
  await ask(client, { type: 'join', room: 'b' }, 'joined')
  for (let i = 1; i <= 3; i++) send(client, { type: 'message', room: 'a', payload })
  await drain(client)
  const before = (await app.inject('/stats')).json()
  t.equal(before.rooms.history.messages, 3)
  t.notOk(before.limits.hits.history_evicted, 'nothing evicted within the budget')
  for (let i = 1; i <= 2; i++) send(client, { type: 'message', room: 'b', payload })
  await drain(client)
  const body = (await app.inject('/stats')).json()
  t.equal(body.rooms.history.messages, 4, 'one message evicted')
  t.ok(body.rooms.history.bytes <= 5000 && body.rooms.history.bytes > 4000, `within the budget (${body.rooms.history.bytes} bytes)`)
  t.equal(body.limits.hits.history_evicted, 1, 'counted as history_evicted')
  t.equal(body.endpoints.chat.limits.history_max_bytes, 5000)
  const a = await ask(client, { type: 'history', room: 'a' }, 'history')
  t.same(a.payload.map((m: Frame) => m.seq), [2, 3], "room a's oldest went first")
  const b = await ask(client, { type: 'history', room: 'b' }, 'history')
  t.same(b.payload.map((m: Frame) => m.seq), [1, 2], 'room b kept its newer ones')
  const late = await joinChat(t, url)
  const resumed = await ask(late, { type: 'join', room: 'a', since: 0 }, 'joined')
  t.same([resumed.payload.recovered, resumed.payload.reason, resumed.payload.history.map((m: Frame) => m.seq)], [false, 'evicted', [2, 3]], 'a later since: recovered false, reason evicted')
})
