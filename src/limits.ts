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
  shutdownTimeout: 5000
} as const
