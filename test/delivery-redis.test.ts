// Delivery you can build on across instances on one Redis: acks with seq (null while Redis is
// down), a key sent to two instances at once delivered once, and epochs made anew when Redis
// restarts empty or a room is forgotten, with the reset live members get.
import t, { type Test } from 'tap'
import { chat, stats, RedisAdapter, type ChatOptions } from '../index.js'
import { eventually, listen } from './helpers/index.js'
import { ask, drain, joinChat, next, ofType, send, type Frame } from './helpers/chat.js'
import { REDIS_URL, ownRedis, redisMissing, redisServerMissing, testPrefix } from './helpers/redis.js'

const missing = await redisMissing()
if (missing !== undefined && process.env.CI) t.fail(`${missing}: CI must run the Redis delivery tests`)
const serverMissing = missing ?? await redisServerMissing()
if (serverMissing !== undefined && process.env.CI) t.fail(`${serverMissing}: CI must run the Redis restart tests`)

/** One chat instance on the given Redis and prefix; closed in teardown. */
async function instance (t: Test, url: string, prefix: string, options: ChatOptions = {}) {
  const adapter = new RedisAdapter(url, { prefix })
  const server = await listen(t, async (app) => {
    await app.register(chat, { rateLimit: 0, adapter, ...options })
    await app.register(stats)
  })
  return { ...server, adapter, url: server.url + '/ws' }
}

t.test('on Redis: acks carry the seq; one key sent to two instances at once is delivered once', { skip: missing ?? false }, async (t) => {
  const prefix = testPrefix(t)
  const one = await instance(t, REDIS_URL, prefix)
  const two = await instance(t, REDIS_URL, prefix)
  const a = await joinChat(t, one.url)
  const b = await joinChat(t, two.url)
  const watcher = await joinChat(t, two.url)
  for (const client of [a, b, watcher]) await ask(client, { type: 'join', room: 'r' }, 'joined')
  send(a, { type: 'message', room: 'r', payload: 'first', ref: 'a0' })
  const ack = await next(a, ofType('ack'))
  t.same([Object.keys(ack.payload), ack.payload.seq], [['id', 'seq'], 1], 'the ack has the seq Redis gave')

  for (let round = 1; round <= 5; round++) {
    const key = `k-${round}`
    send(a, { type: 'message', room: 'r', payload: key, key, ref: key })
    send(b, { type: 'message', room: 'r', payload: key, key, ref: key })
    const [ackA, ackB] = await Promise.all([next(a, ofType('ack')), next(b, ofType('ack'))])
    t.same([ackA.payload.id, ackA.payload.seq], [ackB.payload.id, ackB.payload.seq], `round ${round}: both acks name one message`)
    t.equal([ackA, ackB].filter((x) => x.payload.duplicate === true).length, 1, `round ${round}: one of them is the duplicate`)
  }
  send(a, { type: 'message', room: 'r', payload: 'end', ref: 'end' })
  await next(a, (f) => f.type === 'ack' && f.ref === 'end')
  const seen = await next(watcher, (f) => f.type === 'message' && f.payload === 'end').then(() => watcher.inbox.received.map((r) => r.frame).filter((f) => f.type === 'message'))
  t.same(seen.map((m) => m.payload), ['first', 'k-1', 'k-2', 'k-3', 'k-4', 'k-5', 'end'], 'every key reached the other members once, in seq order')
  t.same(seen.map((m) => m.seq), [1, 2, 3, 4, 5, 6, 7])
})

t.test('on Redis: acks say seq null while Redis is down; a restart empty gives the room a new epoch and a reset', { skip: serverMissing ?? false }, async (t) => {
  const redis = await ownRedis(t)
  const prefix = 'echohub-test:delivery:'
  const one = await instance(t, redis.url, prefix)
  const two = await instance(t, redis.url, prefix)
  const a = await joinChat(t, one.url)
  const b = await joinChat(t, two.url)
  const joined = await ask(a, { type: 'join', room: 'lab' }, 'joined')
  const epoch = joined.payload.epoch
  t.equal((await ask(b, { type: 'join', room: 'lab' }, 'joined')).payload.epoch, epoch, 'one epoch on both instances')
  send(a, { type: 'message', room: 'lab', payload: 1, ref: 1 })
  t.equal((await next(a, ofType('ack'))).payload.seq, 1)
  await next(b, ofType('message'))

  await redis.stop()
  await eventually(async () => one.adapter.status === 'down' && two.adapter.status === 'down', 'both instances to notice')
  send(a, { type: 'message', room: 'lab', payload: 'while down', ref: 'down', key: 'kd' })
  const down = await next(a, ofType('ack'))
  t.same([down.ref, down.payload.seq, typeof down.payload.id], ['down', null, 'number'], 'acked with seq null')
  send(a, { type: 'message', room: 'lab', payload: 'while down', ref: 'down again', key: 'kd' })
  t.same((await next(a, ofType('ack'))).payload, { id: down.payload.id, seq: null, duplicate: true }, 'keys hold while down too')
  send(a, { type: 'message', payload: 'lobby while down', ref: 'lobby' })
  t.same(Object.keys((await next(a, ofType('ack'))).payload), ['id'], 'a lobby message is acked too')

  await redis.start()
  const resetA = await next(a, ofType('reset'))
  const resetB = await next(b, ofType('reset'))
  t.same(Object.keys(resetA), ['type', 'room', 'payload', 'timestamp'])
  t.same(Object.keys(resetA.payload), ['epoch', 'seq'])
  t.not(resetA.payload.epoch, epoch, 'a new epoch')
  t.same(resetA.payload, { epoch: resetA.payload.epoch, seq: 0 }, 'the seq starts again')
  t.same(resetB.payload, resetA.payload, 'the same on the other instance')

  send(b, { type: 'message', room: 'lab', payload: 'after', ref: 'after' })
  t.equal((await next(b, ofType('ack'))).payload.seq, 1, 'numbered from 1 in the new epoch')
  t.equal((await next(a, (f) => f.type === 'message' && f.payload === 'after')).seq, 1, 'and delivered across instances')

  const c = await joinChat(t, one.url)
  const stale = await ask(c, { type: 'join', room: 'lab', since: 1, epoch }, 'joined')
  t.same([stale.payload.recovered, stale.payload.reason, stale.payload.epoch, stale.payload.history.map((m: Frame) => m.payload)],
    [false, 'epoch', resetA.payload.epoch, ['after']], 'a resume in the old epoch: recovered false, reason epoch, what the new one kept')
  const d = await joinChat(t, two.url)
  const current = await ask(d, { type: 'join', room: 'lab', since: 0, epoch: resetA.payload.epoch }, 'joined')
  t.same([current.payload.recovered, current.payload.history.map((m: Frame) => m.seq)], [true, [1]], 'the new epoch resumes')
  const ahead = await ask(await joinChat(t, two.url), { type: 'join', room: 'lab', since: 5 }, 'joined')
  t.same([ahead.payload.recovered, ahead.payload.reason], [false, 'ahead'], 'a since past the seq, no epoch given: reason ahead')
})

t.test('on Redis: a room forgotten after its ttl has a new epoch', { skip: missing ?? false }, async (t) => {
  const prefix = testPrefix(t)
  const one = await instance(t, REDIS_URL, prefix, { roomTtl: 50 })
  const a = await joinChat(t, one.url)
  const epoch = (await ask(a, { type: 'join', room: 'brief' }, 'joined')).payload.epoch
  send(a, { type: 'message', room: 'brief', payload: 1 })
  await ask(a, { type: 'leave', room: 'brief' }, 'left')
  await drain(a)
  await eventually(async () => (await one.app.inject('/rooms')).json().rooms.length === 0, 'the room to be forgotten')
  const b = await joinChat(t, one.url)
  const joined = await ask(b, { type: 'join', room: 'brief', since: 1, epoch }, 'joined')
  t.not(joined.payload.epoch, epoch, 'a new epoch')
  t.same([joined.payload.seq, joined.payload.recovered, joined.payload.reason], [0, false, 'epoch'])
})
