// The chat adapter for many instances on one Redis: messages are numbered, stored and published
// by one Lua script each (src/chat/redis-scripts.ts has the key layout), presence lives in Redis
// with a heartbeat per instance, and a lost Redis degrades to local delivery until it is back.
import { Redis } from 'ioredis'
import { isRedisClient, type RedisClient } from './redis-client.js'
import { InvalidOptionError } from '../errors.js'
import { DEFAULT_HEARTBEAT_TTL, DEFAULT_REDIS_PREFIX } from '../limits.js'
import { assembleMessage } from './messages.js'
import { newEpoch } from './memory-adapter.js'
import { DedupeCache } from './dedupe.js'
import type {
  AdapterLimits,
  AdapterListener,
  AdapterRefusal,
  AdapterStatus,
  ChatAdapter,
  ChatUser,
  Delivery,
  HistoryQuery,
  HistoryResult,
  JoinResult,
  Member,
  Outgoing,
  Published,
  RoomInfo,
  StoredMessage
} from './adapter.js'
import { FLOOR, HISTORY, JOIN, LEAVE, LOBBY, PUBLISH, REJOIN, ROOMS, SWEEP, type Script } from './redis-scripts.js'

/** Where the adapter writes what it has to say: pino, fastify's logger and console all fit. */
export interface AdapterLogger {
  warn: (message: string) => void
  info: (message: string) => void
}

export interface RedisAdapterOptions {
  /** Prefix of every key and channel (default `echohub:`); instances share a chat when they share Redis and prefix. */
  prefix?: string
  /** Outages and recoveries are logged here, once each. */
  logger?: AdapterLogger
  /** An instance whose heartbeat is older than this (ms, default 10000) is dead: the others remove its members. */
  heartbeatTtl?: number
}

/** `client_id`s of instance n are n * CLIENT_ID_SPAN + the process's own connection number. */
export const CLIENT_ID_SPAN = 1e9
export { DEFAULT_REDIS_PREFIX, DEFAULT_HEARTBEAT_TTL }
const PLUGIN = 'RedisAdapter'
/** Reconnect backoff: doubling from 100 ms, at most this, with jitter. */
const MAX_BACKOFF = 2000
const CONNECT_TIMEOUT = 5000
/** Members put back into Redis per script call when this instance rejoins its rooms. */
const REJOIN_BATCH = 500
/** A `since` this large is past any real seq; keeps the stream ID exact. */
const SINCE_CAP = 9e15

/** This instance's view of one room it has members in (or a join under way). */
interface LocalRoom {
  name: string
  keys: RoomKeys
  /** This instance's members, in join order. */
  members: Map<number, Member>
  /** Joins under way: the room is kept (and subscribed) while any is. */
  pending: number
  /** Settles once this instance receives the room's channel. */
  subscribed: Promise<void> | undefined
  /** The highest seq seen, to number local deliveries' rooms after an outage. */
  lastSeq: number
  /** The room history's epoch as this instance last saw it; a new one is told to the core as a reset. */
  epoch: string | undefined
}

interface RoomKeys {
  state: string
  members: string
  history: string
  channel: string
  /** Prefix of the room's idempotency keys. */
  key: string
}

type Scalar = string | number

/** `redis://user:secret@host` shown without its password. */
export function redactUrl (url: string): string {
  try {
    const u = new URL(url)
    if (u.password !== '') u.password = '***'
    return u.toString().replace(/\/$/, '')
  } catch {
    return url
  }
}

function isReplyError (err: unknown): boolean {
  return err instanceof Error && err.name === 'ReplyError'
}

function pendingKey (room: string, clientId: number): string {
  return room + '\n' + String(clientId)
}

function encodeUser (user: ChatUser | undefined): string {
  return user === undefined ? '' : JSON.stringify(user)
}

function member (clientId: number, user: string): Member {
  return user === '' ? { clientId } : { clientId, user: JSON.parse(user) as ChatUser }
}

export class RedisAdapter implements ChatAdapter {
  readonly prefix: string
  /** The Redis URL as logs may show it (no password). */
  readonly url: string
  #template: RedisClient | string
  #logger: AdapterLogger | undefined
  #heartbeatTtl: number
  #cmd: Redis | undefined
  #sub: Redis | undefined
  /** The heartbeat's own connection, so a beat never waits behind the commands queued on #cmd. */
  #beat: Redis | undefined
  #listener: AdapterListener | undefined
  #limits: AdapterLimits = { historySize: 0, maxRooms: 0, roomTtl: 0, historyMaxBytes: 0, dedupeWindow: 0, dedupeMaxKeys: 0 }
  /** Keys of sends made while Redis was away (delivered locally); Redis keeps the others. */
  #localKeys = new DedupeCache<LocalRoom | null>(0, 0, () => {})
  #instance = 0
  #status: AdapterStatus = 'up'
  #started = false
  #closing = false
  #outages = 0
  #downSince = 0
  #recovering = false
  #recoverAgain = false
  #lastId = 0
  #rooms = new Map<string, LocalRoom>()
  /** Channel -> room name (`null`: the lobby). */
  #channels = new Map<string, string | null>()
  /** Leaves made while Redis was unreachable, sent once it is back; by room and client, so a flood of joins and leaves stays bounded. */
  #pendingLeaves = new Map<string, { room: string, clientId: number }>()
  #timer: NodeJS.Timeout | undefined
  #ticking = false
  #keys: { id: string, rooms: string, instances: string, counter: string, lobby: string, heartbeat: string, epochs: string }

  /** `target`: a Redis URL (`redis://host:6379`) or an ioredis client whose connection options are copied. */
  constructor (target: string | RedisClient, options: RedisAdapterOptions = {}) {
    if (typeof target === 'string') {
      let url: URL | undefined
      try {
        url = new URL(target)
      } catch {}
      if (url === undefined || (url.protocol !== 'redis:' && url.protocol !== 'rediss:')) {
        throw new InvalidOptionError(PLUGIN, 'url', `must be a URL like redis://127.0.0.1:6379, got ${JSON.stringify(target)}`)
      }
      this.url = redactUrl(target)
    } else if (isRedisClient(target)) {
      this.url = `redis://${target.options.host ?? '127.0.0.1'}:${target.options.port ?? 6379}`
    } else {
      throw new InvalidOptionError(PLUGIN, 'target', 'must be a Redis URL or an ioredis client')
    }
    const prefix = options.prefix ?? DEFAULT_REDIS_PREFIX
    if (typeof prefix !== 'string' || prefix === '' || /[{}]/.test(prefix)) {
      throw new InvalidOptionError(PLUGIN, 'prefix', `must be a non-empty string without braces, got ${JSON.stringify(prefix)}`)
    }
    const ttl = options.heartbeatTtl ?? DEFAULT_HEARTBEAT_TTL
    if (!Number.isInteger(ttl) || ttl < 100) throw new InvalidOptionError(PLUGIN, 'heartbeatTtl', `must be an integer of at least 100 (ms), got ${String(ttl)}`)
    this.prefix = prefix
    this.#template = target
    this.#logger = options.logger
    this.#heartbeatTtl = ttl
    this.#keys = {
      id: prefix + 'id',
      rooms: prefix + 'rooms',
      instances: prefix + 'instances',
      counter: prefix + 'instance-counter',
      lobby: prefix + 'lobby',
      heartbeat: '',
      epochs: prefix + 'epochs'
    }
  }

  get clientIdBase (): number {
    return this.#instance * CLIENT_ID_SPAN
  }

  get status (): AdapterStatus {
    return this.#status
  }

  /** How many times Redis was lost since start. */
  get outages (): number {
    return this.#outages
  }

  async start (listener: AdapterListener, limits: AdapterLimits): Promise<void> {
    if (this.#started || this.#cmd !== undefined) throw new Error('RedisAdapter: start was called twice')
    this.#limits = { ...limits }
    this.#localKeys = new DedupeCache(limits.dedupeWindow, limits.dedupeMaxKeys, (n) => this.#listener?.onLimit?.('dedupe_evicted', n))
    const cmd = this.#connection('cmd')
    const sub = this.#connection('sub')
    const beat = this.#connection('heartbeat')
    this.#cmd = cmd
    this.#sub = sub
    this.#beat = beat
    const all = [cmd, sub, beat]
    let lastError: Error | undefined
    const remember = (err: Error): void => { lastError = err }
    for (const c of all) c.on('error', remember)
    let tooOld: string | undefined
    try {
      await Promise.all(all.map(async (c) => await c.connect()))
      const version = /redis_version:(\d+)\.(\d+)/.exec(await cmd.info('server'))
      // Streams (5.0) and SET ... GET (6.2) are used.
      if (version !== null && Number(version[1]) * 100 + Number(version[2]) < 602) {
        tooOld = `Redis at ${this.url} is version ${version[1]}.${version[2]}; echohub needs Redis 6.2 or newer`
        throw new Error(tooOld)
      }
      this.#instance = await cmd.incr(this.#keys.counter)
      this.#keys.heartbeat = this.#heartbeatKey(String(this.#instance))
      await beat.set(this.#keys.heartbeat, '1', 'PX', this.#heartbeatTtl)
      await beat.sadd(this.#keys.instances, String(this.#instance))
      this.#channels.set(this.#keys.lobby, null)
      sub.on('message', this.#onChannel)
      await sub.subscribe(this.#keys.lobby)
    } catch (err) {
      for (const c of all) c.disconnect()
      this.#cmd = this.#sub = this.#beat = undefined
      if (tooOld !== undefined) throw new Error(tooOld)
      // A Redis that answered with an error (a password it refused, say) is not an unreachable one.
      const refusal = isReplyError(lastError) ? lastError : isReplyError(err) ? err as Error : undefined
      if (refusal !== undefined) throw new Error(`Redis at ${this.url} refused echohub (${refusal.message})`, { cause: err })
      const why = lastError?.message ?? (err as Error).message
      throw new Error(`Redis at ${this.url} is unreachable (${why})`, { cause: err })
    }
    for (const c of all) {
      c.off('error', remember)
      // Errors come with a close, which marks the outage; ioredis wants a listener regardless.
      c.on('error', () => {})
      c.on('close', this.#down)
      c.on('ready', this.#ready)
    }
    this.#listener = listener
    this.#started = true
    this.#timer = setInterval(() => { void this.#tick() }, Math.max(50, Math.floor(this.#heartbeatTtl / 4)))
    this.#timer.unref()
    void this.#tick()
  }

  /**
   * A connection that fails fast: nothing is queued while Redis is away, since the chat goes on
   * locally meanwhile. Named `echohub:<role>` in Redis's CLIENT LIST.
   */
  #connection (role: string): Redis {
    const options = {
      connectionName: `echohub:${role}`,
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResubscribe: false,
      autoResendUnfulfilledCommands: false,
      enableAutoPipelining: true,
      connectTimeout: CONNECT_TIMEOUT,
      // At start a Redis that cannot be reached fails the start; once running, retry with backoff.
      retryStrategy: (attempt: number): number | null => {
        if (!this.#started || this.#closing) return null
        return Math.round(Math.min(MAX_BACKOFF, 100 * 2 ** Math.min(attempt, 10)) * (0.5 + Math.random() / 2))
      }
    }
    const template = this.#template
    return typeof template === 'string' ? new Redis(template, options) : template.duplicate(options) as Redis
  }

  #heartbeatKey (instance: string): string {
    return `${this.prefix}instance:${instance}`
  }

  #roomKeys (room: string): RoomKeys {
    const base = `${this.prefix}{${room}}:`
    return { state: base + 'state', members: base + 'members', history: base + 'history', channel: base + 'channel', key: base + 'key:' }
  }

  async #eval (script: Script, keys: string[], args: Scalar[]): Promise<unknown> {
    const cmd = this.#cmd
    if (cmd === undefined) throw new Error('RedisAdapter: not started')
    try {
      return await cmd.evalsha(script.sha, keys.length, ...keys, ...args)
    } catch (err) {
      // A Redis that restarted has forgotten the script: send it whole once.
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
      return await cmd.eval(script.lua, keys.length, ...keys, ...args)
    }
  }

  /** A failed command: a lost connection turns the adapter `down`; a Redis error is a real error. */
  #lost (err: unknown): void {
    if (isReplyError(err)) throw err
    this.#down()
  }

  async publish (message: Outgoing): Promise<Published | AdapterRefusal> {
    const listener = this.#listener
    if (listener === undefined) throw new Error('RedisAdapter: not started')
    const window = this.#limits.dedupeWindow
    const key = window > 0 && this.#limits.dedupeMaxKeys > 0 ? message.key : undefined
    if (this.#status === 'up') {
      try {
        if (message.room === null) {
          const keys = key === undefined ? [this.#keys.id] : [this.#keys.id, this.prefix + 'lobby-key:' + key]
          const [id, duplicate] = await this.#eval(LOBBY, keys, [message.head, message.tail, this.#keys.lobby, window]) as [number, number]
          if (id > this.#lastId) this.#lastId = id
          if (duplicate === 1) return { id, seq: null, duplicate: true }
          const delivery: Delivery = { room: null, id, seq: null, frame: assembleMessage(message.head, message.tail, id, null, null) }
          return delivery
        }
        const keys = this.#roomKeys(message.room)
        const l = this.#limits
        const scriptKeys = [this.#keys.id, this.#keys.rooms, keys.state, keys.members, keys.history, this.#keys.epochs]
        if (key !== undefined) scriptKeys.push(keys.key + key)
        const result = await this.#eval(PUBLISH, scriptKeys,
          [message.room, message.head, message.tail, l.historySize, l.maxRooms, l.roomTtl, keys.channel, window]) as [number, number, number, string] | 0
        if (result === 0) return 'room_limit'
        const [id, seq, duplicate] = result
        if (duplicate === 1) return { id, seq, duplicate: true }
        // Known now, though the delivery may still be on its way: an outage right after must not number below it.
        if (id > this.#lastId) this.#lastId = id
        const local = this.#rooms.get(message.room)
        if (local !== undefined && seq > local.lastSeq) local.lastSeq = seq
        const delivery: Delivery = { room: message.room, id, seq, frame: assembleMessage(message.head, message.tail, id, message.room, seq) }
        return delivery
      } catch (err) {
        this.#lost(err)
      }
    }
    // Redis is away: this instance's clients still get it, unnumbered in the room and not stored;
    // a key is remembered here meanwhile.
    const scope = message.room === null ? null : this.#rooms.get(message.room) ?? null
    const localKey = key === undefined ? undefined : (message.room ?? '') + '\n' + key
    if (localKey !== undefined) {
      const first = this.#localKeys.get(localKey, scope)
      if (first !== undefined) return { id: first.id, seq: first.seq, duplicate: true }
    }
    const id = ++this.#lastId
    const delivery: Delivery = { room: message.room, id, seq: null, frame: assembleMessage(message.head, message.tail, id, message.room, null) }
    if (localKey !== undefined) this.#localKeys.remember(localKey, id, null, scope)
    listener.onMessage(delivery)
    return delivery
  }

  async join (room: string, who: Member): Promise<JoinResult | AdapterRefusal> {
    const listener = this.#listener
    if (listener === undefined) throw new Error('RedisAdapter: not started')
    let local = this.#rooms.get(room)
    if (local === undefined) {
      const keys = this.#roomKeys(room)
      local = { name: room, keys, members: new Map(), pending: 0, subscribed: undefined, lastSeq: 0, epoch: undefined }
      this.#rooms.set(room, local)
      this.#channels.set(keys.channel, room)
    }
    local.pending++
    try {
      if (this.#status === 'up') {
        try {
          await this.#subscribe(local)
          const result = await this.#joinScript(local, who)
          if (result === 0) return 'room_limit'
          const [seq, added, count, flat, epoch] = result
          this.#seen(local, epoch, seq)
          local.members.set(who.clientId, who)
          if (seq > local.lastSeq) local.lastSeq = seq
          // Own members' presence is delivered here, not from the channel (which is ignored for them).
          if (added === 1) listener.onPresence({ room, event: 'join', member: who, count })
          return { members: this.#members(flat), seq, epoch }
        } catch (err) {
          this.#lost(err)
        }
      }
      const known = local.members.has(who.clientId)
      local.members.set(who.clientId, who)
      // Back in before Redis heard it left: nothing to tell Redis about either.
      this.#pendingLeaves.delete(pendingKey(room, who.clientId))
      if (!known) listener.onPresence({ room, event: 'join', member: who, count: local.members.size })
      local.epoch ??= newEpoch()
      return { members: [...local.members.values()], seq: local.lastSeq, epoch: local.epoch }
    } finally {
      local.pending--
      this.#release(local)
    }
  }

  async leave (room: string, who: Member): Promise<void> {
    const listener = this.#listener
    // Clients still closing after close(): close() has taken them out of their rooms already.
    if (this.#closing) return
    if (listener === undefined) throw new Error('RedisAdapter: not started')
    const local = this.#rooms.get(room)
    const known = local?.members.delete(who.clientId) ?? false
    try {
      if (this.#status === 'up') {
        try {
          const keys = local?.keys ?? this.#roomKeys(room)
          const count = await this.#eval(LEAVE, [this.#keys.rooms, keys.state, keys.members, keys.history],
            [room, who.clientId, this.#limits.roomTtl, keys.channel]) as number
          if (count >= 0) listener.onPresence({ room, event: 'leave', member: who, count })
          return
        } catch (err) {
          this.#lost(err)
        }
      }
      if (!known || local === undefined) return
      this.#pendingLeaves.set(pendingKey(room, who.clientId), { room, clientId: who.clientId })
      listener.onPresence({ room, event: 'leave', member: who, count: local.members.size })
    } finally {
      if (local !== undefined) this.#release(local)
    }
  }

  async history (room: string, query: HistoryQuery): Promise<HistoryResult> {
    if (this.#status === 'up') {
      const keys = this.#roomKeys(room)
      const from = query.since === undefined ? '' : String(Math.min(Math.max(query.since, 0), SINCE_CAP) + 1)
      try {
        const [seq, entries, epoch] = await this.#eval(HISTORY, [keys.state, keys.history], [from, query.limit]) as [number, Array<[string, string[]]>, string]
        const messages: StoredMessage[] = entries.map(([id, fields]) => ({ seq: parseInt(id, 10), frame: fields[1]! }))
        if (query.since === undefined) messages.reverse()
        const local = this.#rooms.get(room)
        if (local !== undefined && epoch !== '') this.#seen(local, epoch, seq)
        return { messages, seq, epoch: epoch !== '' ? epoch : local?.epoch ?? newEpoch() }
      } catch (err) {
        this.#lost(err)
      }
    }
    // Redis is away: nothing stored can be read. The seq this instance saw lets a resume say
    // `recovered: false` when messages may be missing.
    const local = this.#rooms.get(room)
    if (local !== undefined) local.epoch ??= newEpoch()
    return { messages: [], seq: local?.lastSeq ?? 0, epoch: local?.epoch ?? newEpoch() }
  }

  async rooms (): Promise<RoomInfo[]> {
    if (this.#status === 'up') {
      try {
        const flat = await this.#eval(ROOMS, [this.#keys.rooms], [this.prefix]) as Array<string | number>
        const out: RoomInfo[] = []
        for (let i = 0; i < flat.length; i += 3) out.push({ room: String(flat[i]), members: Number(flat[i + 1]), seq: Number(flat[i + 2]) })
        return out
      } catch (err) {
        this.#lost(err)
      }
    }
    // Redis is away: what this instance knows.
    return [...this.#rooms.values()].filter((r) => r.members.size > 0).map((r) => ({ room: r.name, members: r.members.size, seq: r.lastSeq }))
  }

  async close (): Promise<void> {
    if (this.#closing) return
    this.#closing = true
    this.#listener = undefined
    if (this.#timer !== undefined) clearInterval(this.#timer)
    const cmd = this.#cmd
    const sub = this.#sub
    const beat = this.#beat
    if (cmd === undefined || sub === undefined || beat === undefined) return
    if (this.#status === 'up') {
      // The other instances' members see this instance's clients leave now, not after the heartbeat lapses.
      const leaves: Array<Promise<unknown>> = []
      for (const local of this.#rooms.values()) {
        for (const clientId of local.members.keys()) {
          leaves.push(this.#eval(LEAVE, [this.#keys.rooms, local.keys.state, local.keys.members, local.keys.history],
            [local.name, clientId, this.#limits.roomTtl, local.keys.channel]))
        }
      }
      try {
        await Promise.all(leaves)
        await beat.srem(this.#keys.instances, String(this.#instance))
        await beat.del(this.#keys.heartbeat)
      } catch {}
    }
    this.#rooms.clear()
    this.#localKeys.clear()
    await Promise.all([cmd, sub, beat].map(async (c) => {
      try {
        await c.quit()
      } catch {}
      c.disconnect()
    }))
  }

  // --- internals -------------------------------------------------------------------------------

  async #subscribe (local: LocalRoom): Promise<void> {
    if (local.subscribed === undefined) {
      const sub = this.#sub!
      const subscribed = sub.subscribe(local.keys.channel).then(() => {})
      local.subscribed = subscribed
      subscribed.catch(() => {
        if (local.subscribed === subscribed) local.subscribed = undefined
      })
    }
    await local.subscribed
  }

  #joinScript (local: LocalRoom, who: Member): Promise<[number, number, number, string[], string] | 0> {
    const k = local.keys
    return this.#eval(JOIN, [this.#keys.epochs, this.#keys.rooms, k.state, k.members, k.history],
      [local.name, who.clientId, this.#instance, encodeUser(who.user), this.#limits.maxRooms, k.channel]) as Promise<[number, number, number, string[], string] | 0>
  }

  /**
   * The room's epoch as Redis gave it, with the seq live messages follow from: a different one than
   * this instance knew means the history was lost (Redis restarted empty): the core is told.
   */
  #seen (local: LocalRoom, epoch: string, seq: number): void {
    if (local.epoch === epoch) return
    const known = local.epoch
    local.epoch = epoch
    if (known === undefined) return
    local.lastSeq = seq
    this.#listener?.onReset?.(local.name, epoch, seq)
  }

  /** Members from the members hash, in join order. */
  #members (flat: string[]): Member[] {
    const rows: Array<{ order: number, member: Member }> = []
    for (let i = 0; i < flat.length; i += 2) {
      const value = flat[i + 1]!
      const a = value.indexOf(',')
      const b = value.indexOf(',', a + 1)
      rows.push({ order: Number(value.slice(0, a)), member: member(Number(flat[i]), value.slice(b + 1)) })
    }
    rows.sort((x, y) => x.order - y.order)
    return rows.map((r) => r.member)
  }

  /** Forgets a room this instance no longer has members in, and stops receiving it. */
  #release (local: LocalRoom): void {
    if (local.members.size > 0 || local.pending > 0 || this.#rooms.get(local.name) !== local) return
    this.#rooms.delete(local.name)
    this.#channels.delete(local.keys.channel)
    if (local.subscribed !== undefined && this.#status === 'up' && !this.#closing) {
      this.#sub!.unsubscribe(local.keys.channel).catch(() => {})
    }
  }

  /** True for a `client_id` of this instance's own clients. */
  #own (clientId: number): boolean {
    return Math.floor(clientId / CLIENT_ID_SPAN) === this.#instance
  }

  #onChannel = (channel: string, text: string): void => {
    const listener = this.#listener
    if (listener === undefined) return
    const room = this.#channels.get(channel)
    if (room === undefined) return
    const a = text.indexOf(',')
    const b = text.indexOf(',', a + 1)
    if (text.charCodeAt(0) === 109) { // m<id>,<seq>,<epoch>,<frame>
      const id = Number(text.slice(1, a))
      if (id > this.#lastId) this.#lastId = id
      const c = text.indexOf(',', b + 1)
      let seq: number | null = null
      if (b > a + 1) {
        seq = Number(text.slice(a + 1, b))
        const local = room === null ? undefined : this.#rooms.get(room)
        if (local !== undefined) {
          // Compared in place: the epoch is read out only when it changed.
          const known = local.epoch
          if (known === undefined || c - b - 1 !== known.length || !text.startsWith(known, b + 1)) this.#seen(local, text.slice(b + 1, c), seq - 1)
          if (seq > local.lastSeq) local.lastSeq = seq
        }
      }
      listener.onMessage({ room, id, seq, frame: text.slice(c + 1) })
      return
    }
    // p<j|l>,<client_id>,<count>,<user>
    if (room === null) return
    const clientId = Number(text.slice(a + 1, b))
    if (this.#own(clientId)) return
    const c = text.indexOf(',', b + 1)
    listener.onPresence({
      room,
      event: text.charCodeAt(1) === 106 ? 'join' : 'leave',
      member: member(clientId, text.slice(c + 1)),
      count: Number(text.slice(b + 1, c))
    })
  }

  #down = (): void => {
    if (!this.#started || this.#closing || this.#status === 'down') return
    this.#status = 'down'
    this.#outages++
    this.#downSince = Date.now()
    for (const local of this.#rooms.values()) local.subscribed = undefined
    this.#logger?.warn(`Redis at ${this.url} was lost (outage ${this.#outages}): chat goes on locally, unstored, and reconnects by itself`)
    this.#listener?.onStatus?.('down')
  }

  #ready = (): void => {
    if (this.#connected()) void this.#recover()
  }

  #connected (): boolean {
    return this.#cmd?.status === 'ready' && this.#sub?.status === 'ready' && this.#beat?.status === 'ready'
  }

  /** All connections are back: register again, replay the leaves, resubscribe, rejoin, then `up`. */
  async #recover (): Promise<void> {
    if (this.#recovering) {
      this.#recoverAgain = true
      return
    }
    this.#recovering = true
    try {
      do {
        this.#recoverAgain = false
        if (this.#status === 'up' || this.#closing) return
        try {
          await this.#reregister()
          this.#status = 'up'
          this.#logger?.info(`Redis at ${this.url} is back after ${((Date.now() - this.#downSince) / 1000).toFixed(1)} s: cross-instance delivery resumed`)
          this.#listener?.onStatus?.('up')
          return
        } catch (err) {
          if (isReplyError(err)) this.#logger?.warn(`Redis at ${this.url}: could not resume (${(err as Error).message}); trying again on the next reconnect`)
        }
      } while (this.#recoverAgain && this.#connected())
    } finally {
      this.#recovering = false
    }
  }

  async #reregister (): Promise<void> {
    const beat = this.#beat!
    await this.#eval(FLOOR, [this.#keys.id, this.#keys.counter], [this.#lastId, this.#instance])
    await beat.set(this.#keys.heartbeat, '1', 'PX', this.#heartbeatTtl)
    await beat.sadd(this.#keys.instances, String(this.#instance))
    for (const [key, { room, clientId }] of this.#pendingLeaves) {
      const keys = this.#roomKeys(room)
      await this.#eval(LEAVE, [this.#keys.rooms, keys.state, keys.members, keys.history], [room, clientId, this.#limits.roomTtl, keys.channel])
      this.#pendingLeaves.delete(key)
    }
    const rooms = [...this.#rooms.values()]
    await this.#sub!.subscribe(this.#keys.lobby, ...rooms.map((r) => r.keys.channel))
    for (const local of rooms) local.subscribed = Promise.resolve()
    await this.#rejoin(rooms)
  }

  /**
   * Puts this instance's members back into Redis (a presence `join` for the others where they
   * were missing): one script call per room and REJOIN_BATCH members, whatever the room's size.
   */
  async #rejoin (rooms: LocalRoom[]): Promise<void> {
    await Promise.all(rooms.map(async (local) => {
      const members = [...local.members.values()]
      const k = local.keys
      for (let i = 0; i < members.length; i += REJOIN_BATCH) {
        const args: Array<string | number> = [local.name, this.#instance, this.#limits.maxRooms, k.channel]
        for (const who of members.slice(i, i + REJOIN_BATCH)) args.push(who.clientId, encodeUser(who.user))
        const result = await this.#eval(REJOIN, [this.#keys.epochs, this.#keys.rooms, k.state, k.members, k.history], args) as [number, number, string] | 0
        if (result === 0) return
        const [seq, , epoch] = result
        this.#seen(local, epoch, seq)
        if (seq > local.lastSeq) local.lastSeq = seq
      }
    }))
  }

  /** Heartbeat, and the sweep of instances whose heartbeat lapsed. */
  async #tick (): Promise<void> {
    if (this.#status !== 'up' || this.#ticking || this.#closing) return
    this.#ticking = true
    try {
      const beat = this.#beat!
      const before = await beat.set(this.#keys.heartbeat, '1', 'PX', this.#heartbeatTtl, 'GET')
      await beat.sadd(this.#keys.instances, String(this.#instance))
      // Our heartbeat lapsed (a stalled process): the others may have removed our members; put them back.
      if (before === null) await this.#rejoin([...this.#rooms.values()])
      const others = (await beat.smembers(this.#keys.instances)).filter((n) => n !== String(this.#instance))
      if (others.length === 0) return
      const alive = await Promise.all(others.map((n) => beat.exists(this.#heartbeatKey(n))))
      const dead = others.filter((_, i) => alive[i] === 0)
      if (dead.length > 0) await this.#sweep(dead)
    } catch (err) {
      try {
        this.#lost(err)
      } catch (replyError) {
        this.#logger?.warn(`Redis at ${this.url}: heartbeat failed (${(replyError as Error).message})`)
      }
    } finally {
      this.#ticking = false
    }
  }

  /** Removes dead instances' members from every room that has members, then forgets the instances. */
  async #sweep (dead: string[]): Promise<void> {
    const cmd = this.#cmd!
    const rooms = await cmd.zrangebyscore(this.#keys.rooms, '+inf', '+inf')
    await Promise.all(rooms.map((room) => {
      const keys = this.#roomKeys(room)
      return this.#eval(SWEEP, [this.#keys.rooms, keys.state, keys.members, keys.history, ...dead.map((n) => this.#heartbeatKey(n))],
        [room, this.#limits.roomTtl, keys.channel, ...dead])
    }))
    await cmd.srem(this.#keys.instances, ...dead)
    this.#logger?.info(`Redis adapter: instance ${dead.join(', ')} stopped without closing; its clients left their rooms`)
  }
}
