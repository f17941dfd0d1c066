// echohub/client: a chat client for browsers and Node 20 that does the hard part of a real one.
// Sends are acked and carry an idempotency key, so one kept after a disconnect is sent again and
// still delivered once; it reconnects by itself, rejoins its rooms with `since` and `epoch`, and
// hands over every room message once, in `seq` order, saying when something could not be recovered.
// One file with no imports at run time: the pages' server serves it as /client.js.
import type {
  ChatEvents, ChatMessage, ChatPresence, ChatUser, ConnectOptions, ConnectionState, JoinOptions, JoinedEvent, JsonValue,
  RecoveryReason, RoomState, SendOptions, SendResult, WebSocketConstructor, WebSocketLike
} from './types.js'

export type * from './types.js'

const SEND_TIMEOUT_MS = 60_000
const RECONNECT_FIRST_MS = 1000
const RECONNECT_MAX_MS = 30_000
/** A gap in a room's `seq`s that lasts this long is filled by joining the room again with `since`. */
const GAP_WAIT_MS = 1000
/** The most a `history` request may ask for. */
const HISTORY_PAGE = 1000
const KEY = /^[A-Za-z0-9_.:-]{1,64}$/
const ROOM = /^[A-Za-z0-9_.:-]{1,64}$/
const OPEN = 1

/** A refusal: `code` is the server's error code, or one of the client's own (`timeout`, `closed`, `disconnected`, `invalid_key`). */
export class ChatError extends Error {
  readonly code: string
  readonly room: string | undefined
  constructor (code: string, message: string, room?: string) {
    super(message)
    this.name = 'ChatError'
    this.code = code
    this.room = room
  }
}

/** Opens a chat connection to `url` (`ws://host:5000/ws`; in a page also a path like `/ws`), or to whatever `url()` says on each attempt. */
export function connect (url: string | (() => string), options: ConnectOptions = {}): ChatClient {
  return new ChatClient(url, options)
}

type Frame = Record<string, unknown>
type Listener = (value: never) => void

interface PendingSend {
  ref: number
  room: string | null
  text: string
  /** The socket it was last written to (undefined: not yet on the current one). */
  sentOn: WebSocketLike | undefined
  resolve: (result: SendResult) => void
  reject: (err: ChatError) => void
  timer: ReturnType<typeof setTimeout>
}

interface Request {
  kind: 'join' | 'leave' | 'history' | 'custom_event' | 'ping' | 'refresh'
  room?: string
  resolve: (frame: Frame) => void
  reject: (err: ChatError) => void
}

interface Room {
  name: string
  /** Joined on the current connection (sends to it may go). */
  member: boolean
  /** A join is on its way. */
  joining: boolean
  /** Whether `seq`/`epoch` hold what this client has delivered (false until the first joined). */
  synced: boolean
  seq: number
  epoch: string | undefined
  /** The caller's join options, used until the first joined. */
  options: JoinOptions
  /** Messages ahead of `seq + 1`, held until the ones before them arrive. */
  held: Map<number, ChatMessage>
  gapTimer: ReturnType<typeof setTimeout> | undefined
  /** A `history` request filling the room after a `joined` with `more` is on its way. */
  fetching: boolean
  waiters: Array<{ resolve: (joined: JoinedEvent) => void, reject: (err: ChatError) => void }>
  /** The `since` of the join on its way (undefined: none was sent). */
  sentSince: number | undefined
}

export class ChatClient {
  readonly #url: string | (() => string)
  readonly #getToken: (() => string | Promise<string>) | undefined
  readonly #sendTimeout: number
  readonly #firstDelay: number
  readonly #maxDelay: number
  #WebSocket: WebSocketConstructor | undefined
  #token: string | undefined
  #socket: WebSocketLike | undefined
  #welcomed = false
  #state: ConnectionState = { state: 'connecting', attempt: 0, url: '' }
  #attempt = 0
  #retryTimer: ReturnType<typeof setTimeout> | undefined
  #refreshTimer: ReturnType<typeof setTimeout> | undefined
  #clientId: number | undefined
  #user: ChatUser | undefined
  #nextRef = 1
  /** Sockets opened so far (after the first, getToken gives each new one its token). */
  #opens = 0
  readonly #rooms = new Map<string, Room>()
  readonly #sends = new Map<number, PendingSend>()
  readonly #requests = new Map<number, Request>()
  readonly #listeners = new Map<keyof ChatEvents, Set<Listener>>()

  constructor (url: string | (() => string), options: ConnectOptions = {}) {
    if (typeof url !== 'string' && typeof url !== 'function') throw new TypeError('connect: url must be a string or a function returning one')
    if (options === null || typeof options !== 'object') throw new TypeError('connect: options must be an object')
    this.#url = url
    this.#token = optional(options.token, 'token', (v) => typeof v === 'string' && v !== '', 'a non-empty string')
    this.#getToken = optional(options.getToken, 'getToken', (v) => typeof v === 'function', 'a function')
    this.#sendTimeout = optional(options.sendTimeout, 'sendTimeout', positive, 'a number of ms above 0') ?? SEND_TIMEOUT_MS
    this.#firstDelay = optional(options.reconnectDelay, 'reconnectDelay', positive, 'a number of ms above 0') ?? RECONNECT_FIRST_MS
    this.#maxDelay = optional(options.maxReconnectDelay, 'maxReconnectDelay', positive, 'a number of ms above 0') ?? RECONNECT_MAX_MS
    this.#WebSocket = optional(options.WebSocket, 'WebSocket', (v) => typeof v === 'function', 'a WebSocket class')
    // Listeners are added right after connect() returns; the first attempt starts after them.
    queueMicrotask(() => { if (this.#state.state === 'connecting') void this.#open() })
  }

  /** The connection's state, as the last `state` event said. */
  get state (): ConnectionState {
    return this.#state
  }

  /** This connection's `client_id` (undefined while not connected). */
  get clientId (): number | undefined {
    return this.#clientId
  }

  /** This connection's user (identity on). */
  get user (): ChatUser | undefined {
    return this.#user
  }

  /** The rooms this client is in, or joining. */
  rooms (): RoomState[] {
    return [...this.#rooms.values()].map((r) => r.epoch === undefined
      ? { room: r.name, joined: r.member, seq: r.seq }
      : { room: r.name, joined: r.member, seq: r.seq, epoch: r.epoch })
  }

  /** Listens to an event; returns a function that stops listening. */
  on<E extends keyof ChatEvents> (event: E, listener: ChatEvents[E]): () => void {
    if (typeof listener !== 'function') throw new TypeError(`on('${event}'): the listener must be a function`)
    let set = this.#listeners.get(event)
    if (set === undefined) this.#listeners.set(event, set = new Set())
    set.add(listener as Listener)
    return () => this.off(event, listener)
  }

  off<E extends keyof ChatEvents> (event: E, listener: ChatEvents[E]): void {
    this.#listeners.get(event)?.delete(listener as Listener)
  }

  /**
   * Joins a room, now and again after every reconnect (with `since` and `epoch`, so nothing is
   * missed). Resolves with the first `joined`; rejects with the server's code (`forbidden`,
   * `too_many_rooms`, ...), after which the client no longer tries to join it.
   */
  join (room: string, options: JoinOptions = {}): Promise<JoinedEvent> {
    if (this.#state.state === 'closed') return Promise.reject(new ChatError('closed', 'the client was closed'))
    if (typeof room !== 'string' || !ROOM.test(room)) return Promise.reject(new ChatError('invalid_room', `a room name is 1 to 64 characters of A-Z a-z 0-9 _ . : -, not ${JSON.stringify(room)}`))
    return new Promise((resolve, reject) => {
      let r = this.#rooms.get(room)
      if (r === undefined) {
        r = { name: room, member: false, joining: false, synced: false, seq: 0, epoch: undefined, options: { ...options }, held: new Map(), gapTimer: undefined, fetching: false, waiters: [], sentSince: undefined }
        this.#rooms.set(room, r)
      }
      r.waiters.push({ resolve, reject })
      // Asked again while joined: the server answers with a fresh joined (no presence event).
      if (!r.joining) this.#sendJoin(r)
    })
  }

  /** Leaves a room (and stops rejoining it). Resolves once the server says `left`, or at once when not connected. */
  async leave (room: string): Promise<void> {
    const r = this.#rooms.get(room)
    if (r === undefined) return
    this.#forget(r, new ChatError('left', `left ${room} before it was joined`, room))
    if (!this.#ready()) return
    await this.#request({ type: 'leave', room }, 'leave', room).catch((err: ChatError) => {
      // Not a member (any more) is what leaving wanted; a disconnect left every room.
      if (err.code !== 'not_in_room' && err.code !== 'disconnected') throw err
    })
  }

  /**
   * Sends a message to a room (`null`: the lobby). Resolves once the server acked it; rejects with
   * the server's error code, or `timeout` after `sendTimeout`. Kept across reconnects and sent
   * again with the same key, so it is delivered once.
   */
  send (room: string | null, payload: JsonValue, options: SendOptions = {}): Promise<SendResult> {
    if (this.#state.state === 'closed') return Promise.reject(new ChatError('closed', 'the client was closed'))
    const key = options.key ?? randomKey()
    if (typeof key !== 'string' || !KEY.test(key)) return Promise.reject(new ChatError('invalid_key', `a key is 1 to 64 characters of A-Z a-z 0-9 _ . : -, not ${JSON.stringify(key)}`))
    if (room !== null && (typeof room !== 'string' || !ROOM.test(room))) return Promise.reject(new ChatError('invalid_room', `a room name is 1 to 64 characters of A-Z a-z 0-9 _ . : -, not ${JSON.stringify(room)}`))
    const ref = this.#nextRef++
    let text: string
    try {
      text = JSON.stringify(room === null ? { type: 'message', ref, payload, key } : { type: 'message', ref, room, payload, key })
    } catch (err) {
      return Promise.reject(new ChatError('invalid_message', `the payload cannot be sent as JSON: ${(err as Error).message}`, room ?? undefined))
    }
    if (payload === undefined) return Promise.reject(new ChatError('invalid_message', 'a message needs a payload', room ?? undefined))
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#sends.delete(ref)
        reject(new ChatError('timeout', `no ack within ${this.#sendTimeout} ms`, room ?? undefined))
      }, this.#sendTimeout)
      const pending: PendingSend = { ref, room, text, sentOn: undefined, resolve, reject, timer }
      this.#sends.set(ref, pending)
      this.#trySend(pending)
    })
  }

  /** Sends a `custom_event`; resolves with the reply's payload. Not kept across reconnects. */
  async customEvent (payload: { [key: string]: JsonValue }): Promise<JsonValue> {
    const frame = await this.#request({ type: 'custom_event', payload }, 'custom_event')
    return frame.payload as JsonValue
  }

  /** Sends a `ping`; resolves with the round trip in ms. */
  async ping (): Promise<number> {
    const started = Date.now()
    await this.#request({ type: 'ping' }, 'ping')
    return Date.now() - started
  }

  /** Writes text as it is (to see how the server answers a bad frame). False when not connected. */
  sendRaw (text: string): boolean {
    if (!this.#ready()) return false
    this.#write(text)
    return true
  }

  /** Connects now: after stop(), or to skip the wait before the next attempt (back online). */
  reconnect (): void {
    if (this.#state.state === 'closed') return
    if (this.#socket !== undefined) {
      // Connected or connecting: start over on a new connection.
      this.#drop(this.#socket, 4000, 'reconnect requested')
    }
    clearTimeout(this.#retryTimer)
    void this.#open()
  }

  /** Disconnects and stays so until reconnect(). Unacked sends wait (until their timeout). */
  stop (reason = 'stopped'): void {
    if (this.#state.state === 'closed') return
    clearTimeout(this.#retryTimer)
    const socket = this.#socket
    this.#setState({ state: 'stopped', code: 1000, reason })
    if (socket !== undefined) this.#drop(socket, 1000, reason)
  }

  /** Closes for good: the socket, the timers, and every unacked send (rejected with `closed`). */
  close (): void {
    if (this.#state.state === 'closed') return
    clearTimeout(this.#retryTimer)
    const socket = this.#socket
    this.#setState({ state: 'closed' })
    if (socket !== undefined) this.#drop(socket, 1000, 'closed')
    const err = new ChatError('closed', 'the client was closed')
    for (const pending of this.#sends.values()) {
      clearTimeout(pending.timer)
      pending.reject(err)
    }
    this.#sends.clear()
    for (const room of [...this.#rooms.values()]) this.#forget(room, err)
  }

  // --- the connection ---

  async #open (): Promise<void> {
    if (this.#state.state === 'closed') return
    const attempt = this.#attempt
    let base: string
    try {
      base = socketUrl(typeof this.#url === 'function' ? this.#url() : this.#url)
    } catch (err) {
      this.#setState({ state: 'stopped', code: 0, reason: `bad url: ${(err as Error).message}` })
      return
    }
    this.#setState({ state: 'connecting', attempt, url: withoutToken(base) })
    let socket: WebSocketLike
    try {
      this.#WebSocket ??= await webSocketClass()
      // A token for each new connection: the one given first, then a fresh one from getToken.
      if (this.#getToken !== undefined && (this.#token === undefined || this.#opens > 0 || expiresWithin(this.#token, 1000))) {
        this.#token = await this.#getToken()
      }
      if (this.#state.state !== 'connecting' || this.#socket !== undefined) return // stopped, closed or restarted meanwhile
      socket = new this.#WebSocket(withToken(base, this.#token))
      this.#opens += 1
    } catch (err) {
      this.#retry(0, `cannot connect: ${(err as Error).message}`, false)
      return
    }
    this.#socket = socket
    this.#welcomed = false
    let opened = false
    socket.addEventListener('open', () => { opened = true })
    socket.addEventListener('message', (event) => {
      if (this.#socket === socket && typeof event.data === 'string') this.#receive(event.data)
    })
    let lastError = ''
    socket.addEventListener('error', (event) => { lastError = event.message ?? '' })
    socket.addEventListener('close', (event) => {
      if (this.#socket !== socket) return
      this.#disconnected()
      const code = event.code ?? 1006
      const reason = event.reason !== undefined && event.reason !== '' ? event.reason : lastError
      if (this.#state.state === 'stopped' || this.#state.state === 'closed') return
      if (code === 4401 && this.#getToken === undefined) {
        // The same token would be refused again.
        this.#setState({ state: 'stopped', code, reason: reason === '' ? 'token expired' : reason })
        return
      }
      this.#retry(code, reason, opened)
    })
  }

  /** Schedules the next attempt: 1 s doubling to 30 s, each ±20 % so clients dropped together come back apart. */
  #retry (code: number, reason: string, opened: boolean): void {
    const base = Math.min(this.#maxDelay, this.#firstDelay * 2 ** Math.min(this.#attempt, 30))
    const delay = Math.min(this.#maxDelay, Math.round(base * (0.8 + Math.random() * 0.4)))
    this.#attempt += 1
    this.#setState({ state: 'waiting', attempt: this.#attempt, delay, code, reason, opened })
    clearTimeout(this.#retryTimer)
    this.#retryTimer = setTimeout(() => { void this.#open() }, delay)
  }

  #drop (socket: WebSocketLike, code: number, reason: string): void {
    this.#disconnected()
    try {
      socket.close(code, reason)
    } catch {}
  }

  /** What a connection held ends with it: membership, held messages, requests, timers. Unacked sends stay. */
  #disconnected (): void {
    this.#socket = undefined
    this.#welcomed = false
    this.#clientId = undefined
    this.#user = undefined
    clearTimeout(this.#refreshTimer)
    for (const room of this.#rooms.values()) {
      room.member = false
      room.joining = false
      room.fetching = false
      room.held.clear()
      clearTimeout(room.gapTimer)
      room.gapTimer = undefined
    }
    for (const pending of this.#sends.values()) pending.sentOn = undefined
    const requests = [...this.#requests.values()]
    this.#requests.clear()
    const err = new ChatError('disconnected', 'the connection ended before the answer came')
    for (const request of requests) {
      // Joins are sent again on the next connection; the rest fail.
      if (request.kind !== 'join') request.reject(err)
    }
  }

  #ready (): boolean {
    return this.#socket !== undefined && this.#welcomed && this.#socket.readyState === OPEN
  }

  #write (text: string): void {
    this.#socket!.send(text)
    this.#emit('frame', { direction: 'out', text })
  }

  #request (frame: Frame, kind: Request['kind'], room?: string): Promise<Frame> {
    if (this.#state.state === 'closed') return Promise.reject(new ChatError('closed', 'the client was closed'))
    if (!this.#ready()) return Promise.reject(new ChatError('disconnected', 'not connected'))
    const ref = this.#nextRef++
    return new Promise((resolve, reject) => {
      this.#requests.set(ref, room === undefined ? { kind, resolve, reject } : { kind, room, resolve, reject })
      this.#write(JSON.stringify({ type: frame.type, ref, ...frame }))
    })
  }

  // --- what arrives ---

  #receive (text: string): void {
    this.#emit('frame', { direction: 'in', text })
    let frame: Frame
    try {
      frame = JSON.parse(text) as Frame
    } catch {
      return
    }
    if (frame === null || typeof frame !== 'object') return
    switch (frame.type) {
      case 'welcome': return this.#welcome(frame)
      case 'message': return this.#message(frame as unknown as ChatMessage)
      case 'ack': return this.#ack(frame)
      case 'joined': return this.#joined(frame)
      case 'history': return this.#history(frame)
      case 'reset': return this.#reset(frame)
      case 'presence':
        this.#emit('presence', frame as unknown as ChatPresence)
        return
      case 'error': return this.#error(frame)
      case 'refreshed': return this.#refreshed(frame)
      default: {
        // left, pong, custom_event: the answer to a request.
        const request = this.#takeRequest(frame)
        request?.resolve(frame)
      }
    }
  }

  #takeRequest (frame: Frame): Request | undefined {
    if (typeof frame.ref !== 'number') return undefined
    const request = this.#requests.get(frame.ref)
    if (request !== undefined) this.#requests.delete(frame.ref)
    return request
  }

  #welcome (frame: Frame): void {
    const payload = (frame.payload ?? {}) as { client_id?: number, user?: ChatUser }
    this.#welcomed = true
    this.#attempt = 0
    this.#clientId = payload.client_id
    this.#user = payload.user
    this.#setState(payload.user === undefined ? { state: 'open', clientId: payload.client_id ?? 0 } : { state: 'open', clientId: payload.client_id ?? 0, user: payload.user })
    this.#scheduleRefresh()
    for (const room of this.#rooms.values()) this.#sendJoin(room)
    // Lobby sends (and sends to rooms this client never joined, which the server answers) go now;
    // the others once their room is joined again.
    for (const pending of this.#sends.values()) this.#trySend(pending)
  }

  #sendJoin (room: Room): void {
    if (!this.#ready()) return
    const ref = this.#nextRef++
    const frame: Frame = { type: 'join', ref, room: room.name }
    if (room.synced) {
      frame.since = room.seq
      if (room.epoch !== undefined) frame.epoch = room.epoch
    } else if (room.options.since !== undefined) {
      frame.since = room.options.since
      if (room.options.epoch !== undefined) frame.epoch = room.options.epoch
    } else if (room.options.latest === true) {
      frame.latest = true
    }
    room.joining = true
    room.sentSince = frame.since as number | undefined
    this.#requests.set(ref, {
      kind: 'join',
      room: room.name,
      resolve: () => {},
      reject: (err) => {
        // Refused (forbidden, too_many_rooms, room_limit...): stop trying, and say so.
        if (err.code === 'disconnected') return
        const awaited = room.waiters.length > 0
        this.#forget(room, err)
        if (!awaited) this.#emit('error', { code: err.code, message: err.message, room: room.name })
      }
    })
    this.#write(JSON.stringify(frame))
  }

  /** Stops following a room: its waiters and its unsent sends are rejected with `err`. */
  #forget (room: Room, err: ChatError): void {
    if (this.#rooms.get(room.name) !== room) return
    this.#rooms.delete(room.name)
    clearTimeout(room.gapTimer)
    const waiters = room.waiters.splice(0)
    for (const w of waiters) w.reject(err)
    for (const pending of [...this.#sends.values()]) {
      if (pending.room === room.name && pending.sentOn === undefined && err.code !== 'left') {
        clearTimeout(pending.timer)
        this.#sends.delete(pending.ref)
        pending.reject(new ChatError(err.code, err.message, room.name))
      }
    }
  }

  #joined (frame: Frame): void {
    this.#takeRequest(frame)
    const room = this.#rooms.get(frame.room as string)
    if (room === undefined) return
    const p = (frame.payload ?? {}) as { members?: number[], users?: Record<string, ChatUser>, seq?: number, epoch?: string, recovered?: boolean, reason?: RecoveryReason, history?: ChatMessage[], more?: boolean }
    const history = Array.isArray(p.history) ? p.history : []
    const seq = typeof p.seq === 'number' ? p.seq : 0
    const recovered = p.recovered !== false
    const first = history.find((m) => typeof m.seq === 'number')
    // Where delivery continues from: after `since` when all was recovered; else after what the
    // server could give (a new epoch, evicted messages, or a `since` ahead of the room).
    const baseline = room.sentSince !== undefined && recovered ? room.sentSince : first !== undefined ? (first.seq as number) - 1 : seq
    const rejoined = room.synced
    room.seq = baseline
    room.synced = true
    if (typeof p.epoch === 'string') room.epoch = p.epoch
    room.member = true
    room.joining = false
    room.sentSince = undefined
    const event: JoinedEvent = { room: room.name, members: p.members ?? [], seq, recovered, rejoined }
    if (p.users !== undefined) event.users = p.users
    if (room.epoch !== undefined) event.epoch = room.epoch
    if (!recovered && p.reason !== undefined) event.reason = p.reason
    // Held live messages at or before the baseline are of no use (a new epoch's numbers start again).
    for (const s of room.held.keys()) if (s <= baseline) room.held.delete(s)
    this.#emit('joined', event)
    const waiters = room.waiters.splice(0)
    for (const w of waiters) w.resolve(event)
    for (const message of history) this.#hold(room, message)
    if (p.more === true) this.#fetch(room)
    this.#drain(room)
    for (const pending of this.#sends.values()) if (pending.room === room.name) this.#trySend(pending)
  }

  /** A `joined` or `history` with `more`: asks for the next page after the last seq delivered. */
  #fetch (room: Room): void {
    room.fetching = true
    this.#request({ type: 'history', room: room.name, since: room.seq, limit: HISTORY_PAGE }, 'history', room.name).catch(() => {
      room.fetching = false
    })
  }

  #history (frame: Frame): void {
    const request = this.#takeRequest(frame)
    if (request === undefined) return
    request.resolve(frame)
    const room = this.#rooms.get(frame.room as string)
    if (room === undefined || !room.member) return
    const messages = Array.isArray(frame.payload) ? frame.payload as ChatMessage[] : []
    if (typeof frame.epoch === 'string' && room.epoch !== undefined && frame.epoch !== room.epoch) {
      // The history was lost meanwhile: a join says so properly.
      room.fetching = false
      this.#rejoin(room)
      return
    }
    for (const message of messages) this.#hold(room, message)
    const last = messages.at(-1)
    if (frame.more === true && last !== undefined) {
      // Go on from what the server sent, even if it skipped evicted messages.
      if (typeof last.seq === 'number' && last.seq > room.seq) this.#skipTo(room, last.seq)
      this.#fetch(room)
      return
    }
    room.fetching = false
    this.#drain(room)
  }

  /** Delivers what is held up to `seq` even across a hole (messages the server no longer has). */
  #skipTo (room: Room, seq: number): void {
    const numbers = [...room.held.keys()].filter((s) => s <= seq).sort((a, b) => a - b)
    for (const s of numbers) {
      const message = room.held.get(s)!
      room.held.delete(s)
      room.seq = s
      this.#emit('message', message)
    }
  }

  #message (message: ChatMessage): void {
    if (typeof message.room !== 'string') {
      this.#emit('message', message)
      return
    }
    const room = this.#rooms.get(message.room)
    if (room === undefined || typeof message.seq !== 'number') {
      // Not followed, or not stored (Redis down): as it comes.
      this.#emit('message', message)
      return
    }
    this.#hold(room, message)
    this.#drain(room)
  }

  #hold (room: Room, message: ChatMessage): void {
    if (typeof message.seq !== 'number') {
      this.#emit('message', message)
      return
    }
    if (room.synced && message.seq <= room.seq) return // had it already
    room.held.set(message.seq, message)
  }

  /** Delivers held messages in order while the next one is there; a gap that stays is filled by joining again. */
  #drain (room: Room): void {
    if (room.joining || !room.synced) return
    for (let next = room.held.get(room.seq + 1); next !== undefined; next = room.held.get(room.seq + 1)) {
      room.held.delete(room.seq + 1)
      room.seq += 1
      this.#emit('message', next)
      if (this.#rooms.get(room.name) !== room || room.joining) return // left or rejoining from a listener
    }
    for (const s of room.held.keys()) if (s <= room.seq) room.held.delete(s)
    if (room.held.size === 0 || room.fetching) {
      clearTimeout(room.gapTimer)
      room.gapTimer = undefined
    } else if (room.gapTimer === undefined) {
      room.gapTimer = setTimeout(() => {
        room.gapTimer = undefined
        if (room.held.size > 0 && !room.fetching && !room.joining && this.#rooms.get(room.name) === room) this.#rejoin(room)
      }, GAP_WAIT_MS)
    }
  }

  #rejoin (room: Room): void {
    if (!room.member) return
    this.#sendJoin(room)
  }

  #reset (frame: Frame): void {
    const room = this.#rooms.get(frame.room as string)
    const p = (frame.payload ?? {}) as { epoch?: string, seq?: number }
    if (room === undefined || typeof p.epoch !== 'string') return
    const seq = typeof p.seq === 'number' ? p.seq : 0
    room.epoch = p.epoch
    room.seq = 0
    room.synced = true
    room.held.clear()
    this.#emit('reset', { room: room.name, epoch: p.epoch, seq })
    // Messages the new epoch had before the reset reached this instance: read from its start.
    if (seq > 0 && room.member && !room.joining) this.#fetch(room)
  }

  #ack (frame: Frame): void {
    if (typeof frame.ref !== 'number') return
    const pending = this.#sends.get(frame.ref)
    if (pending === undefined) return
    this.#sends.delete(frame.ref)
    clearTimeout(pending.timer)
    const p = (frame.payload ?? {}) as { id?: number, seq?: number | null, duplicate?: boolean }
    pending.resolve({ id: p.id ?? 0, seq: typeof p.seq === 'number' ? p.seq : null, duplicate: p.duplicate === true })
  }

  #error (frame: Frame): void {
    const p = (frame.payload ?? {}) as { code?: string, message?: string, room?: string }
    const err = new ChatError(p.code ?? 'error', p.message ?? '', p.room)
    if (typeof frame.ref === 'number') {
      const pending = this.#sends.get(frame.ref)
      if (pending !== undefined) {
        this.#sends.delete(frame.ref)
        clearTimeout(pending.timer)
        pending.reject(err)
        return
      }
      const request = this.#takeRequest(frame)
      if (request !== undefined) {
        if (request.kind === 'refresh') this.#refreshFailed(err)
        request.reject(err)
        return
      }
    }
    this.#emit('error', p.room === undefined ? { code: err.code, message: err.message } : { code: err.code, message: err.message, room: p.room })
  }

  #trySend (pending: PendingSend): void {
    if (!this.#ready() || pending.sentOn === this.#socket) return
    if (pending.room !== null) {
      const room = this.#rooms.get(pending.room)
      // A room being joined again: after its joined, so the member's resend is in order.
      if (room !== undefined && !room.member) return
    }
    pending.sentOn = this.#socket
    this.#write(pending.text)
  }

  // --- tokens ---

  /** Refreshes the token before its `exp`: a quarter of its remaining life early, at most a minute. */
  #scheduleRefresh (exp = expiryOf(this.#token)): void {
    clearTimeout(this.#refreshTimer)
    if (this.#getToken === undefined || exp === undefined) return
    const left = exp - Date.now()
    const early = Math.min(60_000, Math.max(500, left / 4))
    this.#refreshTimer = setTimeout(() => { void this.#refresh() }, Math.max(0, left - early))
  }

  async #refresh (): Promise<void> {
    const socket = this.#socket
    let token: string
    try {
      token = await this.#getToken!()
    } catch (err) {
      this.#refreshFailed(new ChatError('invalid_token', `getToken failed: ${(err as Error).message}`))
      return
    }
    if (this.#socket !== socket || !this.#ready()) return
    this.#pendingToken = token
    this.#request({ type: 'refresh', token }, 'refresh').catch(() => {})
  }

  #pendingToken: string | undefined

  #refreshed (frame: Frame): void {
    this.#takeRequest(frame)
    if (this.#pendingToken !== undefined) this.#token = this.#pendingToken
    this.#pendingToken = undefined
    this.#scheduleRefresh(typeof frame.exp === 'number' ? frame.exp * 1000 : expiryOf(this.#token))
  }

  /** A refused refresh: said, and tried once more a little later while the old token lasts. */
  #refreshFailed (err: ChatError): void {
    this.#pendingToken = undefined
    this.#emit('error', { code: err.code, message: err.message })
    const exp = expiryOf(this.#token)
    if (exp === undefined || exp - Date.now() < 2000) return
    clearTimeout(this.#refreshTimer)
    this.#refreshTimer = setTimeout(() => { void this.#refresh() }, Math.min(5000, (exp - Date.now()) / 2))
  }

  // --- events ---

  #setState (state: ConnectionState): void {
    this.#state = state
    this.#emit('state', state)
  }

  #emit<E extends keyof ChatEvents> (event: E, value: Parameters<ChatEvents[E]>[0]): void {
    const set = this.#listeners.get(event)
    if (set === undefined) return
    for (const listener of set) {
      try {
        (listener as (v: typeof value) => void)(value)
      } catch (err) {
        // A listener's bug must not stop delivery to the others: reported as uncaught, later.
        queueMicrotask(() => { throw err })
      }
    }
  }
}

// --- helpers ---

function optional<T> (value: T | undefined, name: string, ok: (v: unknown) => boolean, what: string): T | undefined {
  if (value === undefined) return undefined
  if (!ok(value)) throw new TypeError(`connect: ${name} must be ${what}, got ${value === null ? 'null' : typeof value}`)
  return value
}

function positive (v: unknown): boolean {
  return typeof v === 'number' && Number.isFinite(v) && v > 0
}

/** The global WebSocket (browsers, Node 22), else `ws` (Node 20), imported only then. */
async function webSocketClass (): Promise<WebSocketConstructor> {
  const global = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
  if (global !== undefined) return global
  // A name in a variable, so that bundlers for the browser leave it alone.
  const name: string = 'ws'
  const mod = await import(/* @vite-ignore */ name) as { WebSocket?: WebSocketConstructor, default?: WebSocketConstructor }
  const found = mod.WebSocket ?? mod.default
  if (found === undefined) throw new Error('no WebSocket: pass one as the WebSocket option, or install ws')
  return found
}

/** An absolute ws:// or wss:// URL; a page's relative one is taken from its own origin. */
function socketUrl (url: string): string {
  const base = (globalThis as { location?: { href: string } }).location?.href
  const u = new URL(url, base)
  if (u.protocol === 'http:') u.protocol = 'ws:'
  else if (u.protocol === 'https:') u.protocol = 'wss:'
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new Error(`${url} is not a ws:// or wss:// URL`)
  return u.href
}

/** For showing: the URL with no token in it. */
function withoutToken (url: string): string {
  const u = new URL(url)
  u.searchParams.delete('token')
  return u.href
}

function withToken (url: string, token: string | undefined): string {
  if (token === undefined) return url
  const u = new URL(url)
  u.searchParams.set('token', token)
  return u.href
}

/** A JWT's `exp` in ms, or undefined (no token, not a JWT, no exp). */
export function expiryOf (token: string | undefined): number | undefined {
  const part = token?.split('.')[1]
  if (part === undefined) return undefined
  try {
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '='))
    const exp = (JSON.parse(json) as { exp?: unknown }).exp
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined
  } catch {
    return undefined
  }
}

function expiresWithin (token: string, ms: number): boolean {
  const exp = expiryOf(token)
  return exp !== undefined && exp - Date.now() < ms
}

/** 32 hex digits from the platform's random source (also in a page served over plain http). */
function randomKey (): string {
  const bytes = new Uint8Array(16)
  const crypto = (globalThis as { crypto?: { getRandomValues: (a: Uint8Array) => Uint8Array } }).crypto
  if (crypto !== undefined) crypto.getRandomValues(bytes)
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256)
  let key = ''
  for (const b of bytes) key += b.toString(16).padStart(2, '0')
  return key
}
