// The default of every limit, in one place: the CLI's settings table and the plugins' options
// both read them from here.
export const DEFAULT_LIMITS = {
  /** Largest echo message, bytes (larger: close 1009). */
  echoMaxPayload: 1024 * 1024,
  /** Largest chat message, bytes (larger: close 1009). */
  chatMaxPayload: 64 * 1024,
  /** Connections per process, all servers together (over: HTTP 503). */
  maxConnections: 10000,
  /** Connections from one client address (over: HTTP 429). */
  maxConnectionsPerIp: 1000,
  /** Chat messages per second per connection. */
  rateLimit: 20,
  /** Chat messages a connection may send at once. */
  rateBurst: 40,
  /** Ping period, ms; 0 turns the heartbeat off. */
  heartbeatInterval: 30000,
  /** A chat client's unsent bytes before it is dropped as a slow consumer. */
  maxBuffered: 4 * 1024 * 1024,
  /** How long shutdown waits for clients, ms. */
  shutdownTimeout: 5000,
  /** Messages kept per chat room (0: none). */
  historySize: 100,
  /** Rooms one chat connection may be in. */
  maxRoomsPerClient: 32,
  /** Chat rooms that exist at once (across the cluster with Redis). */
  maxRooms: 10000,
  /** An empty room is forgotten, history included, this many ms after its last member left. */
  roomTtl: 300000,
  /** All chat rooms' stored messages together, bytes (in memory; oldest evicted first past it). */
  historyMaxBytes: 64 * 1024 * 1024,
  /** How long a chat message's idempotency key is remembered, ms. */
  dedupeWindow: 120000,
  /** Idempotency keys remembered at most per process (oldest forgotten first). */
  dedupeMaxKeys: 100000,
  /** An inspector page's unsent bytes past which its events are dropped (counted as inspector_dropped). */
  inspectorMaxBuffered: 1024 * 1024,
  /** A socket's time from accept (its TLS handshake included) to its request's complete headers, ms. */
  headersTimeout: 10000,
  /** The most one received message's lab replies may send, bytes (over: close 1008, lab_output). */
  labMaxOutput: 16 * 1024 * 1024,
  /** The most a lab burst may ask for, `burst * burst_size` bytes (over: 400 invalid_control). */
  labMaxBurst: 256 * 1024 * 1024,
  /** Pings and pongs one client may send in a second (over: close 1008, control_flood); 0 turns it off. */
  maxControlFrames: 100,
  /** Agents whose conformance results are kept; a new one past it forgets the least recently updated. */
  conformanceMaxAgents: 100,
  /** Conformance cases running at once in the process (over: HTTP 503). */
  conformanceMaxRunning: 8,
  /** Bytes of wire log kept per conformance case. */
  conformanceWireBytes: 16 * 1024,
  /** Bytes of conformance results kept per agent. */
  conformanceAgentBytes: 8 * 1024 * 1024
} as const

/**
 * Every limit echohub counts when it is hit, by the name /stats (`limits.hits`) and /metrics
 * (`limit="..."`) show it under.
 */
export const LIMIT_NAMES = [
  'max_connections',
  'max_connections_per_ip',
  'origin',
  'auth',
  'draining',
  'oversize',
  'invalid_utf8',
  'protocol_error',
  'heartbeat_timeout',
  'slow_consumer',
  'rate_limited',
  'rate_flood',
  'echo_backpressure',
  'too_many_rooms',
  'room_limit',
  'token_expired',
  'forbidden',
  'invalid_control',
  'inspector_dropped',
  'admin_local_only',
  'headers_timeout',
  'history_evicted',
  'dedupe_evicted',
  'lab_output',
  'control_flood',
  'conformance_busy',
  'conformance_evicted'
] as const

export type LimitName = typeof LIMIT_NAMES[number]

/** What each endpoint plugin uses when an option is not given. */
export const ENDPOINT_DEFAULTS = {
  echo: {
    name: 'echo',
    path: '/',
    serverInfo: 'echohub echo server',
    welcomeMessage: 'Welcome to the echohub echo server!'
  },
  chat: {
    name: 'chat',
    path: '/ws',
    serverInfo: 'echohub chat server',
    welcomeMessage: 'Welcome to the echohub chat!'
  }
} as const

/** Prefix of every Redis key and channel; instances share a chat when they share Redis and prefix. */
export const DEFAULT_REDIS_PREFIX = 'echohub:'

/** An instance whose Redis heartbeat is older than this (ms) is dead: the others remove its members. */
export const DEFAULT_HEARTBEAT_TTL = 10000
