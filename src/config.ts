// Every setting echohub's entry point takes: flag, environment variable, default and help text
// side by side, so the CLI, `--help` and the README can never disagree.
import { parseArgs } from 'node:util'
import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { InvalidConfigError } from './errors.js'
import { VERSION } from './version.js'
import { DEFAULT_HEARTBEAT_TTL, DEFAULT_LIMITS, DEFAULT_REDIS_PREFIX, ENDPOINT_DEFAULTS } from './limits.js'
import { publicKeyFromPem, secretKey } from './auth/jwt.js'
import { isSubprotocolName } from './transport/subprotocols.js'

export const SERVER_NAMES = ['echo', 'echo-debug', 'chat'] as const
export type ServerName = (typeof SERVER_NAMES)[number]

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]
export type LogFormat = 'json' | 'pretty'

export interface Config {
  host: string
  echoPort: number
  debugPort: number
  chatPort: number
  servers: ServerName[]
  logLevel: LogLevel | undefined
  logFormat: LogFormat | undefined
  serverInfo: string
  /** Allowed browser origins: `*` for any, else exact origins like `https://example.com`. */
  origins: '*' | string[]
  echoMaxPayload: number
  chatMaxPayload: number
  maxConnections: number
  maxConnectionsPerIp: number
  rateLimit: number
  rateBurst: number
  heartbeatInterval: number
  maxBuffered: number
  authToken: string | undefined
  shutdownTimeout: number
  /** ms from accept (TLS handshake included) to a request's complete headers. */
  headersTimeout: number
  historySize: number
  maxRoomsPerClient: number
  maxRooms: number
  roomTtl: number
  historyMaxBytes: number
  dedupeWindow: number
  dedupeMaxKeys: number
  /** Redis shared by every instance of one chat (`redis://host:6379`); none: the chat runs in process. */
  redis: string | undefined
  redisPrefix: string
  /** ms after its last heartbeat that the other instances take an instance for dead and remove its members. */
  redisHeartbeatTtl: number
  /** HS256 secret for client JWTs; with it (or jwtPublicKey) identity is on. */
  jwtSecret: string | undefined
  /** PEM text of the RS256/ES256 public key, read from the --jwt-public-key file at start. */
  jwtPublicKey: string | undefined
  jwtAudience: string | undefined
  jwtIssuer: string | undefined
  inspectorMaxBuffered: number
  /** The most one received message's lab replies may send, bytes. */
  labMaxOutput: number
  /** The most a lab burst may ask for (`burst * burst_size`), bytes. */
  labMaxBurst: number
  /** Pings and pongs one client may send in a second; 0 turns the check off. */
  maxControlFrames: number
  /** PEM files of the certificate and key every server speaks https/wss with. */
  tlsCert: string | undefined
  tlsKey: string | undefined
  /** Make (once) and use a self-signed certificate kept in `.echohub/`. */
  tlsSelfSigned: boolean
  /** Subprotocols the echo servers accept; `undefined`: the first one a client offers. */
  subprotocols: string[] | undefined
  /** Subprotocols the chat accepts (none by default). */
  chatSubprotocols: string[]
  /** permessage-deflate on every server. */
  compression: boolean
  /** Fastify's `trustProxy`: `true`, a hop count, or the proxies' addresses/CIDRs. */
  trustProxy: TrustProxy
  /** The client conformance suite is off (`--no-conformance`). */
  noConformance: boolean
  /** A port serving the suite's routes at its root, for drivers that take only host and port. */
  conformancePort: number | undefined
  conformanceDir: string
  conformanceMaxAgents: number
  conformanceMaxRunning: number
  /** The server's selection, Autobahn's patterns comma-separated; undefined: every case. */
  conformanceCases: string | undefined
}

/** Which proxies' `X-Forwarded-For` is believed: none (`false`), any (`true`), the last N hops, or these addresses/CIDRs. */
export type TrustProxy = boolean | number | string[]

type Kind = 'string' | 'port' | 'servers' | 'logLevel' | 'logFormat' | 'count' | 'origins' | 'redisUrl' | 'redisPrefix' | 'jwtSecret' | 'pemFile' | 'switch' | 'subprotocols' | 'trustProxy'

interface Setting {
  key: keyof Config
  flag: string
  env: string
  kind: Kind
  default: string | undefined
  help: string
  /** Smallest value of a `count`. */
  min?: number
  /** What a `count` counts, said when a value is refused, e.g. `ms; 0 turns it off`. */
  unit?: string
}

/** The one table of settings. A flag wins over its environment variable, which wins over the default. */
export const SETTINGS: readonly Setting[] = [
  { key: 'host', flag: 'host', env: 'HOST', kind: 'string', default: '0.0.0.0', help: 'address to listen on' },
  { key: 'echoPort', flag: 'echo-port', env: 'ECHO_PORT', kind: 'port', default: '8765', help: 'port of the echo server (0 picks a free port)' },
  { key: 'debugPort', flag: 'debug-port', env: 'DEBUG_PORT', kind: 'port', default: '8766', help: 'port of the echo-debug server' },
  { key: 'chatPort', flag: 'chat-port', env: 'CHAT_PORT', kind: 'port', default: '5000', help: 'port of the chat server and its browser pages' },
  { key: 'servers', flag: 'only', env: 'SERVERS', kind: 'servers', default: SERVER_NAMES.join(','), help: 'servers to run, comma-separated' },
  { key: 'logLevel', flag: 'log-level', env: 'LOG_LEVEL', kind: 'logLevel', default: undefined, help: `${LOG_LEVELS.join('|')} (default info; echo-debug logs at debug)` },
  { key: 'logFormat', flag: 'log-format', env: 'LOG_FORMAT', kind: 'logFormat', default: undefined, help: 'json|pretty (default: pretty on a terminal, json otherwise)' },
  { key: 'serverInfo', flag: 'server-info', env: 'SERVER_INFO', kind: 'string', default: ENDPOINT_DEFAULTS.echo.serverInfo, help: 'server_info string in echo replies' },
  { key: 'origins', flag: 'origins', env: 'ORIGINS', kind: 'origins', default: '*', help: 'allowed browser origins, comma-separated, or * for any: CORS and the check on the upgrade' },
  { key: 'echoMaxPayload', flag: 'echo-max-payload', env: 'ECHO_MAX_PAYLOAD', kind: 'count', min: 1, unit: 'bytes', default: String(DEFAULT_LIMITS.echoMaxPayload), help: 'largest echo message in bytes; larger closes with 1009' },
  { key: 'chatMaxPayload', flag: 'chat-max-payload', env: 'CHAT_MAX_PAYLOAD', kind: 'count', min: 1, unit: 'bytes', default: String(DEFAULT_LIMITS.chatMaxPayload), help: 'largest chat message in bytes; larger closes with 1009' },
  { key: 'maxConnections', flag: 'max-connections', env: 'MAX_CONNECTIONS', kind: 'count', min: 1, default: String(DEFAULT_LIMITS.maxConnections), help: 'connections per process, all servers together (over: HTTP 503)' },
  { key: 'maxConnectionsPerIp', flag: 'max-connections-per-ip', env: 'MAX_CONNECTIONS_PER_IP', kind: 'count', min: 1, default: String(DEFAULT_LIMITS.maxConnectionsPerIp), help: 'connections from one client address (over: HTTP 429)' },
  { key: 'rateLimit', flag: 'rate-limit', env: 'RATE_LIMIT', kind: 'count', min: 0, unit: 'messages per second; 0 turns it off', default: String(DEFAULT_LIMITS.rateLimit), help: 'chat messages per second per connection (0: no limit)' },
  { key: 'rateBurst', flag: 'rate-burst', env: 'RATE_BURST', kind: 'count', min: 1, default: String(DEFAULT_LIMITS.rateBurst), help: 'chat messages a connection may send at once' },
  { key: 'heartbeatInterval', flag: 'heartbeat-interval', env: 'HEARTBEAT_INTERVAL', kind: 'count', min: 0, unit: 'ms; 0 turns it off', default: String(DEFAULT_LIMITS.heartbeatInterval), help: 'ping period in ms; a client that missed the last ping is cut off (0: off)' },
  { key: 'maxBuffered', flag: 'max-buffered', env: 'MAX_BUFFERED', kind: 'count', min: 0, unit: 'bytes; 0 turns it off', default: String(DEFAULT_LIMITS.maxBuffered), help: "a chat client's unsent bytes before it is dropped (0: no cap)" },
  { key: 'authToken', flag: 'auth-token', env: 'AUTH_TOKEN', kind: 'string', default: undefined, help: 'require this token on upgrades, /stats and /metrics (Bearer or ?token=)' },
  { key: 'historySize', flag: 'history-size', env: 'HISTORY_SIZE', kind: 'count', min: 0, unit: 'messages; 0 keeps none', default: String(DEFAULT_LIMITS.historySize), help: 'chat messages kept per room for history and resume (0: none)' },
  { key: 'maxRoomsPerClient', flag: 'max-rooms-per-client', env: 'MAX_ROOMS_PER_CLIENT', kind: 'count', min: 1, default: String(DEFAULT_LIMITS.maxRoomsPerClient), help: 'chat rooms one connection may be in (over: error too_many_rooms)' },
  { key: 'maxRooms', flag: 'max-rooms', env: 'MAX_ROOMS', kind: 'count', min: 1, default: String(DEFAULT_LIMITS.maxRooms), help: 'chat rooms that exist at once (over: error room_limit)' },
  { key: 'roomTtl', flag: 'room-ttl', env: 'ROOM_TTL', kind: 'count', min: 0, unit: 'ms', default: String(DEFAULT_LIMITS.roomTtl), help: 'ms after its last member left that an empty room is forgotten, history included' },
  { key: 'historyMaxBytes', flag: 'history-max-bytes', env: 'HISTORY_MAX_BYTES', kind: 'count', min: 0, unit: 'bytes', default: String(DEFAULT_LIMITS.historyMaxBytes), help: "all chat rooms' stored messages together in memory; past it the oldest are evicted first" },
  { key: 'dedupeWindow', flag: 'dedupe-window', env: 'DEDUPE_WINDOW', kind: 'count', min: 0, unit: 'ms', default: String(DEFAULT_LIMITS.dedupeWindow), help: "ms a chat message's key is remembered: a repeat within it is acked, not sent again" },
  { key: 'dedupeMaxKeys', flag: 'dedupe-max-keys', env: 'DEDUPE_MAX_KEYS', kind: 'count', min: 0, default: String(DEFAULT_LIMITS.dedupeMaxKeys), help: 'chat message keys remembered at most in this process (oldest forgotten first)' },
  { key: 'inspectorMaxBuffered', flag: 'inspector-max-buffered', env: 'INSPECTOR_MAX_BUFFERED', kind: 'count', min: 0, default: String(DEFAULT_LIMITS.inspectorMaxBuffered), help: "an inspector page's unsent bytes past which it loses events rather than slow anyone down" },
  { key: 'labMaxOutput', flag: 'lab-max-output', env: 'LAB_MAX_OUTPUT', kind: 'count', min: 1, unit: 'bytes', default: String(DEFAULT_LIMITS.labMaxOutput), help: "the most one message's lab replies may send (repeat copies, fragment headers); over: close 1008" },
  { key: 'labMaxBurst', flag: 'lab-max-burst', env: 'LAB_MAX_BURST', kind: 'count', min: 1, unit: 'bytes', default: String(DEFAULT_LIMITS.labMaxBurst), help: 'the most a lab burst may ask for, burst * burst_size bytes; over: 400 at the upgrade' },
  { key: 'maxControlFrames', flag: 'max-control-frames', env: 'MAX_CONTROL_FRAMES', kind: 'count', min: 0, unit: 'a second; 0 turns it off', default: String(DEFAULT_LIMITS.maxControlFrames), help: 'pings and pongs one client may send in a second; over: close 1008 (0: no limit)' },
  { key: 'shutdownTimeout', flag: 'shutdown-timeout', env: 'SHUTDOWN_TIMEOUT', kind: 'count', min: 0, unit: 'ms', default: String(DEFAULT_LIMITS.shutdownTimeout), help: 'ms shutdown waits for clients to close before cutting them off' },
  { key: 'headersTimeout', flag: 'headers-timeout', env: 'HEADERS_TIMEOUT', kind: 'count', min: 1, unit: 'ms', default: String(DEFAULT_LIMITS.headersTimeout), help: 'ms a socket has from accept (TLS handshake included) to complete its request headers; then it is closed' },
  { key: 'redis', flag: 'redis', env: 'REDIS_URL', kind: 'redisUrl', default: undefined, help: 'Redis URL (redis://host:6379): instances on one Redis and prefix share one chat' },
  { key: 'redisPrefix', flag: 'redis-prefix', env: 'REDIS_PREFIX', kind: 'redisPrefix', default: DEFAULT_REDIS_PREFIX, help: 'prefix of every Redis key and channel echohub uses' },
  { key: 'redisHeartbeatTtl', flag: 'redis-heartbeat-ttl', env: 'REDIS_HEARTBEAT_TTL', kind: 'count', min: 100, unit: 'ms', default: String(DEFAULT_HEARTBEAT_TTL), help: 'ms without a heartbeat after which the other instances take one for dead and remove its clients from the rooms' },
  { key: 'jwtSecret', flag: 'jwt-secret', env: 'JWT_SECRET', kind: 'jwtSecret', default: undefined, help: 'clients present an HS256 JWT signed with this secret (32+ bytes; prefer the variable)' },
  { key: 'jwtPublicKey', flag: 'jwt-public-key', env: 'JWT_PUBLIC_KEY', kind: 'pemFile', default: undefined, help: 'clients present an RS256/ES256 JWT checked with this PEM public key file' },
  { key: 'jwtAudience', flag: 'jwt-audience', env: 'JWT_AUDIENCE', kind: 'string', default: undefined, help: "a client JWT's aud must name this" },
  { key: 'jwtIssuer', flag: 'jwt-issuer', env: 'JWT_ISSUER', kind: 'string', default: undefined, help: "a client JWT's iss must be this" },
  { key: 'tlsCert', flag: 'tls-cert', env: 'TLS_CERT', kind: 'string', default: undefined, help: 'PEM certificate file: every server speaks https/wss (with --tls-key)' },
  { key: 'tlsKey', flag: 'tls-key', env: 'TLS_KEY', kind: 'string', default: undefined, help: 'PEM private key file of --tls-cert' },
  { key: 'tlsSelfSigned', flag: 'tls-self-signed', env: 'TLS_SELF_SIGNED', kind: 'switch', default: 'false', help: 'https/wss with a self-signed certificate made once and kept in .echohub/' },
  { key: 'subprotocols', flag: 'subprotocols', env: 'SUBPROTOCOLS', kind: 'subprotocols', default: undefined, help: 'subprotocols the echo servers accept, comma-separated (default: the first a client offers)' },
  { key: 'chatSubprotocols', flag: 'chat-subprotocols', env: 'CHAT_SUBPROTOCOLS', kind: 'subprotocols', default: '', help: 'subprotocols the chat accepts, comma-separated (default: none)' },
  { key: 'compression', flag: 'compression', env: 'COMPRESSION', kind: 'switch', default: 'false', help: 'permessage-deflate on every server (messages from 1 KiB are compressed)' },
  { key: 'noConformance', flag: 'no-conformance', env: 'NO_CONFORMANCE', kind: 'switch', default: 'false', help: 'turn the client conformance suite off (on by default at /conformance of the echo servers)' },
  { key: 'conformancePort', flag: 'conformance-port', env: 'CONFORMANCE_PORT', kind: 'port', default: undefined, help: 'also serve the conformance suite at the root of this port (9001 is Autobahn\'s)' },
  { key: 'conformanceDir', flag: 'conformance-dir', env: 'CONFORMANCE_DIR', kind: 'string', default: '.echohub/conformance', help: 'folder of the conformance results, one file per agent' },
  { key: 'conformanceMaxAgents', flag: 'conformance-max-agents', env: 'CONFORMANCE_MAX_AGENTS', kind: 'count', min: 1, default: String(DEFAULT_LIMITS.conformanceMaxAgents), help: 'agents whose conformance results are kept (a new one forgets the least recently updated)' },
  { key: 'conformanceMaxRunning', flag: 'conformance-max-running', env: 'CONFORMANCE_MAX_RUNNING', kind: 'count', min: 1, default: String(DEFAULT_LIMITS.conformanceMaxRunning), help: 'conformance cases running at once (over: HTTP 503)' },
  { key: 'conformanceCases', flag: 'conformance-cases', env: 'CONFORMANCE_CASES', kind: 'string', default: undefined, help: 'the conformance cases served, Autobahn\'s patterns comma-separated (default: all)' },
  { key: 'trustProxy', flag: 'trust-proxy', env: 'TRUST_PROXY', kind: 'trustProxy', default: 'false', help: 'take the client address from X-Forwarded-For: alone (any proxy), a hop count, or the proxies\' addresses/CIDRs' }
]

export function helpText (): string {
  const lines = [
    'echohub: WebSocket echo and broadcast server',
    '',
    'Usage: echohub [options]   (npm start -- [options])',
    '',
    'Options (flag, environment variable, default):'
  ]
  const width = Math.max(...SETTINGS.map((s) => s.flag.length)) + 4
  for (const s of SETTINGS) {
    const dflt = s.default === undefined ? '' : ` [${s.default}]`
    lines.push(`  --${s.flag.padEnd(width)}${s.env.padEnd(26)}${s.help}${dflt}`)
  }
  lines.push(`  -h, --${'help'.padEnd(width - 4)}${''.padEnd(26)}print this help`)
  lines.push(`  -v, --${'version'.padEnd(width - 4)}${''.padEnd(26)}print the version (echohub ${VERSION})`)
  return lines.join('\n')
}

function parseValue (s: Setting, raw: string, source: string): Config[keyof Config] {
  switch (s.kind) {
    case 'string':
      if (raw === '') throw new InvalidConfigError(source, 'must not be empty')
      return raw
    case 'port': {
      const n = Number(raw)
      if (!/^\d+$/.test(raw) || n > 65535) throw new InvalidConfigError(source, `must be a port number from 0 to 65535, got "${raw}"`)
      return n
    }
    case 'servers': {
      const names = raw.split(',').map((x) => x.trim()).filter(Boolean)
      const bad = names.filter((x) => !(SERVER_NAMES as readonly string[]).includes(x))
      if (names.length === 0 || bad.length > 0) {
        throw new InvalidConfigError(source, `takes ${SERVER_NAMES.join(', ')}; got "${raw}"`)
      }
      return [...new Set(names)] as ServerName[]
    }
    case 'logLevel':
      if (!(LOG_LEVELS as readonly string[]).includes(raw)) throw new InvalidConfigError(source, `must be one of ${LOG_LEVELS.join(', ')}; got "${raw}"`)
      return raw as LogLevel
    case 'logFormat':
      if (raw !== 'json' && raw !== 'pretty') throw new InvalidConfigError(source, `must be json or pretty; got "${raw}"`)
      return raw
    case 'count': {
      const min = s.min ?? 0
      if (!/^\d+$/.test(raw) || !Number.isSafeInteger(Number(raw)) || Number(raw) < min) {
        throw new InvalidConfigError(source, `must be a whole number from ${min} up${s.unit === undefined ? '' : ` (${s.unit})`}, got "${raw}"`)
      }
      return Number(raw)
    }
    case 'origins':
      return parseOrigins(raw, source)
    case 'redisPrefix':
      // Braces would change the hash tag that keeps a room's keys together.
      if (raw === '' || /[{}]/.test(raw)) throw new InvalidConfigError(source, `must be a non-empty prefix without { or }, got "${raw}"`)
      return raw
    case 'redisUrl': {
      let url: URL | undefined
      try {
        url = new URL(raw)
      } catch {}
      if (url === undefined || (url.protocol !== 'redis:' && url.protocol !== 'rediss:') || url.hostname === '') {
        throw new InvalidConfigError(source, `must be a URL like redis://127.0.0.1:6379 (rediss:// for TLS), got "${raw.replace(/\/\/[^@/]*@/, '//***@')}"`)
      }
      return raw
    }
    case 'jwtSecret':
      try {
        secretKey(raw)
      } catch (err) {
        throw new InvalidConfigError(source, (err as Error).message)
      }
      return raw
    case 'pemFile':
      return readPublicKey(raw, source)
    case 'switch':
      if (/^(1|true|yes|on)$/i.test(raw)) return true
      if (/^(0|false|no|off)?$/i.test(raw)) return false
      throw new InvalidConfigError(source, `must be true or false, got "${raw}"`)
    case 'subprotocols':
      return parseSubprotocols(raw, source)
    case 'trustProxy':
      return parseTrustProxy(raw, source)
  }
}

/** A comma-separated list of subprotocol names (RFC 6455: HTTP tokens); empty means none. */
function parseSubprotocols (raw: string, source: string): string[] {
  const names = raw.split(',').map((x) => x.trim()).filter(Boolean)
  const bad = names.find((name) => !isSubprotocolName(name))
  if (bad !== undefined) throw new InvalidConfigError(source, `takes subprotocol names (letters, digits and !#$%&'*+-.^_\`|~), got "${bad}"`)
  return [...new Set(names)]
}

/** `true`/`false`, a hop count, or proxy addresses/CIDRs (and proxy-addr's `loopback`, `linklocal`, `uniquelocal`). */
function parseTrustProxy (raw: string, source: string): TrustProxy {
  if (/^(true|yes|on)$/i.test(raw)) return true
  if (/^(0|false|no|off)?$/i.test(raw)) return false
  if (/^\d+$/.test(raw) && Number(raw) <= 255) return Number(raw)
  const items = raw.split(',').map((x) => x.trim()).filter(Boolean)
  const bad = items.find((item) => !isProxyAddress(item))
  if (items.length === 0 || bad !== undefined) {
    throw new InvalidConfigError(source, `takes true, a hop count, or proxy addresses/CIDRs like 10.0.0.1,192.168.0.0/16, got "${bad ?? raw}"`)
  }
  return items
}

function isProxyAddress (item: string): boolean {
  if (item === 'loopback' || item === 'linklocal' || item === 'uniquelocal') return true
  const [address, bits, ...rest] = item.split('/')
  const family = isIP(address ?? '')
  if (family === 0 || rest.length > 0) return false
  return bits === undefined || (/^\d+$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128))
}

/** The key file's PEM text, once it is known to hold a key echohub can pin an algorithm to. */
function readPublicKey (file: string, source: string): string {
  let pem: string
  try {
    pem = readFileSync(file, 'utf8')
  } catch (err) {
    throw new InvalidConfigError(source, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  try {
    publicKeyFromPem(pem)
  } catch (err) {
    throw new InvalidConfigError(source, `${file} ${(err as Error).message}`)
  }
  return pem
}

/** Settings that only make sense together. */
function checkCombinations (config: Config): void {
  if (config.jwtSecret !== undefined && config.jwtPublicKey !== undefined) {
    throw new InvalidConfigError('--jwt-secret', 'and --jwt-public-key exclude each other: tokens are signed one way (HS256 or RS256/ES256)')
  }
  const identity = config.jwtSecret !== undefined || config.jwtPublicKey !== undefined
  if (!identity && config.jwtAudience !== undefined) throw new InvalidConfigError('--jwt-audience', 'needs --jwt-secret or --jwt-public-key')
  if (!identity && config.jwtIssuer !== undefined) throw new InvalidConfigError('--jwt-issuer', 'needs --jwt-secret or --jwt-public-key')
}

/** `*`, or origins like `https://example.com,http://192.168.1.5:3000` (a trailing slash is dropped). */
function parseOrigins (raw: string, source: string): '*' | string[] {
  const items = raw.split(',').map((x) => x.trim()).filter(Boolean)
  if (items.length === 1 && items[0] === '*') return '*'
  if (items.length === 0) throw new InvalidConfigError(source, 'must be * or a comma-separated list of origins like https://example.com')
  return [...new Set(items.map((item) => {
    let url: URL | undefined
    try {
      url = new URL(item)
    } catch {}
    if (url === undefined || !/^https?:$/.test(url.protocol) || url.origin !== item.replace(/\/$/, '').toLowerCase()) {
      throw new InvalidConfigError(source, `takes * or origins like https://example.com (scheme, host, optional port; no path), got "${item}"`)
    }
    return url.origin
  }))]
}

/**
 * `help: true`: print `text` (the help, or the version for `--version`) and exit 0; otherwise
 * `config` holds the settings to run with.
 */
export type ParsedArgs = { help: true, text: string } | { help: false, config: Config }

/** A flag's value, the `--flag` (string options) or the one after it (not another `--flag`). */
type Values = Map<string, string | true>

/**
 * Reads argv with `parseArgs` in its lenient mode, so a value may start with a dash (`--rate-limit
 * -1` is then refused for its value, saying what is allowed) and every mistake gets one plain line.
 */
function readArgs (argv: string[]): Values {
  const options: Record<string, { type: 'string' | 'boolean', short?: string }> = {
    help: { type: 'boolean', short: 'h' },
    version: { type: 'boolean', short: 'v' }
  }
  for (const s of SETTINGS) options[s.flag] = { type: s.kind === 'switch' ? 'boolean' : 'string' }
  const { tokens } = parseArgs({ args: withTrustProxyValue(argv), options, strict: false, allowPositionals: true, tokens: true })
  const values: Values = new Map()
  for (const token of tokens) {
    if (token.kind === 'option-terminator') continue
    if (token.kind === 'positional') throw new InvalidConfigError('unexpected argument', `"${token.value}" (see --help)`)
    const known = options[token.name]
    if (known === undefined || (token.rawName.length === 2 && known.short === undefined)) {
      throw new InvalidConfigError('unknown option', `${token.rawName} (see --help)`)
    }
    if (known.type === 'boolean') {
      if (token.value !== undefined) throw new InvalidConfigError(token.rawName, 'takes no value (see --help)')
      values.set(token.name, true)
      continue
    }
    if (token.value === undefined || (!token.inlineValue && token.value.startsWith('--'))) {
      throw new InvalidConfigError(token.rawName, 'needs a value (see --help)')
    }
    values.set(token.name, token.value)
  }
  return values
}

/** Reads flags and environment variables into a validated Config; throws InvalidConfigError naming the flag. */
export function parseConfig (argv: string[], env: NodeJS.ProcessEnv = process.env): ParsedArgs {
  const values = readArgs(argv)
  if (values.has('help')) return { help: true, text: helpText() }
  if (values.has('version')) return { help: true, text: `echohub ${VERSION}` }

  const config: Record<string, unknown> = {}
  for (const s of SETTINGS) {
    const fromFlag = values.get(s.flag)
    const fromEnv = env[s.env]
    if (fromFlag === true) config[s.key] = true
    else if (typeof fromFlag === 'string') config[s.key] = parseValue(s, fromFlag, `--${s.flag}`)
    else if (fromEnv !== undefined && fromEnv !== '') config[s.key] = parseValue(s, fromEnv, s.env)
    else config[s.key] = s.default === undefined ? undefined : parseValue(s, s.default, `--${s.flag}`)
  }
  const parsed = config as unknown as Config
  checkCombinations(parsed)
  checkTls(parsed)
  return { help: false, config: parsed }
}

/** `--trust-proxy` may stand alone (meaning `true`) or take a value, which parseArgs cannot express. */
function withTrustProxyValue (argv: string[]): string[] {
  return argv.flatMap((arg, i) => {
    if (arg !== '--trust-proxy') return [arg]
    const next = argv[i + 1]
    return next === undefined || next.startsWith('-') ? ['--trust-proxy=true'] : [arg]
  })
}

function checkTls (config: Config): void {
  if ((config.tlsCert === undefined) !== (config.tlsKey === undefined)) {
    throw new InvalidConfigError(config.tlsCert === undefined ? '--tls-key' : '--tls-cert', `needs ${config.tlsCert === undefined ? '--tls-cert' : '--tls-key'} too`)
  }
  if (config.tlsSelfSigned && config.tlsCert !== undefined) {
    throw new InvalidConfigError('--tls-self-signed', 'and --tls-cert/--tls-key exclude each other: choose one')
  }
}
