// Composes echohub's servers from a Config: one Fastify app per port, all sharing one registry so
// /stats on any port covers the whole process.
import { X509Certificate } from 'node:crypto'
import type { Socket } from 'node:net'
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import { ConnectionRegistry } from '../src/registry.js'
import type { Config, ServerName } from '../src/config.js'
import { echohubRegistry, KEEP_ALIVE_MS, NAMED_BY_FLAGS, type RegistryPluginOptions } from '../plugins/registry.js'
import { echo } from '../plugins/echo.js'
import { stats } from '../plugins/stats.js'
import cors from '@fastify/cors'
import { chat } from '../plugins/chat.js'
import { ui } from '../plugins/ui.js'
import { conformance, type ConformanceOptions } from '../plugins/conformance.js'
import { PortInUseError } from '../src/errors.js'
import { VERSION } from '../src/version.js'
import type { JwtOptions } from '../src/auth/jwt.js'
import { answerPlainHttp, lanAddresses, loadTls, selfSignedTls } from '../src/transport/tls.js'
import { formatPeer } from '../src/format.js'
import type { Server as TlsServer } from 'node:tls'
import { RequestLines } from './logging.js'

/** The servers a Config can start: the named ones, and the conformance suite's own port. */
type ServerKind = ServerName | 'conformance'

interface ServerDefinition {
  /** The Config key and flag that set this server's port. */
  portKey: 'echoPort' | 'debugPort' | 'chatPort' | 'conformancePort'
  portFlag: string
  /** Paths a client connects to, shown in the start-up banner. */
  paths: Array<{ scheme: 'ws' | 'http', path: string }>
  /** And these while the conformance suite is on. */
  suitePaths?: Array<{ scheme: 'ws' | 'http', path: string }>
  /** Logs at debug by default: this server exists to show every frame. */
  verbose?: boolean
  /** `running`: the servers started so far, filled in as the others start. */
  setup: (app: FastifyInstance, config: Config, running: readonly RunningServer[]) => Promise<void>
}

/** The suite's settings for the echo servers, or false with --no-conformance. */
function suiteOptions (config: Config): ConformanceOptions | false {
  if (config.noConformance) return false
  return {
    dir: config.conformanceDir,
    maxAgents: config.conformanceMaxAgents,
    maxRunning: config.conformanceMaxRunning,
    ...(config.conformanceCases === undefined ? {} : { cases: config.conformanceCases.split(',').map((p) => p.trim()).filter((p) => p !== '') })
  }
}

const DEFINITIONS: Record<ServerKind, ServerDefinition> = {
  echo: {
    portKey: 'echoPort',
    portFlag: '--echo-port',
    paths: [{ scheme: 'ws', path: '/' }, { scheme: 'ws', path: '/raw' }],
    suitePaths: [{ scheme: 'ws', path: '/conformance' }],
    async setup (app, config) {
      await app.register(echo, { name: 'echo', serverInfo: config.serverInfo, maxPayload: config.echoMaxPayload, subprotocols: config.subprotocols ?? '*', labMaxOutput: config.labMaxOutput, labMaxBurst: config.labMaxBurst, conformance: suiteOptions(config) })
    }
  },
  'echo-debug': {
    portKey: 'debugPort',
    portFlag: '--debug-port',
    paths: [{ scheme: 'ws', path: '/' }, { scheme: 'ws', path: '/raw' }],
    suitePaths: [{ scheme: 'ws', path: '/conformance' }],
    verbose: true,
    async setup (app, config) {
      await app.register(echo, { name: 'echo-debug', serverInfo: `${config.serverInfo} (debug)`, welcome: true, debug: true, maxPayload: config.echoMaxPayload, subprotocols: config.subprotocols ?? '*', labMaxOutput: config.labMaxOutput, labMaxBurst: config.labMaxBurst, conformance: suiteOptions(config) })
    }
  },
  chat: {
    portKey: 'chatPort',
    portFlag: '--chat-port',
    paths: [{ scheme: 'http', path: '/' }, { scheme: 'ws', path: '/ws' }, { scheme: 'http', path: '/inspect' }],
    suitePaths: [{ scheme: 'http', path: '/conformance' }],
    async setup (app, config, running) {
      // With --redis, every instance on that Redis and prefix is one chat (ioredis is loaded only then).
      const adapter = config.redis === undefined
        ? undefined
        : new (await import('../src/chat/redis-adapter.js')).RedisAdapter(config.redis, { prefix: config.redisPrefix, heartbeatTtl: config.redisHeartbeatTtl })
      await app.register(chat, {
        ...(adapter === undefined ? {} : { adapter }),
        maxPayload: config.chatMaxPayload,
        rateLimit: config.rateLimit,
        rateBurst: config.rateBurst,
        maxBuffered: config.maxBuffered,
        subprotocols: config.chatSubprotocols,
        historySize: config.historySize,
        maxRoomsPerClient: config.maxRoomsPerClient,
        maxRooms: config.maxRooms,
        roomTtl: config.roomTtl,
        historyMaxBytes: config.historyMaxBytes,
        dedupeWindow: config.dedupeWindow,
        dedupeMaxKeys: config.dedupeMaxKeys
      })
      // The echo tester learns the echo ports here, the actual ones even for port 0.
      const echoServers = () => running
        .filter((s) => s.name === 'echo' || s.name === 'echo-debug')
        .map((s) => ({ name: s.name, port: s.port, welcome: s.name === 'echo-debug' }))
      await app.register(ui, { echoServers, inspectorMaxBuffered: config.inspectorMaxBuffered })
    }
  },
  conformance: {
    portKey: 'conformancePort',
    portFlag: '--conformance-port',
    paths: [{ scheme: 'ws', path: '/' }, { scheme: 'http', path: '/conformance' }],
    async setup (app, config) {
      const suite = suiteOptions(config)
      if (suite !== false) await app.register(conformance, suite)
    }
  }
}

export interface RunningServer {
  name: ServerKind
  app: FastifyInstance
  /** The port actually bound (differs from the configured one for port 0). */
  port: number
  urls: string[]
}

/** The certificate the servers speak https/wss with. */
export interface TlsInfo {
  /** SHA-256 fingerprint, `AB:CD:...`, for devices that pin it. */
  fingerprint: string
  validTo: Date
  /** The certificate file, when it came from one. */
  certFile: string | undefined
  /** `--tls-self-signed`: whether it was made at this start, and addresses of this machine it does not name. */
  selfSigned: { created: boolean, uncovered: string[] } | undefined
}

export interface Echohub {
  registry: ConnectionRegistry
  servers: RunningServer[]
  /** Set when the servers speak https/wss. */
  tls: TlsInfo | undefined
  /** Starts draining (/health 503, no new connections), closes every client with 1001, closes every app. */
  close: () => Promise<void>
}

export interface StartOptions {
  /**
   * Root logger; each server logs through a child named after it, at the configured level (info,
   * echo-debug debug) but never below this logger's own: a `silent` logger keeps them all quiet.
   */
  logger: FastifyBaseLogger
  registry?: ConnectionRegistry
  /** A PEM certificate and key to serve https/wss with, in place of `--tls-cert`/`--tls-key`/`--tls-self-signed`. */
  tls?: { cert: string | Buffer, key: string | Buffer }
}

interface Tls {
  cert: string | Buffer
  key: string | Buffer
  info: TlsInfo
}

/** The certificate from the options, the files, or the kept self-signed one; a bad file throws TlsFileError. */
async function resolveTls (config: Config, options: StartOptions): Promise<Tls | undefined> {
  if (options.tls !== undefined) {
    const { cert, key } = options.tls
    const x509 = new X509Certificate(cert)
    return { cert, key, info: { fingerprint: x509.fingerprint256, validTo: new Date(x509.validTo), certFile: undefined, selfSigned: undefined } }
  }
  if (config.tlsSelfSigned) {
    const made = await selfSignedTls()
    return { ...made, info: { fingerprint: made.fingerprint, validTo: made.validTo, certFile: made.certFile, selfSigned: { created: made.created, uncovered: made.uncovered } } }
  }
  if (config.tlsCert !== undefined && config.tlsKey !== undefined) {
    const loaded = await loadTls(config.tlsCert, config.tlsKey)
    return { ...loaded, info: { fingerprint: loaded.fingerprint, validTo: loaded.validTo, certFile: loaded.certFile, selfSigned: undefined } }
  }
  return undefined
}

/** Builds and starts the configured servers. A port in use closes what was started and throws PortInUseError. */
export async function startEchohub (config: Config, options: StartOptions): Promise<Echohub> {
  const tls = await resolveTls(config, options)
  // A hop count as the function Fastify makes of one (its types take only the other forms).
  const hops = config.trustProxy
  const trustProxy = typeof hops === 'number' ? (_address: string, hop: number) => hop < hops : hops
  const registry = options.registry ?? new ConnectionRegistry({ serverInfo: `echohub ${VERSION}` })
  // Shown in /stats beside the limits: whose X-Forwarded-For the caps and envelopes believe.
  registry.limitSettings.trust_proxy = Array.isArray(config.trustProxy) ? config.trustProxy.join(',') : config.trustProxy
  const servers: RunningServer[] = []
  const close = async () => {
    registry.startDraining()
    await Promise.all(servers.map((s) => s.app.close()))
  }
  const jwt = jwtOptions(config)
  const kinds: ServerKind[] = [...config.servers]
  if (config.conformancePort !== undefined && !config.noConformance) kinds.push('conformance')
  for (const name of kinds) {
    const def = DEFINITIONS[name]
    const configuredPort = config[def.portKey] ?? 0
    const level = quieter(config.logLevel ?? (def.verbose === true ? 'debug' : 'info'), options.logger.level)
    // Routing stays on while closing, so /health can answer 503 "draining" and upgrades a JSON refusal.
    const logger = options.logger.child({ server: name }, { level })
    // Fastify types an https app by its server; echohub's plugins take any app, so it is typed as the plain one.
    const app = (tls === undefined
      ? Fastify({ loggerInstance: logger, return503OnClosing: false, trustProxy, logController: new RequestLines() })
      : Fastify({ loggerInstance: logger, return503OnClosing: false, trustProxy, logController: new RequestLines(), https: { cert: tls.cert, key: tls.key } })) as unknown as FastifyInstance
    // Every accepted socket, from accept on: the kernel reaps a peer that vanished, whatever it was doing.
    app.server.on('connection', keepAlive)
    // A plain http:// or ws:// request on a TLS port gets a hint instead of an empty reply.
    if (tls !== undefined) {
      answerPlainHttp(app.server as unknown as TlsServer, (peer) => app.log.info({ client: formatPeer(peer.address, peer.port) }, 'plain HTTP request on this TLS port: answered 400, use https:// or wss://'))
    }
    try {
      await app.register(echohubRegistry, {
        registry,
        maxConnections: config.maxConnections,
        maxConnectionsPerIp: config.maxConnectionsPerIp,
        heartbeatInterval: config.heartbeatInterval,
        maxControlFrames: config.maxControlFrames,
        shutdownTimeout: config.shutdownTimeout,
        headersTimeout: config.headersTimeout,
        origins: config.origins === '*' ? '*' : [...config.origins],
        compression: config.compression,
        ...(config.authToken === undefined ? {} : { authToken: config.authToken }),
        ...(jwt === undefined ? {} : { jwt }),
        // Refusals name the flags (`--origins`), as a user of the CLI set them.
        [NAMED_BY_FLAGS]: true
      } as RegistryPluginOptions)
      // Before the routes, so its headers (and preflight answers) are on every HTTP route of every
      // server, /stats and /health included, under the same --origins rule as the upgrades.
      await app.register(cors, { origin: config.origins, methods: ['GET', 'HEAD'] })
      await def.setup(app, config, servers)
      await app.register(stats)
      await listenQuietly(app, config.host, configuredPort)
    } catch (err) {
      await app.close()
      await close()
      if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new PortInUseError(configuredPort, name, def.portFlag)
      throw err
    }
    const address = app.server.address()
    const port = typeof address === 'object' && address !== null ? address.port : configuredPort
    const paths = config.noConformance ? def.paths : [...def.paths, ...def.suitePaths ?? []]
    servers.push({ name, app, port, urls: clientUrls(config.host, port, paths, tls !== undefined) })
  }
  return { registry, servers, tls: tls?.info, close }
}

function keepAlive (socket: Socket): void {
  socket.setKeepAlive(true, KEEP_ALIVE_MS)
}

/** Identity from signed tokens, when --jwt-secret or --jwt-public-key is set. */
function jwtOptions (config: Config): JwtOptions | undefined {
  const key = config.jwtSecret !== undefined ? { secret: config.jwtSecret } : config.jwtPublicKey !== undefined ? { publicKey: config.jwtPublicKey } : undefined
  if (key === undefined) return undefined
  return {
    ...key,
    ...(config.jwtAudience === undefined ? {} : { audience: config.jwtAudience }),
    ...(config.jwtIssuer === undefined ? {} : { issuer: config.jwtIssuer })
  }
}

const LEVEL_VALUES: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity }

/** The quieter of two pino levels. */
function quieter (level: string, floor: string): string {
  return (LEVEL_VALUES[floor] ?? 0) > (LEVEL_VALUES[level] ?? 0) ? floor : level
}

/**
 * Listens without Fastify's `Server listening at` line per address: the caller's banner says where
 * every server is, once.
 */
async function listenQuietly (app: FastifyInstance, host: string, port: number): Promise<void> {
  const level = app.log.level
  if (level === 'info' || level === 'debug' || level === 'trace') app.log.level = 'warn'
  try {
    await app.listen({ host, port })
  } finally {
    app.log.level = level
  }
}

/** ws://localhost:PORT/... (wss:// and https:// with TLS) plus one URL per non-internal IPv4 address when listening on all interfaces. */
export function clientUrls (host: string, port: number, paths: ServerDefinition['paths'], secure = false): string[] {
  const hosts: string[] = []
  if (host === '0.0.0.0' || host === '::') {
    hosts.push('localhost', ...lanAddresses())
  } else {
    hosts.push(host.includes(':') ? `[${host}]` : host)
  }
  return hosts.flatMap((h) => paths.map((p) => `${p.scheme}${secure ? 's' : ''}://${h}:${port}${p.path}`))
}
