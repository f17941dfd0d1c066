// Every setting echohub's entry point takes: flag, environment variable, default and help text
// side by side, so the CLI, `--help` and the README can never disagree.
import { parseArgs } from 'node:util'
import { InvalidConfigError } from './errors.js'
import { DEFAULT_LIMITS } from './limits.js'

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
}

type Kind = 'string' | 'port' | 'servers' | 'logLevel' | 'logFormat' | 'count' | 'origins'

interface Setting {
  key: keyof Config
  flag: string
  env: string
  kind: Kind
  default: string | undefined
  help: string
  /** Smallest value of a `count`. */
  min?: number
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
  { key: 'serverInfo', flag: 'server-info', env: 'SERVER_INFO', kind: 'string', default: 'echohub echo server', help: 'server_info string in echo replies' },
  { key: 'origins', flag: 'origins', env: 'ORIGINS', kind: 'origins', default: '*', help: 'allowed browser origins, comma-separated, or * for any: CORS and the check on the upgrade' },
  { key: 'echoMaxPayload', flag: 'echo-max-payload', env: 'ECHO_MAX_PAYLOAD', kind: 'count', min: 1, default: String(DEFAULT_LIMITS.echoMaxPayload), help: 'largest echo message in bytes; larger closes with 1009' },
  { key: 'chatMaxPayload', flag: 'chat-max-payload', env: 'CHAT_MAX_PAYLOAD', kind: 'count', min: 1, default: String(DEFAULT_LIMITS.chatMaxPayload), help: 'largest chat message in bytes; larger closes with 1009' },
  { key: 'maxConnections', flag: 'max-connections', env: 'MAX_CONNECTIONS', kind: 'count', min: 1, default: String(DEFAULT_LIMITS.maxConnections), help: 'connections per process, all servers together (over: HTTP 503)' },
  { key: 'maxConnectionsPerIp', flag: 'max-connections-per-ip', env: 'MAX_CONNECTIONS_PER_IP', kind: 'count', min: 1, default: String(DEFAULT_LIMITS.maxConnectionsPerIp), help: 'connections from one client address (over: HTTP 429)' },
  { key: 'rateLimit', flag: 'rate-limit', env: 'RATE_LIMIT', kind: 'count', min: 0, default: String(DEFAULT_LIMITS.rateLimit), help: 'chat messages per second per connection (0: no limit)' },
  { key: 'rateBurst', flag: 'rate-burst', env: 'RATE_BURST', kind: 'count', min: 1, default: String(DEFAULT_LIMITS.rateBurst), help: 'chat messages a connection may send at once' },
  { key: 'heartbeatInterval', flag: 'heartbeat-interval', env: 'HEARTBEAT_INTERVAL', kind: 'count', min: 0, default: String(DEFAULT_LIMITS.heartbeatInterval), help: 'ping period in ms; a client that missed the last ping is cut off (0: off)' },
  { key: 'maxBuffered', flag: 'max-buffered', env: 'MAX_BUFFERED', kind: 'count', min: 0, default: String(DEFAULT_LIMITS.maxBuffered), help: "a chat client's unsent bytes before it is dropped (0: no cap)" },
  { key: 'authToken', flag: 'auth-token', env: 'AUTH_TOKEN', kind: 'string', default: undefined, help: 'require this token on upgrades, /stats and /metrics (Bearer or ?token=)' },
  { key: 'shutdownTimeout', flag: 'shutdown-timeout', env: 'SHUTDOWN_TIMEOUT', kind: 'count', min: 0, default: String(DEFAULT_LIMITS.shutdownTimeout), help: 'ms shutdown waits for clients to close before cutting them off' }
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
  lines.push(`  --${'help'.padEnd(width)}${''.padEnd(26)}print this help`)
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
        throw new InvalidConfigError(source, `must be a whole number from ${min} up, got "${raw}"`)
      }
      return Number(raw)
    }
    case 'origins':
      return parseOrigins(raw, source)
  }
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

export type ParsedArgs = { help: true } | { help: false, config: Config }

/** Reads flags and environment variables into a validated Config; throws InvalidConfigError naming the flag. */
export function parseConfig (argv: string[], env: NodeJS.ProcessEnv = process.env): ParsedArgs {
  const options: Record<string, { type: 'string' | 'boolean' }> = { help: { type: 'boolean' } }
  for (const s of SETTINGS) options[s.flag] = { type: 'string' }
  let values: Record<string, string | boolean | undefined>
  try {
    values = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values
  } catch (err) {
    throw new InvalidConfigError('arguments', (err as Error).message + ' (see --help)')
  }
  if (values.help === true) return { help: true }

  const config: Record<string, unknown> = {}
  for (const s of SETTINGS) {
    const fromFlag = values[s.flag]
    const fromEnv = env[s.env]
    if (typeof fromFlag === 'string') config[s.key] = parseValue(s, fromFlag, `--${s.flag}`)
    else if (fromEnv !== undefined && fromEnv !== '') config[s.key] = parseValue(s, fromEnv, s.env)
    else config[s.key] = s.default === undefined ? undefined : parseValue(s, s.default, `--${s.flag}`)
  }
  return { help: false, config: config as unknown as Config }
}
