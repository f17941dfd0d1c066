// The connection registry: every open WebSocket of every endpoint, with per-connection,
// per-endpoint and process-wide figures. It owns each socket's place in it: `attach` opens the
// Connection and the socket's own `close` removes it. Framework-free; plugins/registry.ts exposes
// it to Fastify.
import { formatPeer, plainAddress } from './format.js'
import type { LimitName } from './limits.js'
import type { JsonValue } from './chat/messages.js'
import type { AdapterStatus, HistoryUsage, RoomInfo } from './chat/adapter.js'
import type { User } from './auth/user.js'

/** setTimeout's longest delay; a later deadline is reached in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1

/**
 * What the registry needs of a WebSocket (a `ws` WebSocket is one): enough to remove it on close,
 * ping it, and close or cut it off. Declared here so the core does not depend on `ws`.
 */
export interface RegistrySocket {
  /** 0 connecting, 1 open, 2 closing, 3 closed (the WebSocket standard's numbers). */
  readonly readyState: number
  close (code?: number, reason?: string): void
  terminate (): void
  ping (): void
  on (event: 'close' | 'ping' | 'pong', listener: (this: RegistrySocket) => void): unknown
}

/** Where a socket came from, as `attach` records it. */
export interface PeerInfo {
  /** The client's address as the TCP socket reports it (IPv4-mapped IPv6 is unwrapped for display), or as a trusted proxy forwarded it. */
  address: string | undefined
  /** Undefined for a forwarded address: the peer is then shown without a port. */
  port: number | undefined
  /** The request URL the client connected to; its query (which may hold a token) is not kept. */
  path: string
  /** Who the client is, with identity on. */
  user?: User | undefined
}

const OPEN = 1
/** A ping with no payload, as a server sends it (unmasked), written as it is to every client. */
const PING_FRAME = Buffer.from([0x89, 0x00])

/** Where pre-framed bytes may be written straight through (the TCP socket under the WebSocket). */
export interface DirectWriter {
  write: (data: Buffer) => boolean
  /**
   * Set when the client negotiated permessage-deflate (each message compressed on its own): it
   * gets messages from the threshold up deflated, and only while `idle()` says the socket's own
   * sender holds nothing back, or the bytes would overtake a frame it is still compressing.
   */
  deflate?: { idle: () => boolean }
}
const CLOSED = 3
/** The Connection of a socket, set by `attach`: one listener function then serves every socket. */
const kConnection = Symbol('echohub.connection')
type AttachedSocket = RegistrySocket & { [kConnection]?: Connection }

/** The Connection `attach` opened for this socket (`isOpen` tells whether it is still open). */
export function connectionOf (socket: RegistrySocket): Connection | undefined {
  return (socket as AttachedSocket)[kConnection]
}

function onSocketClose (this: RegistrySocket): void {
  connectionOf(this)?.remove()
}

function onControlFrame (this: RegistrySocket): void {
  connectionOf(this)?.controlFrame()
}

/** The close reason of a client that sent more pings and pongs in a second than its endpoint allows. */
export const CONTROL_FLOOD_REASON = 'too many control frames'

function onSocketPong (this: RegistrySocket): void {
  const conn = connectionOf(this)
  if (conn === undefined) return
  conn.awaitingPong = false
  conn.ponged()
}

/** What the routes of any app sharing the registry need of a chat endpoint (its core provides it). */
export interface ChatEndpointApi {
  /** Sends a message from the server (`from: 0`) to a room, or to the lobby (`null`). */
  publish: (room: string | null, payload: JsonValue) => Promise<{ id: number, seq: number | null }>
  readonly adapter: { rooms: () => Promise<RoomInfo[]>, readonly status: AdapterStatus, readonly outages?: number, historyUsage?: () => HistoryUsage }
}

export interface Traffic {
  messages: { received: number, sent: number }
  bytes: { received: number, sent: number }
}

export interface ConnectionFigures {
  current: number
  peak: number
  total: number
}

/** What an endpoint has seen. Process-wide traffic is the sum over endpoints, never counted twice. */
export class EndpointStats implements Traffic {
  readonly name: string
  readonly connections: ConnectionFigures = { current: 0, peak: 0, total: 0 }
  readonly messages = { received: 0, sent: 0 }
  readonly bytes = { received: 0, sent: 0 }
  /** The limits this endpoint runs with, shown in /stats. */
  readonly limits: Record<string, number | string | boolean> = {}
  /** Added to the ids of this endpoint's connections: a shared chat adapter's clientIdBase, so client_ids never collide across instances. */
  idBase = 0
  /** Pings and pongs a client may send in one second (0: no limit); past it, close 1008 (`control_flood`). */
  maxControlFrames = 0
  /** Told when a client is closed for a control-frame flood, to log it. */
  onControlFlood: ((conn: Connection) => void) | undefined

  constructor (name: string) {
    this.name = name
  }
}

/** One open WebSocket. `received`/`sent` are on every message's path, so they only add numbers. */
export class Connection {
  readonly id: number
  readonly endpoint: EndpointStats
  /** The WebSocket itself, so heartbeat, shutdown and operators can reach it. */
  readonly socket: RegistrySocket
  /** The path the client connected to, without the query. */
  readonly path: string
  /** Client address as shown to people: IPv4-mapped IPv6 unwrapped. */
  readonly address: string
  readonly port: number
  /** `address:port` in the SPEC's format. */
  readonly peer: string
  readonly startedAt: number
  messagesReceived = 0
  messagesSent = 0
  bytesReceived = 0
  bytesSent = 0
  /** A heartbeat ping is out and not answered yet. */
  awaitingPong = false
  /**
   * Where the endpoint writes pre-framed bytes (broadcasts, small echoes, heartbeat pings) past
   * ws's sender; undefined when ws must frame them (extensions it cannot skip, the lab, an
   * inspector watching the connection).
   */
  direct: DirectWriter | undefined
  /** Who the client is, with identity on (signed tokens or the registry's `authenticate`). */
  user: User | undefined
  /** The one timer that ends the connection when its credentials expire. */
  #expiry: NodeJS.Timeout | undefined
  /** The connection keeps a heartbeat of its own (the lab's `ping` control): the server-wide one skips it. */
  ownHeartbeat = false
  /** Round trip of the last answered ping in ms (heartbeat or operator's), to 0.1 ms. */
  rttMs: number | undefined
  #registry: ConnectionRegistry
  #open = true
  #pongListener = false
  /** When the last ping left, by performance.now(); undefined once answered. */
  #pingSentAt: number | undefined
  /** Pings and pongs received since `#controlSince` (ms since the epoch), for the control-frame limit. */
  #controlFrames = 0
  #controlSince = 0

  constructor (registry: ConnectionRegistry, id: number, endpoint: EndpointStats, socket: RegistrySocket, peer: PeerInfo) {
    this.#registry = registry
    this.id = endpoint.idBase + id
    this.endpoint = endpoint
    this.socket = socket
    const query = peer.path.indexOf('?')
    this.path = query === -1 ? peer.path : peer.path.slice(0, query)
    this.address = plainAddress(peer.address)
    this.port = peer.port ?? 0
    this.peer = formatPeer(peer.address, peer.port)
    this.startedAt = Date.now()
    this.user = peer.user
  }

  received (bytes: number): void {
    this.messagesReceived++
    this.bytesReceived += bytes
    this.endpoint.messages.received++
    this.endpoint.bytes.received += bytes
  }

  /** Counts `messages` sent to this client (a broadcast may write several at once), `bytes` of payload in all. */
  sent (bytes: number, messages = 1): void {
    this.messagesSent += messages
    this.bytesSent += bytes
    this.endpoint.messages.sent += messages
    this.endpoint.bytes.sent += bytes
  }

  get isOpen (): boolean {
    return this.#open
  }

  /**
   * One heartbeat beat: pings the client and returns true, or returns false (and sends nothing)
   * when the previous ping is still unanswered, so the caller can cut the client off. A ping that
   * left less than `patience` ms ago is not judged yet: the beat does nothing and returns true.
   */
  heartbeat (patience = 0): boolean {
    if (this.ownHeartbeat) return true
    if (this.awaitingPong) {
      return this.#pingSentAt !== undefined && performance.now() - this.#pingSentAt < patience
    }
    this.awaitingPong = true
    this.ping()
    return true
  }

  /** Pings the client; its pong sets `rttMs`. */
  ping (): void {
    // The pong listener is added on the first ping only, so a heartbeat that is off costs nothing.
    if (!this.#pongListener) {
      this.#pongListener = true
      this.socket.on('pong', onSocketPong)
    }
    this.#pingSentAt = performance.now()
    // Two constant bytes in one write, where ws would build the frame and write it in two.
    const { direct } = this
    if (direct !== undefined && (direct.deflate === undefined || direct.deflate.idle()) && this.socket.readyState === OPEN) direct.write(PING_FRAME)
    else this.socket.ping()
  }

  /**
   * A ping or pong arrived from the client. More than the endpoint's `maxControlFrames` within a
   * second closes the connection 1008, counted as `control_flood`.
   */
  controlFrame (): void {
    const max = this.endpoint.maxControlFrames
    if (max === 0) return
    const now = Date.now()
    if (now - this.#controlSince >= 1000) {
      this.#controlSince = now
      this.#controlFrames = 0
    }
    if (++this.#controlFrames <= max || this.socket.readyState !== OPEN) return
    this.#registry.hit('control_flood')
    this.endpoint.onControlFlood?.(this)
    this.socket.close(1008, CONTROL_FLOOD_REASON)
  }

  /** A pong arrived: the round trip of the ping it answers. */
  ponged (): void {
    if (this.#pingSentAt === undefined) return
    this.rttMs = Math.round((performance.now() - this.#pingSentAt) * 10) / 10
    this.#pingSentAt = undefined
  }

  /**
   * Leaves the registry. The registry calls it when the socket closes, however it closes; a plugin
   * never needs to. Safe to call more than once: only the first call counts.
   */
  remove (): void {
    if (!this.#open) return
    this.#open = false
    clearTimeout(this.#expiry)
    this.#expiry = undefined
    this.#registry.forget(this)
  }

  /**
   * Calls `expire` at `at` (ms since the epoch; at once when it has passed), replacing any earlier
   * deadline; `undefined` removes the deadline. Cleared when the connection leaves the registry.
   */
  expireAt (at: number | undefined, expire: () => void): void {
    clearTimeout(this.#expiry)
    this.#expiry = undefined
    if (at === undefined || !this.#open) return
    const wait = at - Date.now()
    this.#expiry = setTimeout(wait > MAX_TIMER_MS ? () => this.expireAt(at, expire) : expire, Math.max(0, Math.min(wait, MAX_TIMER_MS)))
    this.#expiry.unref()
  }
}

export interface RegistryOptions {
  /** Shown as `server_info` in /stats. */
  serverInfo?: string
}

export interface StatsSnapshot extends Traffic {
  server_info: string
  started_at: string
  uptime_s: number
  connections: ConnectionFigures
  endpoints: Record<string, Traffic & { connections: ConnectionFigures, limits: Record<string, number | string | boolean> }>
  limits: { settings: Record<string, number | string | boolean>, hits: Partial<Record<LimitName, number>> }
  memory: { rss: number, heap_used: number }
}

export class ConnectionRegistry {
  readonly serverInfo: string
  readonly startedAt = Date.now()
  readonly connections = new Set<Connection>()
  readonly endpoints = new Map<string, EndpointStats>()
  /** The chat endpoints by name, for /rooms, /publish and library users (`registry.chats.get('chat').publish(...)`). */
  readonly chats = new Map<string, ChatEndpointApi>()
  /** Process-wide limits (connection caps, heartbeat, ...), shown in /stats. */
  readonly limitSettings: Record<string, number | string | boolean> = {}
  /** How often each limit was hit, by limit name; shown in /stats and /metrics. */
  readonly limitHits: Partial<Record<LimitName, number>> = {}
  readonly #perAddress = new Map<string, number>()
  #peak = 0
  #total = 0
  #draining = false

  constructor (options: RegistryOptions = {}) {
    this.serverInfo = options.serverInfo ?? 'echohub'
  }

  /** Declares an endpoint; each name is used once per registry so its figures stay its own. */
  addEndpoint (name: string): EndpointStats {
    if (this.endpoints.has(name)) throw new Error(`an endpoint named "${name}" is already registered`)
    const stats = new EndpointStats(name)
    this.endpoints.set(name, stats)
    return stats
  }

  /**
   * Opens a Connection for an open WebSocket of `endpoint`, removed again when the socket emits
   * `close`, however it closes. Its `id` numbers connections of this registry from 1. Call it
   * before adding the endpoint's own `close` listener, so that one sees the registry without it.
   */
  attach (socket: RegistrySocket, endpoint: EndpointStats, peer: PeerInfo): Connection {
    const conn = this.#open(socket, endpoint, peer)
    ;(socket as AttachedSocket)[kConnection] = conn
    // 'close' has already been emitted for a socket that is closed: nothing would remove it later.
    if (socket.readyState === CLOSED) {
      conn.remove()
      return conn
    }
    socket.on('close', onSocketClose)
    if (endpoint.maxControlFrames > 0) {
      socket.on('ping', onControlFrame)
      socket.on('pong', onControlFrame)
    }
    return conn
  }

  #open (socket: RegistrySocket, endpoint: EndpointStats, peer: PeerInfo): Connection {
    if (this.endpoints.get(endpoint.name) !== endpoint) throw new Error(`endpoint "${endpoint.name}" is not declared in this registry`)
    const conn = new Connection(this, ++this.#total, endpoint, socket, peer)
    this.connections.add(conn)
    if (this.connections.size > this.#peak) this.#peak = this.connections.size
    this.#perAddress.set(conn.address, (this.#perAddress.get(conn.address) ?? 0) + 1)
    const figures = endpoint.connections
    figures.total++
    if (++figures.current > figures.peak) figures.peak = figures.current
    return conn
  }

  /** Called by Connection.remove(). */
  forget (conn: Connection): void {
    if (!this.connections.delete(conn)) return
    conn.endpoint.connections.current--
    const left = (this.#perAddress.get(conn.address) ?? 1) - 1
    if (left === 0) this.#perAddress.delete(conn.address)
    else this.#perAddress.set(conn.address, left)
  }

  /** Open connections from one client address (as Connection.address shows it). */
  connectionsFrom (address: string): number {
    return this.#perAddress.get(plainAddress(address)) ?? 0
  }

  /** The open connections of some endpoints (e.g. the endpoints of one app). */
  connectionsOf (endpoints: ReadonlySet<EndpointStats>): Connection[] {
    const found: Connection[] = []
    for (const conn of this.connections) if (endpoints.has(conn.endpoint)) found.push(conn)
    return found
  }

  /** Counts one hit of a limit (a refused upgrade, a dropped message, a closed client...). */
  hit (limit: LimitName, count = 1): void {
    this.limitHits[limit] = (this.limitHits[limit] ?? 0) + count
  }

  get draining (): boolean {
    return this.#draining
  }

  /** Shutdown has begun: /health answers 503 and no new connection is accepted. */
  startDraining (): void {
    this.#draining = true
  }

  get uptimeSeconds (): number {
    return Math.round((Date.now() - this.startedAt) / 100) / 10
  }

  snapshot (): StatsSnapshot {
    const messages = { received: 0, sent: 0 }
    const bytes = { received: 0, sent: 0 }
    const endpoints: StatsSnapshot['endpoints'] = {}
    for (const ep of this.endpoints.values()) {
      messages.received += ep.messages.received
      messages.sent += ep.messages.sent
      bytes.received += ep.bytes.received
      bytes.sent += ep.bytes.sent
      endpoints[ep.name] = {
        connections: { ...ep.connections },
        messages: { ...ep.messages },
        bytes: { ...ep.bytes },
        limits: { ...ep.limits }
      }
    }
    const mem = process.memoryUsage()
    return {
      server_info: this.serverInfo,
      started_at: new Date(this.startedAt).toISOString(),
      uptime_s: this.uptimeSeconds,
      connections: { current: this.connections.size, peak: this.#peak, total: this.#total },
      messages,
      bytes,
      endpoints,
      limits: { settings: { ...this.limitSettings }, hits: { ...this.limitHits } },
      memory: { rss: mem.rss, heap_used: mem.heapUsed }
    }
  }
}
