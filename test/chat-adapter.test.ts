// The chat adapters against their contract (src/chat/adapter.ts): one conformance suite run
// against each adapter, then what only the Redis adapter does: several instances sharing one
// Redis, dead instances swept, and a Redis lost and found again while running.
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { RedisAdapter, CLIENT_ID_SPAN, type AdapterLogger } from '../src/chat/redis-adapter.js'
import { MemoryAdapter } from '../src/chat/memory-adapter.js'
import { SWEEP } from '../src/chat/redis-scripts.js'
import type {
  AdapterLimits,
  AdapterListener,
  AdapterStatus,
  ChatAdapter,
  Delivery,
  Member,
  Outgoing,
  PresenceEvent
} from '../src/chat/adapter.js'
import { REDIS_URL, ownRedis, redisMissing, redisServerMissing, testPrefix } from './helpers/redis.js'
import { eventually } from './helpers/index.js'

const LIMITS: AdapterLimits = { historySize: 100, maxRooms: 10000, roomTtl: 300000, historyMaxBytes: 64 * 1024 * 1024, dedupeWindow: 120000, dedupeMaxKeys: 100000 }

/** Records what an adapter hands its instance, and waits on it. */
class Recorder implements AdapterListener {
  readonly messages: Delivery[] = []
  readonly presence: PresenceEvent[] = []
  readonly statuses: AdapterStatus[] = []
  readonly resets: Array<{ room: string, epoch: string, seq: number }> = []
  #wake: Array<() => void> = []

  onMessage = (delivery: Delivery): void => { this.messages.push(delivery); this.#notify() }
  onPresence = (event: PresenceEvent): void => { this.presence.push(event); this.#notify() }
  onStatus = (status: AdapterStatus): void => { this.statuses.push(status); this.#notify() }
  onReset = (room: string, epoch: string, seq: number): void => { this.resets.push({ room, epoch, seq }); this.#notify() }

  #notify (): void {
    for (const wake of this.#wake.splice(0)) wake()
  }

  /** Resolves once `check` holds, re-checking whenever something arrives. */
  async until (check: () => boolean, what: string, ms = 5000): Promise<void> {
    const deadline = Date.now() + ms
    while (!check()) {
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`timed out waiting for ${what}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.#wake.push(() => { clearTimeout(timer); resolve() })
      })
    }
  }

  inRoom (room: string | null): Delivery[] {
    return this.messages.filter((m) => m.room === room)
  }
}

/** A message as the chat core hands it over. */
function outgoing (room: string | null, payload: unknown, from = 7): Outgoing {
  const roomPart = room === null ? '' : `,"room":${JSON.stringify(room)}`
  return { room, head: `{"type":"message"${roomPart},"payload":${JSON.stringify(payload)},"from":${from}`, tail: ',"timestamp":"2026-11-23T10:00:00.000Z"}' }
}

/** A join's or history's result without its epoch, for comparing the rest. */
function noEpoch<T extends { epoch: string }> (result: T): Omit<T, 'epoch'> {
  const { epoch, ...rest } = result
  return rest
}

async function publish (adapter: ChatAdapter, room: string | null, payload: unknown): Promise<Delivery> {
  const result = await adapter.publish(outgoing(room, payload))
  if (typeof result === 'string') throw new Error(`refused: ${result}`)
  return result as Delivery
}

interface Started<A extends ChatAdapter = ChatAdapter> {
  adapter: A
  events: Recorder
  /** A member of this adapter's instance (client_ids offset by clientIdBase). */
  member: (n: number, user?: Member['user']) => Member
}

type Make = (t: Test, limits?: Partial<AdapterLimits>) => Promise<Started>

async function started<A extends ChatAdapter> (t: Test, adapter: A, limits: Partial<AdapterLimits> = {}): Promise<Started<A>> {
  const events = new Recorder()
  await adapter.start(events, { ...LIMITS, ...limits })
  t.teardown(() => adapter.close())
  const member = (n: number, user?: Member['user']): Member => user === undefined
    ? { clientId: adapter.clientIdBase + n }
    : { clientId: adapter.clientIdBase + n, user }
  return { adapter, events, member }
}

async function joined (adapter: ChatAdapter, room: string, who: Member) {
  const result = await adapter.join(room, who)
  if (typeof result === 'string') throw new Error(`refused: ${result}`)
  return result
}

function conformance (name: string, make: Make, skip: string | false): void {
  t.test(`${name}: the adapter contract`, { skip }, async (t) => {
    t.test('lobby messages get increasing ids, no seq, and reach the instance', async (t) => {
      const { adapter, events } = await make(t)
      const first = await publish(adapter, null, 'hello')
      const second = await publish(adapter, null, { n: 2 })
      t.equal(first.room, null)
      t.equal(first.seq, null, 'the lobby has no seq')
      t.ok(Number.isInteger(first.id) && first.id > 0, 'a positive id')
      t.ok(second.id > first.id, 'ids increase')
      t.equal(first.frame, `{"type":"message","payload":"hello","from":7,"id":${first.id},"timestamp":"2026-11-23T10:00:00.000Z"}`, 'the frame is head, id, tail')
      t.same(JSON.parse(second.frame), { type: 'message', payload: { n: 2 }, from: 7, id: second.id, timestamp: '2026-11-23T10:00:00.000Z' })
      await events.until(() => events.inRoom(null).length === 2, 'both lobby messages')
      t.same(events.inRoom(null), [first, second], 'delivered as returned, in order')
      t.same((await adapter.history('lobby', { limit: 10 })).messages, [], 'nothing of the lobby is stored')
    })

    t.test('room messages are numbered from 1 without gaps and delivered in seq order', async (t) => {
      const { adapter, events, member } = await make(t)
      await joined(adapter, 'lab-1', member(1))
      const sent = await Promise.all(Array.from({ length: 40 }, (_, i) => publish(adapter, 'lab-1', i)))
      t.same(sent.map((d) => d.seq).sort((a, b) => a! - b!), Array.from({ length: 40 }, (_, i) => i + 1), 'seqs 1..40, each once')
      await events.until(() => events.inRoom('lab-1').length === 40, 'all 40 deliveries')
      const delivered = events.inRoom('lab-1')
      t.same(delivered.map((d) => d.seq), Array.from({ length: 40 }, (_, i) => i + 1), 'delivered in seq order')
      t.ok(delivered.every((d, i) => i === 0 || d.id > delivered[i - 1]!.id), 'ids grow with seq')
      const one = delivered[0]!
      t.same(JSON.parse(one.frame), { type: 'message', room: 'lab-1', payload: JSON.parse(one.frame).payload, from: 7, id: one.id, seq: 1, timestamp: '2026-11-23T10:00:00.000Z' })
      t.ok(one.frame.includes(`,"id":${one.id},"seq":1,"timestamp"`), 'id then seq, between head and tail')
      const other = await publish(adapter, 'lab-2', 'x')
      t.equal(other.seq, 1, 'every room counts on its own')
    })

    t.test('history keeps the last historySize messages; limit and since select from them', async (t) => {
      const { adapter, member } = await make(t, { historySize: 5 })
      await joined(adapter, 'h', member(1))
      const sent: Delivery[] = []
      for (let i = 1; i <= 8; i++) sent.push(await publish(adapter, 'h', `m${i}`))
      const seqs = async (query: { since?: number, limit: number }) => (await adapter.history('h', query)).messages.map((m) => m.seq)
      const all = await adapter.history('h', { limit: 100 })
      t.equal(all.seq, 8, 'the current seq')
      t.same(all.messages.map((m) => m.seq), [4, 5, 6, 7, 8], 'the last 5, oldest first')
      t.same(all.messages.map((m) => m.frame), sent.slice(3).map((d) => d.frame), 'stored frames are the delivered frames')
      t.same(await seqs({ limit: 2 }), [7, 8], 'without since: the newest limit')
      t.same(await seqs({ since: 5, limit: 100 }), [6, 7, 8], 'since: only later ones')
      t.same(await seqs({ since: 4, limit: 2 }), [5, 6], 'since with limit: the oldest limit after since')
      t.same(await seqs({ since: 1, limit: 100 }), [4, 5, 6, 7, 8], 'since before the history: what is kept')
      t.same(await seqs({ since: 8, limit: 100 }), [], 'since at the current seq: nothing')
      const future = await adapter.history('h', { since: 1e12, limit: 10 })
      t.same(noEpoch(future), { messages: [], seq: 8 }, 'since in the future: nothing, and the current seq')
      t.same(noEpoch(await adapter.history('never-used', { limit: 10 })), { messages: [], seq: 0 }, 'a room that does not exist: empty, seq 0')
    })

    t.test('historySize 0 stores nothing but still numbers', async (t) => {
      const { adapter, member } = await make(t, { historySize: 0 })
      await joined(adapter, 'h0', member(1))
      await publish(adapter, 'h0', 1)
      const second = await publish(adapter, 'h0', 2)
      t.equal(second.seq, 2)
      t.same(noEpoch(await adapter.history('h0', { limit: 10 })), { messages: [], seq: 2 })
    })

    t.test('join lists members in join order; presence counts follow joins and leaves', async (t) => {
      const { adapter, events, member } = await make(t)
      const ann = member(1, { id: 'u-ann', name: 'Ann' })
      const bob = member(2)
      const first = await joined(adapter, 'p', ann)
      t.match(first.epoch, /^[A-Za-z0-9_.:-]{1,64}$/, 'the room has an epoch')
      t.same(noEpoch(first), { members: [ann], seq: 0 }, 'the joiner alone, seq 0')
      await publish(adapter, 'p', 'before bob')
      const second = await joined(adapter, 'p', bob)
      t.same(second, { members: [ann, bob], seq: 1, epoch: first.epoch }, 'join order, the current seq, the same epoch')
      t.same(await joined(adapter, 'p', ann), { members: [ann, bob], seq: 1, epoch: first.epoch }, 'joining again answers again')
      t.equal((await adapter.history('p', { limit: 1 })).epoch, first.epoch, 'history tells the same epoch')
      await adapter.leave('p', bob)
      await adapter.leave('p', bob)
      await adapter.leave('elsewhere', bob)
      await events.until(() => events.presence.length >= 3, 'presence events')
      t.same(events.presence, [
        { room: 'p', event: 'join', member: ann, count: 1 },
        { room: 'p', event: 'join', member: bob, count: 2 },
        { room: 'p', event: 'leave', member: bob, count: 1 }
      ], 'no event for joining twice or leaving a room one is not in; users carried along')
      t.same(await adapter.rooms(), [{ room: 'p', members: 1, seq: 1 }], 'rooms() lists the room')
    })

    t.test('maxRooms refuses a new room with room_limit, never an existing one', async (t) => {
      const { adapter, member } = await make(t, { maxRooms: 2 })
      await joined(adapter, 'r1', member(1))
      await joined(adapter, 'r2', member(1))
      t.equal(await adapter.join('r3', member(1)), 'room_limit', 'a third room is refused')
      t.equal(await adapter.publish(outgoing('r3', 'x')), 'room_limit', 'publishing into a new room is refused too')
      t.same((await joined(adapter, 'r1', member(2))).members.length, 2, 'an existing room takes more members')
      t.equal((await publish(adapter, 'r2', 'ok')).seq, 1, 'and messages')
      t.same((await adapter.rooms()).map((r) => r.room).sort(), ['r1', 'r2'])
    })

    t.test('an empty room is forgotten after roomTtl, history included; an occupied one is not', async (t) => {
      const { adapter, member } = await make(t, { roomTtl: 100, maxRooms: 2 })
      const before = await joined(adapter, 'gone', member(1))
      await joined(adapter, 'kept', member(2))
      await publish(adapter, 'gone', 'old')
      await publish(adapter, 'kept', 'stays')
      await adapter.leave('gone', member(1))
      t.same((await adapter.rooms()).map((r) => r.room).sort(), ['gone', 'kept'], 'an empty room exists until its ttl')
      await eventually(async () => !(await adapter.rooms()).some((r) => r.room === 'gone'), 'the empty room to be forgotten')
      t.same(await adapter.rooms(), [{ room: 'kept', members: 1, seq: 1 }], 'the occupied room stays')
      t.same(noEpoch(await adapter.history('gone', { limit: 10 })), { messages: [], seq: 0 }, 'its history went with it')
      t.same(noEpoch(await joined(adapter, 'new', member(3))), { members: [member(3)], seq: 0 }, 'its place under maxRooms is free again')
      t.same((await joined(adapter, 'kept', member(3))).seq, 1, 'the occupied room kept its seq')
      await adapter.leave('new', member(3))
      await eventually(async () => (await adapter.rooms()).length === 1, 'the second empty room to be forgotten')
      const again = await joined(adapter, 'gone', member(4))
      t.equal(again.seq, 0, 'created again, the forgotten room counts from 0')
      t.not(again.epoch, before.epoch, 'in a new epoch')
    })

    t.test('a key seen in the same target within the window is a duplicate: the first numbers, nothing delivered', async (t) => {
      const { adapter, events, member } = await make(t, { dedupeWindow: 60000 })
      await joined(adapter, 'k', member(1))
      const keyed = (room: string | null, key: string): Outgoing => ({ ...outgoing(room, key), key })
      const first = await adapter.publish(keyed('k', 'a'))
      const again = await adapter.publish(keyed('k', 'a'))
      if (typeof first === 'string' || typeof again === 'string') throw new Error('refused')
      t.same(again, { id: first.id, seq: first.seq, duplicate: true }, 'the first message\'s numbers')
      t.notOk(first.duplicate, 'the first is no duplicate')
      const other = await adapter.publish(keyed('k', 'b'))
      const lobby = await adapter.publish(keyed(null, 'a'))
      const lobbyAgain = await adapter.publish(keyed(null, 'a'))
      if (typeof other === 'string' || typeof lobby === 'string' || typeof lobbyAgain === 'string') throw new Error('refused')
      t.same([other.seq, other.duplicate], [2, undefined], 'another key is another message')
      t.notOk(lobby.duplicate, 'the lobby is another target')
      t.same(lobbyAgain, { id: lobby.id, seq: null, duplicate: true })
      await events.until(() => events.messages.length === 3, 'three deliveries')
      t.same(events.messages.map((d) => [d.room, d.seq]), [['k', 1], ['k', 2], [null, null]], 'each delivered once')
    })

    t.test('clientIdBase is a whole number', async (t) => {
      const { adapter } = await make(t)
      t.ok(Number.isSafeInteger(adapter.clientIdBase) && adapter.clientIdBase >= 0)
      t.equal(adapter.status, 'up')
    })
  })
}

// --- the adapters -------------------------------------------------------------------------------

conformance('MemoryAdapter', async (t, limits) => await started(t, new MemoryAdapter(), limits), false)

const missing = await redisMissing()
if (missing !== undefined && process.env.CI) t.fail(`${missing}: CI must run the Redis tests`)
const skipRedis = missing ?? false
const serverMissing = missing ?? await redisServerMissing()
if (serverMissing !== undefined && process.env.CI) t.fail(`${serverMissing}: CI must run the Redis restart test`)

function redisAdapter (t: Test, prefix = testPrefix(t), options: { heartbeatTtl?: number, logger?: AdapterLogger, url?: string } = {}): RedisAdapter {
  return new RedisAdapter(options.url ?? REDIS_URL, { prefix, heartbeatTtl: options.heartbeatTtl, logger: options.logger })
}

const makeRedis: Make = async (t, limits) => await started(t, redisAdapter(t), limits)
conformance('RedisAdapter', makeRedis, skipRedis)

// --- Redis only ---------------------------------------------------------------------------------

t.test('RedisAdapter: instances on one Redis and prefix form one chat', { skip: skipRedis }, async (t) => {
  t.test('messages, presence, history and rooms are shared; client_ids never collide', async (t) => {
    const prefix = testPrefix(t)
    const a = await started(t, redisAdapter(t, prefix))
    const b = await started(t, redisAdapter(t, prefix))
    t.not(a.adapter.clientIdBase, b.adapter.clientIdBase, 'each instance has its own client_id range')
    t.equal(a.adapter.clientIdBase % CLIENT_ID_SPAN, 0)
    t.ok(Math.abs(a.adapter.clientIdBase - b.adapter.clientIdBase) >= CLIENT_ID_SPAN, 'ranges a billion apart')

    const ann = a.member(1)
    const bob = b.member(1)
    await joined(a.adapter, 'lab', ann)
    const bobJoined = await joined(b.adapter, 'lab', bob)
    t.same(bobJoined.members, [ann, bob], 'a member of the other instance is listed')
    await a.events.until(() => a.events.presence.length === 2, "bob's join on instance a")
    t.same(a.events.presence[1], { room: 'lab', event: 'join', member: bob, count: 2 }, 'presence crosses instances')

    const sent = await Promise.all([
      ...Array.from({ length: 20 }, (_, i) => publish(a.adapter, 'lab', `a${i}`)),
      ...Array.from({ length: 20 }, (_, i) => publish(b.adapter, 'lab', `b${i}`))
    ])
    const lobby = await publish(b.adapter, null, 'to all')
    await a.events.until(() => a.events.inRoom('lab').length === 40 && a.events.inRoom(null).length === 1, 'everything on a')
    await b.events.until(() => b.events.inRoom('lab').length === 40 && b.events.inRoom(null).length === 1, 'everything on b')
    t.same(a.events.inRoom('lab').map((d) => d.seq), Array.from({ length: 40 }, (_, i) => i + 1), 'a: seq order')
    t.same(a.events.inRoom('lab'), b.events.inRoom('lab'), 'both instances deliver the same frames in the same order')
    t.same(a.events.inRoom(null), [lobby], 'the lobby crosses instances')
    t.equal(new Set([...sent, lobby].map((d) => d.id)).size, 41, 'ids are unique across instances')

    const history = await b.adapter.history('lab', { limit: 100 })
    t.same(history.messages.map((m) => m.frame), a.events.inRoom('lab').map((d) => d.frame), 'history agrees with what was delivered')
    t.same(await a.adapter.rooms(), [{ room: 'lab', members: 2, seq: 40 }])
    t.same(await b.adapter.rooms(), await a.adapter.rooms(), 'rooms() is cluster-wide')

    await b.adapter.close()
    await a.events.until(() => a.events.presence.length === 3, "bob's leave when b closes")
    t.same(a.events.presence[2], { room: 'lab', event: 'leave', member: bob, count: 1 })
  })

  t.test('maxRooms counts the rooms of every instance', async (t) => {
    const prefix = testPrefix(t)
    const a = await started(t, redisAdapter(t, prefix), { maxRooms: 1 })
    const b = await started(t, redisAdapter(t, prefix), { maxRooms: 1 })
    await joined(a.adapter, 'only', a.member(1))
    t.equal(await b.adapter.join('another', b.member(1)), 'room_limit')
    t.same((await joined(b.adapter, 'only', b.member(1))).members.length, 2)
  })

  t.test("a dead instance's members leave, once, swept by the survivors", async (t) => {
    const prefix = testPrefix(t)
    const ttl = 300
    const a = await started(t, redisAdapter(t, prefix, { heartbeatTtl: ttl }))
    const b = await started(t, redisAdapter(t, prefix, { heartbeatTtl: ttl }))
    await joined(a.adapter, 'lab', a.member(1))
    await joined(b.adapter, 'lab', b.member(1))
    // An instance that stopped without closing, as kill -9 leaves it: registered, members in a room, no heartbeat.
    const redis = new Redis(REDIS_URL)
    t.teardown(() => redis.disconnect())
    const deadInstance = 999999
    const ghost = deadInstance * CLIENT_ID_SPAN + 5
    await redis.sadd(`${prefix}instances`, String(deadInstance))
    await redis.hset(`${prefix}{lab}:members`, String(ghost), `99,${deadInstance},{"id":"ghost"}`)
    await a.events.until(() => a.events.presence.some((p) => p.member.clientId === ghost), "the dead instance's leave on a", 5000)
    await b.events.until(() => b.events.presence.some((p) => p.member.clientId === ghost), "the dead instance's leave on b", 5000)
    for (const events of [a.events, b.events]) {
      t.same(events.presence.filter((p) => p.member.clientId === ghost), [{ room: 'lab', event: 'leave', member: { clientId: ghost, user: { id: 'ghost' } }, count: 2 }], 'one leave, with the count after it')
    }
    await eventually(async () => await redis.sismember(`${prefix}instances`, String(deadInstance)) === 0, 'the dead instance to be forgotten')
    t.same((await a.adapter.rooms())[0]?.members, 2, 'the live members stay')
  })

  t.test('the heartbeat has a Redis connection of its own', async (t) => {
    // So a beat never queues behind the scripts a burst of joins and messages puts on the commands'
    // connection (which would let the heartbeat lapse on a busy instance).
    const prefix = testPrefix(t)
    const redis = new Redis(REDIS_URL)
    t.teardown(() => redis.disconnect())
    const monitor = await redis.monitor()
    t.teardown(() => monitor.disconnect())
    const seen: Array<{ command: string, key: string, source: string }> = []
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      const key = args.find((a) => a.startsWith(prefix))
      if (key !== undefined) seen.push({ command: args[0]!.toLowerCase(), key, source })
    })
    const a = await started(t, redisAdapter(t, prefix, { heartbeatTtl: 400 }))
    const heartbeat = `${prefix}instance:${a.adapter.clientIdBase / CLIENT_ID_SPAN}`
    await joined(a.adapter, 'lab', a.member(1))
    await publish(a.adapter, 'lab', 'x')
    const beats = () => seen.filter((c) => c.command === 'set' && c.key === heartbeat)
    await eventually(async () => beats().length >= 3, 'three heartbeats')
    const beatSources = new Set(beats().map((c) => c.source))
    const scriptSources = new Set(seen.filter((c) => c.command === 'evalsha' || c.command === 'eval').map((c) => c.source))
    t.equal(beatSources.size, 1, 'every beat on one connection')
    t.ok(scriptSources.size > 0, 'the join and the message ran scripts')
    t.notOk(scriptSources.has([...beatSources][0]!), 'a connection that runs no script')
    const clients = String(await redis.client('LIST')).split('\n')
    t.match(clients.find((line) => line.includes(` addr=${[...beatSources][0]!} `)), / name=echohub:heartbeat /, 'named in CLIENT LIST')
  })

  t.test('a sweep spares the members of an instance whose heartbeat is back', async (t) => {
    // A survivor saw the heartbeat missing, and the instance set it again and put its members back
    // before the survivor's sweep ran: the sweep re-checks the heartbeat in the same atomic step.
    const prefix = testPrefix(t)
    const redis = new Redis(REDIS_URL)
    t.teardown(() => redis.disconnect())
    const instance = '999998'
    const member = String(Number(instance) * CLIENT_ID_SPAN + 1)
    const room = (k: string) => `${prefix}{lab}:${k}`
    const sweep = async () => await redis.eval(SWEEP.lua, 5, `${prefix}rooms`, room('state'), room('members'), room('history'), `${prefix}instance:${instance}`,
      'lab', 300000, room('channel'), instance)
    await redis.zadd(`${prefix}rooms`, '+inf', 'lab')
    await redis.hset(room('members'), member, `1,${instance},`)
    await redis.set(`${prefix}instance:${instance}`, '1', 'PX', 60000)
    t.equal(await sweep(), 0, 'nothing removed while the heartbeat is there')
    t.equal(await redis.hexists(room('members'), member), 1, 'the member stays')
    await redis.del(`${prefix}instance:${instance}`)
    t.equal(await sweep(), 1, 'removed once the heartbeat is gone')
    t.equal(await redis.hexists(room('members'), member), 0)
  })

  t.test('an instance whose heartbeat lapsed puts its swept members back, in batches, whatever the room size', async (t) => {
    const prefix = testPrefix(t)
    // Long enough that neither heartbeat lapses by itself on a loaded machine (a sweep of its own
    // would add leaves to what is counted here); the lapse is made below, and the instance notices
    // it at its next beat, a quarter of the TTL later.
    const ttl = 3000
    const a = await started(t, redisAdapter(t, prefix, { heartbeatTtl: ttl }))
    const b = await started(t, redisAdapter(t, prefix, { heartbeatTtl: ttl }))
    await joined(b.adapter, 'crowd', b.member(1))
    await joined(b.adapter, 'small', b.member(2))
    // More members than one rejoin call takes (500), with and without a user.
    const crowd = Array.from({ length: 1001 }, (_, i) => a.member(i + 1, i % 2 === 0 ? { id: `u${i}` } : undefined))
    for (const who of crowd) await joined(a.adapter, 'crowd', who)
    await joined(a.adapter, 'small', a.member(5000))
    await publish(a.adapter, 'small', 'before')
    await b.events.until(() => b.events.presence.length === 1004, 'the joins on b', 20000)
    // What a stalled instance finds when it wakes: its heartbeat expired and a survivor swept its
    // members (one atomic step here, so the instance cannot rejoin between the two).
    const redis = new Redis(REDIS_URL)
    t.teardown(() => redis.disconnect())
    const instance = a.adapter.clientIdBase / CLIENT_ID_SPAN
    await redis.multi()
      .del(`${prefix}instance:${instance}`)
      .hdel(`${prefix}{crowd}:members`, ...crowd.map((m) => String(m.clientId)))
      .hdel(`${prefix}{small}:members`, String(a.member(5000).clientId))
      .exec()
    const joinsOnB = (room: string) => b.events.presence.filter((p) => p.room === room && p.event === 'join')
    await b.events.until(() => joinsOnB('crowd').length === 2003 && joinsOnB('small').length === 3, 'a presence join on b for every member put back', 20000)
    t.same(joinsOnB('crowd').slice(1002).map((p) => p.member).sort((x, y) => x.clientId - y.clientId), crowd, 'every member, with its user')
    t.same(joinsOnB('crowd').slice(1002).map((p) => p.count), Array.from({ length: 1001 }, (_, i) => i + 2), 'counts as they were added')
    t.equal(await redis.hlen(`${prefix}{crowd}:members`), 1002, 'all back in Redis')
    t.same((await b.adapter.rooms()).sort((x, y) => x.room.localeCompare(y.room)), [{ room: 'crowd', members: 1002, seq: 0 }, { room: 'small', members: 2, seq: 1 }])
    t.equal(a.events.presence.filter((p) => p.event === 'join').length, 1002, 'no second join for its own members on a')
    t.same(a.events.resets, [], 'the rooms keep their epoch and seq')
  })

  t.test('start fails fast, naming the URL, when Redis cannot be reached', async (t) => {
    const server = (await import('node:net')).createServer()
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as { port: number }).port
    await new Promise<void>((resolve) => server.close(() => resolve()))
    const adapter = new RedisAdapter(`redis://127.0.0.1:${port}`)
    const began = Date.now()
    await t.rejects(adapter.start(new Recorder(), LIMITS), { message: new RegExp(`Redis at redis://127\\.0\\.0\\.1:${port} is unreachable`) })
    t.ok(Date.now() - began < 3000, 'within a few seconds, not retrying forever')
  })

  t.test('options are checked when the adapter is made', async (t) => {
    t.throws(() => new RedisAdapter('http://localhost:6379'), { code: 'ECHOHUB_ERR_INVALID_OPTION' })
    t.throws(() => new RedisAdapter(REDIS_URL, { prefix: '' }), { code: 'ECHOHUB_ERR_INVALID_OPTION' })
    t.throws(() => new RedisAdapter(REDIS_URL, { heartbeatTtl: 5 }), { code: 'ECHOHUB_ERR_INVALID_OPTION' })
    t.equal(new RedisAdapter('redis://user:secret@127.0.0.1:6379').url, 'redis://user:***@127.0.0.1:6379', 'no password in what is logged')
  })

  t.test('built from an ioredis client, it copies its connection and leaves the client alone', async (t) => {
    const client = new Redis(REDIS_URL, { lazyConnect: true })
    t.teardown(() => client.disconnect())
    const { adapter } = await started(t, new RedisAdapter(client, { prefix: testPrefix(t) }))
    t.equal((await publish(adapter, 'c', 'x')).seq, 1)
    t.equal(client.status, 'wait', 'the given client was not connected by the adapter')
  })
})

t.test('RedisAdapter: Redis lost and back while running', { skip: serverMissing ?? false }, async (t) => {
  const redis = await ownRedis(t)
  const warnings: string[] = []
  const infos: string[] = []
  const logger: AdapterLogger = { warn: (m) => warnings.push(m), info: (m) => infos.push(m) }
  const prefix = 'echohub-test:restart:'
  const a = await started(t, redisAdapter(t, prefix, { url: redis.url, logger }))
  const b = await started(t, redisAdapter(t, prefix, { url: redis.url }))
  const { epoch } = await joined(a.adapter, 'lab', a.member(1))
  await joined(b.adapter, 'lab', b.member(1))
  await publish(a.adapter, 'lab', 'before')
  await b.events.until(() => b.events.inRoom('lab').length === 1, 'the first message on b')

  await redis.stop()
  await a.events.until(() => a.events.statuses.includes('down'), 'a to notice')
  await b.events.until(() => b.events.statuses.includes('down'), 'b to notice')
  t.equal(a.adapter.status, 'down')
  const local = await publish(a.adapter, 'lab', 'while down')
  t.equal(local.seq, null, 'a room message while down has no seq')
  t.ok(local.frame.includes(',"seq":null,'), 'and says so in its frame')
  t.same(a.events.inRoom('lab').at(-1), local, 'it is delivered locally')
  const lobby = await publish(a.adapter, null, 'lobby while down')
  t.same(a.events.inRoom(null).at(-1), lobby, 'so is a lobby message')
  const carl = a.member(2)
  t.same((await joined(a.adapter, 'lab', carl)).members, [a.member(1), carl], 'joining works locally')
  const ann = a.member(1)
  await a.adapter.leave('lab', ann)
  t.same(a.events.presence.at(-1), { room: 'lab', event: 'leave', member: ann, count: 1 }, 'leaving too, with the local count')
  t.same(await a.adapter.history('lab', { limit: 10 }), { messages: [], seq: 1, epoch }, 'no stored history to read, and the seq and epoch last seen')
  t.same(await a.adapter.rooms(), [{ room: 'lab', members: 1, seq: 1 }], 'rooms() tells what this instance knows')

  await redis.start()
  await a.events.until(() => a.events.statuses.at(-1) === 'up', 'a to come back', 15000)
  await b.events.until(() => b.events.statuses.at(-1) === 'up', 'b to come back', 15000)
  t.same(a.events.statuses, ['down', 'up'])
  t.equal(a.adapter.outages, 1, 'the outage is counted')
  t.equal(warnings.length, 1, 'and logged once')
  t.match(warnings[0], /Redis at redis:\/\/127\.0\.0\.1:\d+ was lost/)
  t.match(infos.at(-1), /is back after/)

  // Presence changes made during the outage are in Redis again (whether the other instance was
  // resubscribed in time to see the event is not guaranteed), and new ones flow as before.
  t.same((await b.adapter.rooms()).map((r) => r.members), [2], 'the joins and leaves made during the outage are in Redis: bob and carl')
  const dave = a.member(3)
  await joined(a.adapter, 'lab', dave)
  await b.events.until(() => b.events.presence.some((p) => p.member.clientId === dave.clientId), 'a join after the outage reaches b')
  // The restarted Redis lost the room's history: a new epoch, told to each instance as a reset.
  await a.events.until(() => a.events.resets.length > 0, 'a reset on a')
  await b.events.until(() => b.events.resets.length > 0, 'a reset on b')
  const reset = a.events.resets[0]!
  t.same(a.events.resets, [{ room: 'lab', epoch: reset.epoch, seq: 0 }], 'a hears of the new epoch once, from seq 0')
  t.same(b.events.resets, [{ room: 'lab', epoch: reset.epoch, seq: 0 }], 'b hears of the same epoch')
  t.not(reset.epoch, epoch, 'a new epoch')
  const after = await publish(b.adapter, 'lab', 'after')
  t.equal(after.seq, 1, 'seq starts again in the new epoch')
  await a.events.until(() => a.events.inRoom('lab').some((d) => d.frame === after.frame), 'cross-instance delivery resumed')
  const history = await a.adapter.history('lab', { limit: 10 })
  t.same([history.messages.map((m) => m.seq), history.epoch], [[1], reset.epoch], 'stored again, in the new epoch')
  t.equal(a.events.resets.length, 1, 'no second reset')
})

t.test('RedisAdapter: connections cut while Redis keeps its data: what changed meanwhile is written back', { skip: serverMissing ?? false }, async (t) => {
  const redis = await ownRedis(t)
  const prefix = 'echohub-test:cut:'
  const a = await started(t, redisAdapter(t, prefix, { url: redis.url }))
  const b = await started(t, redisAdapter(t, prefix, { url: redis.url }))
  const ann = a.member(1)
  const carl = a.member(2)
  const { epoch } = await joined(a.adapter, 'lab', ann)
  await joined(b.adapter, 'lab', b.member(1))
  await publish(b.adapter, 'lab', 'one')
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
  await admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes')
  await a.events.until(() => a.events.statuses.includes('down'), 'a to notice')
  // While a is down (it reconnects after a backoff of at least 100 ms), ann leaves and carl joins.
  await a.adapter.leave('lab', ann)
  await joined(a.adapter, 'lab', carl)
  t.equal(a.adapter.status, 'down', 'both happened while down')
  await a.events.until(() => a.events.statuses.at(-1) === 'up', 'a to come back')
  await b.events.until(() => b.events.statuses.at(-1) === 'up', 'b to come back')
  const members = async () => (await admin.hkeys(`${prefix}{lab}:members`)).map(Number).sort((x, y) => x - y)
  t.same(await members(), [b.member(1).clientId, carl.clientId].sort((x, y) => x - y), "ann's leave and carl's join reached Redis")
  t.equal((await publish(b.adapter, 'lab', 'two')).seq, 2, 'the room kept its seq and history')
  t.same(b.events.resets, [], 'and its epoch: no reset where the room was known')
  // a's room was made anew while Redis was away (ann left, carl joined): it learns the real epoch, the old one.
  t.ok(a.events.resets.every((r) => r.epoch === epoch), 'the epoch a learns once back is the one it had')
  t.same((await a.adapter.history('lab', { limit: 10 })).messages.map((m) => m.seq), [1, 2])
})

t.test('RedisAdapter: a Redis that refuses the connection fails start, saying so', { skip: serverMissing ?? false }, async (t) => {
  const redis = await ownRedis(t, { password: 'right' })
  const wrong = redis.url.replace(':right@', ':wrong@')
  await t.rejects(new RedisAdapter(wrong).start(new Recorder(), LIMITS), { message: /^Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+ refused echohub \(WRONGPASS/ })
  const { adapter } = await started(t, new RedisAdapter(redis.url, { prefix: 'auth:' }))
  t.equal((await publish(adapter, 'r', 'x')).seq, 1, 'with the right password it works')
})
