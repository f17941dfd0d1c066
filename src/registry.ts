// The connection registry: every open WebSocket of every endpoint, with per-connection,
// per-endpoint and process-wide figures. Framework-free; plugins/registry.ts exposes it to Fastify.
import { formatPeer, plainAddress } from './format.js'

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

  constructor (name: string) {
    this.name = name
  }
}

/** One open WebSocket. `received`/`sent` are on every message's path, so they only add numbers. */
export class Connection {
  readonly id: number
  readonly endpoint: EndpointStats
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
  #registry: ConnectionRegistry
  #open = true

  constructor (registry: ConnectionRegistry, id: number, endpoint: EndpointStats, address: string | undefined, port: number | undefined) {
    this.#registry = registry
    this.id = id
    this.endpoint = endpoint
    this.address = plainAddress(address)
    this.port = port ?? 0
    this.peer = formatPeer(address, port)
    this.startedAt = Date.now()
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

  /** Leaves the registry. Safe to call more than once: only the first call counts. */
  remove (): void {
    if (!this.#open) return
    this.#open = false
    this.#registry.forget(this)
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
  limits: { settings: Record<string, number | string | boolean>, hits: Record<string, number> }
  memory: { rss: number, heap_used: number }
}

export class ConnectionRegistry {
  readonly serverInfo: string
  readonly startedAt = Date.now()
  readonly connections = new Set<Connection>()
  readonly endpoints = new Map<string, EndpointStats>()
  /** Process-wide limits (connection caps, heartbeat, ...), shown in /stats. */
  readonly limitSettings: Record<string, number | string | boolean> = {}
  /** How often each limit was hit, by limit name; shown in /stats and /metrics. */
  readonly limitHits: Record<string, number> = {}
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

  /** Records a new open connection; its `id` numbers connections of this registry from 1. */
  open (endpoint: EndpointStats, address: string | undefined, port: number | undefined): Connection {
    const conn = new Connection(this, ++this.#total, endpoint, address, port)
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

  /** Counts one hit of a limit (a refused upgrade, a dropped message, a closed client...). */
  hit (limit: string): void {
    this.limitHits[limit] = (this.limitHits[limit] ?? 0) + 1
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
