// The chat core, framework-free: its clients, the lobby and rooms, the per-tick broadcast queue and
// its flush, the token bucket, the slow-consumer drop, custom events, and the adapter that carries
// messages and presence between instances. plugins/chat.ts only feeds it sockets and frames.
import type { Connection, ConnectionRegistry } from '../registry.js'
import type { ChatAdapter, ChatUser, Delivery, Member, Outgoing, PresenceEvent, StoredMessage } from './adapter.js'
import {
  chatAck,
  chatCustomEventReply,
  chatError,
  chatHistory,
  chatJoined,
  chatLeft,
  chatMessageParts,
  chatPong,
  chatPresence,
  chatRefreshed,
  chatReset,
  chatWelcome,
  customEventAck,
  parseChatFrame,
  refJson,
  refOf,
  unknownType,
  userJson,
  ROOM_NAME,
  type ChatErrorCode,
  type ChatRecoveryFailure,
  type JsonObject,
  type JsonValue
} from './messages.js'
import { TokenBucket } from './rate-limit.js'
import { dataFrame, textFrame } from '../transport/frames.js'
import { COMPRESSION_THRESHOLD, deflateMessage } from '../transport/compression.js'
import { logsAt, oversizeReason, preview } from '../format.js'
import { publicUser, TOKEN_EXPIRED_CODE, TOKEN_EXPIRED_REASON, type User } from '../auth/user.js'
import { roomAllowed } from '../auth/rooms.js'
import { redactJwts } from '../auth/access.js'
import { authRefusal } from '../auth/identity.js'

/** What the core needs of a WebSocket; `ws`'s WebSocket has it. */
export interface ChatSocket {
  readonly readyState: number
  readonly bufferedAmount: number
  send: (data: Buffer, options: { binary: boolean }) => void
  close: (code?: number, reason?: string) => void
  terminate: () => void
}

/** One room's messages of a flush, framed once for every receiver that takes pre-framed bytes. */
class FramedBatch {
  readonly messages: ReadonlyArray<{ data: Buffer }>
  readonly bytes: number
  readonly framed: Buffer
  #deflated: Buffer | undefined

  constructor (messages: ReadonlyArray<{ data: Buffer }>, bytes: number) {
    this.messages = messages
    this.bytes = bytes
    this.framed = messages.length === 1 ? textFrame(messages[0]!.data) : Buffer.concat(messages.map((m) => textFrame(m.data)))
  }

  /** The frames for clients with permessage-deflate: each large message compressed once for all of them. */
  deflated (): Buffer {
    if (this.#deflated === undefined) {
      const large = this.messages.some((m) => m.data.length >= COMPRESSION_THRESHOLD)
      this.#deflated = large
        ? Buffer.concat(this.messages.map((m) => m.data.length >= COMPRESSION_THRESHOLD ? dataFrame(deflateMessage(m.data), false, true) : textFrame(m.data)))
        : this.framed
    }
    return this.#deflated
  }
}

/** A pino-like logger: the core logs through the one of the request that opened each connection. */
export interface ChatLogger {
  info: (obj: object, msg: string) => void
  warn: (obj: object, msg: string) => void
  error: (obj: object, msg: string) => void
  debug: (obj: object, msg: string) => void
}

/**
 * Answers a `custom_event`. What it returns (or resolves to) becomes the reply's `payload`;
 * `undefined` sends the default acknowledgement. A throw or rejection sends the sender an `error`
 * `custom_event_failed`: with the error's message if it is a CustomEventError, else a generic one.
 */
export type ChatEventHandler<Context> = (payload: JsonObject, context: Context) =>
  JsonValue | undefined | Promise<JsonValue | undefined>

/** Throw it from a custom event handler to tell the client why its event was refused. */
export class CustomEventError extends Error {
  override name = 'CustomEventError'
}

/** A room name that is not one, or a room the adapter could not create. */
export class PublishError extends Error {
  readonly code: 'invalid_room' | 'room_limit' | 'invalid_message'
  constructor (code: PublishError['code'], message: string) {
    super(message)
    this.code = code
  }
}

export interface ChatSettings {
  serverInfo: string
  welcomeMessage: string
  maxPayload: number
  /** Messages per second per connection; 0: no limit. */
  rateLimit: number
  rateBurst: number
  /** Unsent bytes past which a client is dropped; 0: no cap. */
  maxBuffered: number
  maxRoomsPerClient: number
  historySize: number
  maxRooms: number
  roomTtl: number
  /** All rooms' stored messages together, bytes (in-memory adapter). */
  historyMaxBytes: number
  /** How long a message's key is remembered, ms. */
  dedupeWindow: number
  /** Keys remembered at most per process. */
  dedupeMaxKeys: number
}

export interface ChatCoreOptions<Context> {
  settings: ChatSettings
  registry: ConnectionRegistry
  adapter: ChatAdapter
  /** Logs what belongs to no client (the adapter's state). */
  log: ChatLogger
  handlers: ReadonlyMap<string, ChatEventHandler<Context>>
  fallback: ChatEventHandler<Context>
  /**
   * Checks the token of a `refresh` frame (identity on); throws when it is not valid. Without it a
   * `refresh` is an unknown type, as on a server without identity.
   */
  refresh?: (token: string) => Promise<User>
}

/** A `join` as the core takes it. */
interface JoinRequest {
  room: string
  since?: number | undefined
  epoch?: string | undefined
  latest?: boolean | undefined
}

/** One room a client is in. `buffer` holds what arrived for it while its `joined` was being made. */
interface Membership {
  buffer: Array<{ seq: number | null, data: Buffer }> | undefined
  /** The queue's count of frames when it began: presence events queued before are not its news. */
  from: number
}

/** One chat client: its socket, its registry entry and its rate limit state. */
export interface ChatClient<Context> {
  socket: ChatSocket
  conn: Connection
  log: ChatLogger
  context: Context
  /** Who the client is (identity on), as frames show it, and that serialized once. */
  user: ChatUser | undefined
  userJson: string | undefined
  bucket: TokenBucket | undefined
  /** Messages dropped by the rate limit since the last one let through. */
  droppedInARow: number
  /** The rooms it is in or joining. */
  rooms: Map<string, Membership>
  /** Frames that arrived while a room operation of this client was under way, in order. */
  waiting: string[] | undefined
  open: boolean
}

const OPEN = 1 // WebSocket.OPEN
const TEXT = { binary: false } as const
/** A `joined` or `history` reply carries at most this many bytes of messages. */
export const REPLY_HISTORY_BYTES = 1024 * 1024
/** Frames a client may send while one of its room operations is under way; past it they are refused. */
const MAX_WAITING = 256

/** One queued frame, `n` in the order of the queue; a presence event has the client it is about. */
interface Queued {
  seq: number | null
  data: Buffer
  n: number
  about?: number
}

/** Frames queued for one target (a room, or the lobby: `null`) in this turn of the event loop. */
interface Pending {
  messages: Queued[]
  bytes: number
  /** The clients presence events among them are about. */
  about: Set<number> | undefined
  /** `n` of the first presence event among them. */
  firstPresence: number | undefined
}

export class ChatCore<Context = unknown> {
  readonly settings: ChatSettings
  readonly adapter: ChatAdapter
  readonly clients = new Set<ChatClient<Context>>()
  readonly registry: ConnectionRegistry
  readonly #log: ChatLogger
  readonly #handlers: ReadonlyMap<string, ChatEventHandler<Context>>
  readonly #fallback: ChatEventHandler<Context>
  readonly #refresh: ((token: string) => Promise<User>) | undefined
  /** Local members of each room. */
  readonly #rooms = new Map<string, Map<ChatClient<Context>, Membership>>()
  // Broadcasts and presence events are queued and written out once per turn of the event loop:
  // every frame for one target that arrived in one read is framed once, joined into one buffer, and
  // that same buffer is written to each recipient in a single write.
  readonly #pending = new Map<string | null, Pending>()
  /** Frames queued so far. */
  #queued = 0
  /** A client still flooding after this many drops in a row is closed: it is not slowing down. */
  readonly #floodAfter: number

  constructor (options: ChatCoreOptions<Context>) {
    this.settings = options.settings
    this.adapter = options.adapter
    this.registry = options.registry
    this.#log = options.log
    this.#handlers = options.handlers
    this.#fallback = options.fallback
    this.#refresh = options.refresh
    this.#floodAfter = 2 * options.settings.rateBurst
  }

  /** Connects the adapter; rejects when its broker cannot be reached. */
  async start (): Promise<void> {
    const { historySize, maxRooms, roomTtl, historyMaxBytes, dedupeWindow, dedupeMaxKeys } = this.settings
    await this.adapter.start({
      onMessage: (delivery) => this.#received(delivery),
      onPresence: (event) => this.#presence(event),
      onReset: (room, epoch, seq) => this.#reset(room, epoch, seq),
      onLimit: (limit, count) => this.registry.hit(limit, count),
      onStatus: (status) => {
        if (status === 'down') this.#log.warn({ adapter: 'down' }, 'chat adapter lost its broker: local delivery only until it is back')
        else this.#log.info({ adapter: 'up' }, 'chat adapter reconnected: cross-instance delivery resumed')
      }
    }, { historySize, maxRooms, roomTtl, historyMaxBytes, dedupeWindow, dedupeMaxKeys })
  }

  async close (): Promise<void> {
    await this.adapter.close()
  }

  /** A new connection: welcomes it, then lets it take part. */
  accept (socket: ChatSocket, conn: Connection, log: ChatLogger, context: Context): ChatClient<Context> {
    const { rateLimit, rateBurst, welcomeMessage, serverInfo } = this.settings
    const user = conn.user === undefined ? undefined : publicUser(conn.user)
    const client: ChatClient<Context> = {
      socket,
      conn,
      log,
      context,
      user,
      userJson: user === undefined ? undefined : userJson(user),
      bucket: rateLimit > 0 ? new TokenBucket(rateLimit, rateBurst) : undefined,
      droppedInARow: 0,
      rooms: new Map(),
      waiting: undefined,
      open: true
    }
    // Welcomed before it joins: a broadcast queued meanwhile must not reach it ahead of its welcome.
    this.#reply(client, chatWelcome(conn.id, welcomeMessage, serverInfo, client.userJson))
    this.clients.add(client)
    this.#expireAt(client, conn.user?.expiresAt)
    return client
  }

  /** The connection closed, however it closed: it leaves the lobby and every room. */
  closed (client: ChatClient<Context>): void {
    client.open = false
    this.clients.delete(client)
    for (const room of client.rooms.keys()) this.#leaveLocally(client, room)
  }

  /** One frame from a client. */
  receive (client: ChatClient<Context>, data: Buffer, isBinary: boolean): void {
    const { conn, socket, log } = client
    const { maxPayload } = this.settings
    conn.received(data.length)
    if (socket.readyState !== OPEN) return
    if (data.length > maxPayload) {
      this.registry.hit('oversize')
      const reason = oversizeReason(data.length, maxPayload)
      log.warn({ client: conn.peer, bytes: data.length, max_payload: maxPayload }, `${reason}; connection closed with 1009`)
      socket.close(1009, reason)
      return
    }
    if (client.bucket !== undefined) {
      if (!client.bucket.take()) {
        this.#rateLimited(client, isBinary ? undefined : data)
        return
      }
      client.droppedInARow = 0
    }
    if (isBinary) {
      this.#refuse(client, 'binary_not_supported', 'Binary frames are not supported here: send JSON as a text frame.')
      return
    }
    const text = data.toString()
    // A `refresh` frame carries a token: it never reaches the logs.
    if (logsAt(log, 'info')) log.info({ client: conn.peer, n: conn.messagesReceived, text: preview(redactJwts(text)) }, 'message received')
    if (client.waiting !== undefined) {
      if (client.waiting.length >= MAX_WAITING) {
        this.#refuse(client, 'rate_limited', `Too many frames while a room operation is under way (at most ${MAX_WAITING}); this one was dropped.`, undefined, refJson(refOf(text)))
      } else {
        client.waiting.push(text)
      }
      return
    }
    this.#handle(client, text)
  }

  /**
   * Publishes a message from the server (`from: 0`) to a room, or to the lobby (`room` null), as
   * `POST /publish` does. Throws a PublishError for a bad room name, a payload JSON cannot carry,
   * or a room the adapter cannot create.
   */
  async publish (room: string | null, payload: JsonValue): Promise<{ id: number, seq: number | null }> {
    if (room !== null && (typeof room !== 'string' || !ROOM_NAME.test(room))) {
      throw new PublishError('invalid_room', '"room" must be 1 to 64 characters of A-Z a-z 0-9 _ . : -')
    }
    let payloadJson: string | undefined
    try {
      payloadJson = JSON.stringify(payload)
    } catch {}
    if (payloadJson === undefined) throw new PublishError('invalid_message', 'the payload must be a JSON value')
    const result = await this.adapter.publish(chatMessageParts(room, payloadJson, 0))
    if (result === 'room_limit') {
      this.registry.hit('room_limit')
      throw new PublishError('room_limit', `no room can be created: the server holds its maximum of ${this.settings.maxRooms} rooms`)
    }
    return { id: result.id, seq: result.seq }
  }

  #handle (client: ChatClient<Context>, text: string): void {
    const parsed = parseChatFrame(text)
    if (!parsed.ok) {
      this.#refuse(client, parsed.code, parsed.message, parsed.room, refJson(parsed.ref))
      return
    }
    const frame = parsed.frame
    // The answers to a frame with a `ref` carry it back, serialized once here.
    const ref = frame.ref === undefined ? undefined : refJson(frame.ref)
    switch (frame.type) {
      case 'message':
        this.#message(client, frame.room ?? null, frame.payload, frame.key, ref)
        break
      case 'custom_event':
        this.#customEvent(client, frame.payload, ref)
        break
      case 'ping':
        this.#reply(client, chatPong(ref))
        break
      case 'join':
        this.#whileWaiting(client, this.#join(client, frame, ref), ref)
        break
      case 'leave':
        this.#leave(client, frame.room, ref)
        break
      case 'history':
        this.#whileWaiting(client, this.#history(client, frame.room, frame.limit, frame.since, ref), ref)
        break
      case 'refresh':
        if (this.#refresh === undefined || client.user === undefined) {
          const refusal = unknownType(frame.type)
          this.#refuse(client, refusal.code, refusal.message, undefined, ref)
        } else {
          this.#whileWaiting(client, this.#refreshToken(client, frame.token, ref), ref)
        }
        break
    }
  }

  /** Ends the connection with 4401 when its credentials expire (`refresh` moves the deadline). */
  #expireAt (client: ChatClient<Context>, at: number | undefined): void {
    client.conn.expireAt(at, () => {
      if (!client.open) return
      this.registry.hit('token_expired')
      client.log.info({ client: client.conn.peer, client_id: client.conn.id }, 'token expired; connection closed with 4401')
      client.socket.close(TOKEN_EXPIRED_CODE, TOKEN_EXPIRED_REASON)
    })
  }

  /** A new token for the same user extends the connection; anything else leaves the old deadline. */
  async #refreshToken (client: ChatClient<Context>, token: string, ref: string | undefined): Promise<void> {
    let user: User
    try {
      user = await this.#refresh!(token)
    } catch (err) {
      this.#refuse(client, 'invalid_token', `The new token was refused (${authRefusal(err).message}); the connection still ends when the old one expires.`, undefined, ref)
      return
    }
    if (!client.open) return
    if (user.id !== client.user!.id) {
      this.#refuse(client, 'invalid_token', 'The new token is for another user; the connection still ends when the old one expires.', undefined, ref)
      return
    }
    this.#expireAt(client, user.expiresAt)
    this.#reply(client, chatRefreshed(user.expiresAt === undefined ? null : Math.floor(user.expiresAt / 1000), ref))
  }

  /** Holds the client's later frames until `operation` has answered, so replies keep their order. */
  #whileWaiting (client: ChatClient<Context>, operation: Promise<void>, ref: string | undefined): void {
    client.waiting = []
    operation.catch((err: unknown) => {
      client.log.error({ client: client.conn.peer, err }, 'room operation failed')
      this.#refuse(client, 'unavailable', 'The room service failed to answer; try again.', undefined, ref)
    }).finally(() => {
      const rest = client.waiting ?? []
      client.waiting = undefined
      while (rest.length > 0 && client.waiting === undefined && client.open) this.#handle(client, rest.shift()!)
      // Another room operation began: what is left waits behind it, ahead of anything newer.
      if (client.waiting !== undefined) (client.waiting as string[]).unshift(...rest)
    })
  }

  #message (client: ChatClient<Context>, room: string | null, payload: JsonValue, key: string | undefined, ref: string | undefined): void {
    const membership = room === null ? undefined : client.rooms.get(room)
    if (room !== null && membership === undefined) {
      this.#refuse(client, 'not_in_room', `You are not in room "${room}": join it first.`, room, ref)
      return
    }
    let payloadJson: string
    try {
      payloadJson = JSON.stringify(payload)
    } catch {
      // JSON.parse accepts nesting deeper than JSON.stringify can write back.
      this.#refuse(client, 'invalid_message', 'The payload is nested too deeply to be sent on.', room ?? undefined, ref)
      return
    }
    const { log, conn } = client
    const outgoing: Outgoing = chatMessageParts(room, payloadJson, conn.id, client.userJson)
    // A key is the sender's to make unique; with identity on it is scoped to the user as well.
    if (key !== undefined) outgoing.key = client.user === undefined ? key : key + '|' + client.user.id
    this.adapter.publish(outgoing).then((result) => {
      if (result === 'room_limit') {
        this.registry.hit('room_limit')
        this.#refuse(client, 'room_limit', `Room "${room}" no longer exists and no room can be created now.`, room ?? undefined, ref)
        return
      }
      if (logsAt(log, 'debug')) log.debug({ client: conn.peer, id: result.id, room, seq: result.seq, duplicate: result.duplicate === true }, 'message published')
      if (ref !== undefined && client.open) this.#reply(client, chatAck(ref, result.id, room !== null, result.seq, result.duplicate === true))
    }, (err: unknown) => {
      log.error({ client: conn.peer, err, room }, 'message could not be published')
      this.#refuse(client, 'unavailable', 'The message could not be sent on; try again.', room ?? undefined, ref)
    })
  }

  async #join (client: ChatClient<Context>, request: JoinRequest, ref: string | undefined): Promise<void> {
    const room = request.room
    const member = memberOf(client)
    let membership = client.rooms.get(room)
    const already = membership !== undefined
    if (membership === undefined) {
      if (!roomAllowed(client.conn.user?.rooms, room)) {
        this.registry.hit('forbidden')
        this.#refuse(client, 'forbidden', `You are not allowed in room "${room}": your token does not list it.`, room, ref)
        return
      }
      if (client.rooms.size >= this.settings.maxRoomsPerClient) {
        this.registry.hit('too_many_rooms')
        this.#refuse(client, 'too_many_rooms', `You are in ${client.rooms.size} rooms, the most one connection may be in; leave one first.`, room, ref)
        return
      }
      // Member from now on, so nothing published from here on is missed; held back until `joined`.
      membership = { buffer: [], from: this.#queued }
      client.rooms.set(room, membership)
      this.#localRoom(room).set(client, membership)
    }
    try {
      await this.#completeJoin(client, request, member, membership, already, ref)
    } catch (err) {
      // A join that failed halfway (the adapter threw) leaves no membership behind holding messages back.
      if (!already) {
        this.#forget(client, room)
        this.adapter.leave(room, member).catch(() => {})
      }
      throw err
    }
  }

  async #completeJoin (client: ChatClient<Context>, request: JoinRequest, member: Member, membership: Membership, already: boolean, ref: string | undefined): Promise<void> {
    const { room, since } = request
    const joined = await this.adapter.join(room, member)
    if (!client.open) {
      if (!already) await this.adapter.leave(room, member)
      return
    }
    if (joined === 'room_limit') {
      this.#forget(client, room)
      this.registry.hit('room_limit')
      this.#refuse(client, 'room_limit', `Room "${room}" cannot be created: the server holds its maximum of ${this.settings.maxRooms} rooms.`, room, ref)
      return
    }
    let { seq, epoch } = joined
    let recovered = true
    let reason: ChatRecoveryFailure | undefined
    let history: StoredMessage[] = []
    let more = false
    // The seq up to which `joined` accounts for the room's messages: buffered ones after it follow.
    let last = seq
    if (since !== undefined) {
      // Another epoch's seq, or one past the room's: nothing to resume from; what is kept is sent instead.
      if (request.epoch !== undefined && request.epoch !== epoch) reason = 'epoch'
      else if (since > seq) reason = 'ahead'
      const from = reason === undefined ? since : 0
      const found = await this.adapter.history(room, { since: from, limit: Math.max(1, this.settings.historySize) })
      seq = Math.max(seq, found.seq)
      epoch = found.epoch
      if (reason === undefined) {
        const first = found.messages[0]
        if (!(since === seq || (since < seq && first !== undefined && first.seq === since + 1))) reason = 'evicted'
      }
      recovered = reason === undefined
      ;({ messages: history, more } = fitReply(found.messages))
      last = history.at(-1)?.seq ?? (recovered ? since : from)
    } else if (request.latest === true) {
      const found = await this.adapter.history(room, { limit: 1 })
      history = found.messages
      last = Math.max(seq, history.at(-1)?.seq ?? 0)
    }
    if (!client.open) return
    seq = Math.max(seq, last)
    this.#reply(client, chatJoined(room, joined.members.map((m) => m.clientId), { seq, epoch, recovered, reason }, history.map((m) => m.frame), more,
      client.user === undefined ? undefined : usersOf(joined.members), ref))
    // What arrived meanwhile follows, less what `joined` already held.
    const buffered = membership.buffer
    membership.buffer = undefined
    if (buffered !== undefined) {
      for (const entry of buffered) {
        if (entry.seq === null || entry.seq > last) this.#send(client, entry.data)
      }
    }
  }

  #leave (client: ChatClient<Context>, room: string, ref: string | undefined): void {
    if (!client.rooms.has(room)) {
      this.#refuse(client, 'not_in_room', `You are not in room "${room}".`, room, ref)
      return
    }
    this.#leaveLocally(client, room)
    this.#reply(client, chatLeft(room, ref))
  }

  /** Stops local delivery at once; the adapter tells every instance (presence `leave`). */
  #leaveLocally (client: ChatClient<Context>, room: string): void {
    this.#forget(client, room)
    this.adapter.leave(room, memberOf(client)).catch((err: unknown) => {
      this.#log.error({ err, room, client_id: client.conn.id }, 'leaving a room failed in the adapter')
    })
  }

  #forget (client: ChatClient<Context>, room: string): void {
    client.rooms.delete(room)
    const members = this.#rooms.get(room)
    if (members === undefined) return
    members.delete(client)
    if (members.size === 0) this.#rooms.delete(room)
  }

  async #history (client: ChatClient<Context>, room: string, limit: number, since: number | undefined, ref: string | undefined): Promise<void> {
    if (!client.rooms.has(room)) {
      this.#refuse(client, 'not_in_room', `You are not in room "${room}": join it to read its history.`, room, ref)
      return
    }
    const found = await this.adapter.history(room, since === undefined ? { limit } : { since, limit })
    const { messages, more } = fitReply(found.messages)
    this.#reply(client, chatHistory(room, found.epoch, messages.map((m) => m.frame), more, ref))
  }

  #customEvent (client: ChatClient<Context>, payload: JsonObject, ref: string | undefined): void {
    const { log } = client
    if (!serializable(payload)) {
      this.#refuse(client, 'invalid_message', 'The payload is nested too deeply to be answered.', undefined, ref)
      return
    }
    const action = payload.action
    const handler = (typeof action === 'string' ? this.#handlers.get(action) : undefined) ?? this.#fallback
    const failed = (err: unknown) => {
      const known = err instanceof CustomEventError
      log[known ? 'info' : 'error']({ client: client.conn.peer, action, err }, 'custom event handler failed')
      this.#refuse(client, 'custom_event_failed', known ? err.message : 'The server could not handle this custom_event.', undefined, ref)
    }
    const answer = (result: JsonValue | undefined) => {
      let frame: string
      try {
        frame = chatCustomEventReply(result === undefined ? customEventAck(payload) : result, ref)
      } catch (err) {
        failed(err)
        return
      }
      this.#reply(client, frame)
    }
    let result: ReturnType<ChatEventHandler<Context>>
    try {
      result = handler(payload, client.context)
    } catch (err) {
      failed(err)
      return
    }
    // A synchronous handler answers at once, so its reply keeps its place among the client's frames.
    if (isPromiseLike(result)) result.then(answer, failed)
    else answer(result)
  }

  /** The token bucket said no: drop the message with `rate_limited`, and close a client that keeps on. */
  #rateLimited (client: ChatClient<Context>, data: Buffer | undefined): void {
    const { log } = client
    const { rateLimit, rateBurst } = this.settings
    client.droppedInARow++
    this.registry.hit('rate_limited')
    if (client.droppedInARow >= this.#floodAfter) {
      this.registry.hit('rate_flood')
      log.warn({ client: client.conn.peer, dropped: client.droppedInARow }, 'client keeps flooding past the rate limit; connection closed with 1008')
      client.socket.close(1008, 'too many messages: over the rate limit')
      return
    }
    log.warn({ client: client.conn.peer, rate_limit: rateLimit, rate_burst: rateBurst }, 'rate limit hit; message dropped')
    // Read for its ref alone, so a client can tell which of its sends was dropped.
    const ref = data === undefined ? undefined : refJson(refOf(data.toString()))
    this.#reply(client, chatError('rate_limited', `Too many messages: at most ${rateLimit} per second (bursts of ${rateBurst}). This one was dropped; slow down.`, undefined, ref))
  }

  #refuse (client: ChatClient<Context>, code: ChatErrorCode, message: string, room?: string, ref?: string): void {
    const { log } = client
    if (logsAt(log, 'debug')) log.debug({ client: client.conn.peer, code, room }, 'bad input answered with an error')
    this.#reply(client, chatError(code, message, room, ref))
  }

  /** A reply to one client. It must not overtake broadcasts already queued for that client. */
  #reply (client: ChatClient<Context>, frame: string): void {
    if (this.#pending.size > 0) this.#flush()
    this.#send(client, Buffer.from(frame))
  }

  #send (client: ChatClient<Context>, data: Buffer): void {
    if (client.socket.readyState !== OPEN) return
    client.socket.send(data, TEXT)
    client.conn.sent(data.length)
    this.#checkBuffered(client)
  }

  /** A message from the adapter, published here or on another instance. */
  #received (delivery: Delivery): void {
    if (delivery.room !== null && !this.#rooms.has(delivery.room)) return
    this.#queue(delivery.room, { seq: delivery.seq, data: Buffer.from(delivery.frame), n: this.#queued++ })
  }

  /**
   * A member joined or left a room, here or on another instance: the other local members hear of it
   * in the room's order. Queued like a message, so a thousand clients joining one room cost a write
   * per member per turn, not one per member per join.
   */
  #presence (event: PresenceEvent): void {
    if (!this.#rooms.has(event.room)) return
    const data = Buffer.from(chatPresence(event.room, event.event, event.member.clientId, event.count, event.member.user))
    this.#queue(event.room, { seq: null, data, n: this.#queued++, about: event.member.clientId })
  }

  /** A room's history was lost: its local members hear of the new epoch in the room's order. */
  #reset (room: string, epoch: string, seq: number): void {
    if (!this.#rooms.has(room)) return
    this.#queue(room, { seq: null, data: Buffer.from(chatReset(room, epoch, seq)), n: this.#queued++ })
  }

  #queue (target: string | null, frame: Queued): void {
    let pending = this.#pending.get(target)
    if (pending === undefined) {
      if (this.#pending.size === 0) setImmediate(() => this.#flush())
      pending = { messages: [], bytes: 0, about: undefined, firstPresence: undefined }
      this.#pending.set(target, pending)
    }
    pending.messages.push(frame)
    pending.bytes += frame.data.length
    if (frame.about !== undefined) {
      (pending.about ??= new Set()).add(frame.about)
      pending.firstPresence ??= frame.n
    }
  }

  #flush (): void {
    if (this.#pending.size === 0) return
    const targets = [...this.#pending]
    this.#pending.clear()
    for (const [room, pending] of targets) {
      const recipients = room === null ? undefined : this.#rooms.get(room)
      if (room !== null && recipients === undefined) continue
      const batch = new FramedBatch(pending.messages, pending.bytes)
      if (recipients === undefined) {
        for (const client of this.clients) this.#write(client, batch)
        continue
      }
      for (const [client, membership] of recipients) {
        // A presence event is not sent to the client it is about, nor to a member that joined after
        // it (its `joined` already counts that change): the few such clients get their own batch.
        const id = client.conn.id
        const theirs = pending.about?.has(id) === true || (pending.firstPresence !== undefined && membership.from > pending.firstPresence)
          ? pending.messages.filter((m) => m.about === undefined || (m.about !== id && m.n >= membership.from))
          : undefined
        if (membership.buffer !== undefined) membership.buffer.push(...(theirs ?? pending.messages))
        else if (theirs === undefined) this.#write(client, batch)
        else if (theirs.length > 0) this.#write(client, new FramedBatch(theirs, theirs.reduce((n, m) => n + m.data.length, 0)))
      }
    }
  }

  /** One client's share of a flush: the pre-framed bytes in one write where it can take them. */
  #write (client: ChatClient<Context>, batch: FramedBatch): void {
    if (client.socket.readyState !== OPEN) return
    const { direct } = client.conn
    if (direct !== undefined && (direct.deflate === undefined || direct.deflate.idle())) {
      direct.write(direct.deflate === undefined ? batch.framed : batch.deflated())
      client.conn.sent(batch.bytes, batch.messages.length)
    } else {
      for (const { data } of batch.messages) {
        client.socket.send(data, TEXT)
        client.conn.sent(data.length)
      }
    }
    this.#checkBuffered(client)
  }

  #checkBuffered (client: ChatClient<Context>): void {
    const { maxBuffered } = this.settings
    if (maxBuffered > 0 && client.socket.bufferedAmount > maxBuffered) this.#dropSlowConsumer(client)
  }

  #dropSlowConsumer (client: ChatClient<Context>): void {
    if (!client.open) return
    this.closed(client)
    this.registry.hit('slow_consumer')
    client.log.warn({ client: client.conn.peer, buffered: client.socket.bufferedAmount, max_buffered: this.settings.maxBuffered }, 'slow consumer: unsent bytes over the cap; connection dropped')
    // A close frame would wait behind the unread bytes; cut the connection so its memory is freed now.
    client.socket.terminate()
  }

  #localRoom (room: string): Map<ChatClient<Context>, Membership> {
    let members = this.#rooms.get(room)
    if (members === undefined) {
      members = new Map()
      this.#rooms.set(room, members)
    }
    return members
  }
}

/** A client as room membership records it: its user travels with it, so every instance can show it. */
function memberOf (client: ChatClient<unknown>): Member {
  return client.user === undefined ? { clientId: client.conn.id } : { clientId: client.conn.id, user: client.user }
}

/** `joined`'s `users`: each member's user by `client_id` (as a string); members without one are left out. */
function usersOf (members: readonly Member[]): Record<string, ChatUser> {
  const users: Record<string, ChatUser> = {}
  for (const m of members) if (m.user !== undefined) users[String(m.clientId)] = m.user
  return users
}

/** The oldest messages whose frames fit in one reply; `more` when some were left out. */
function fitReply (messages: StoredMessage[]): { messages: StoredMessage[], more: boolean } {
  let bytes = 0
  for (let i = 0; i < messages.length; i++) {
    bytes += Buffer.byteLength(messages[i]!.frame) + 1
    if (bytes > REPLY_HISTORY_BYTES) return { messages: messages.slice(0, i), more: true }
  }
  return { messages, more: false }
}

/** JSON.parse accepts nesting deeper than JSON.stringify can write back; such a payload cannot be answered. */
function serializable (value: JsonValue): boolean {
  try {
    JSON.stringify(value)
    return true
  } catch {
    return false
  }
}

function isPromiseLike<T> (value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}
