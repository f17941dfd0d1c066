// Composes echohub's servers from a Config: one Fastify app per port, all sharing one registry so
// /stats on any port covers the whole process.
import os from 'node:os'
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import { ConnectionRegistry } from './registry.js'
import type { Config, ServerName } from './config.js'
import { echohubRegistry } from '../plugins/registry.js'
import { echo } from '../plugins/echo.js'
import { stats } from '../plugins/stats.js'
import cors from '@fastify/cors'
import { chat } from '../plugins/chat.js'
import { ui } from '../plugins/ui.js'
import { PortInUseError } from './errors.js'

export const VERSION = '0.1.0'

interface ServerDefinition {
  /** The Config key and flag that set this server's port. */
  portKey: 'echoPort' | 'debugPort' | 'chatPort'
  portFlag: string
  /** Paths a client connects to, shown in the start-up banner. */
  paths: Array<{ scheme: 'ws' | 'http', path: string }>
  /** Logs at debug by default: this server exists to show every frame. */
  verbose?: boolean
  /** `running`: the servers started so far, filled in as the others start. */
  setup: (app: FastifyInstance, config: Config, running: readonly RunningServer[]) => Promise<void>
}

const DEFINITIONS: Record<ServerName, ServerDefinition> = {
  echo: {
    portKey: 'echoPort',
    portFlag: '--echo-port',
    paths: [{ scheme: 'ws', path: '/' }, { scheme: 'ws', path: '/raw' }],
    async setup (app, config) {
      await app.register(echo, { name: 'echo', serverInfo: config.serverInfo, maxPayload: config.echoMaxPayload })
    }
  },
  'echo-debug': {
    portKey: 'debugPort',
    portFlag: '--debug-port',
    paths: [{ scheme: 'ws', path: '/' }, { scheme: 'ws', path: '/raw' }],
    verbose: true,
    async setup (app, config) {
      await app.register(echo, { name: 'echo-debug', serverInfo: `${config.serverInfo} (debug)`, welcome: true, debug: true, maxPayload: config.echoMaxPayload })
    }
  },
  chat: {
    portKey: 'chatPort',
    portFlag: '--chat-port',
    paths: [{ scheme: 'http', path: '/' }, { scheme: 'ws', path: '/ws' }],
    async setup (app, config, running) {
      // First, so its headers are on every HTTP route of this server, /stats and /health included.
      await app.register(cors, { origin: config.origins, methods: ['GET', 'HEAD'] })
      await app.register(chat, {
        maxPayload: config.chatMaxPayload,
        rateLimit: config.rateLimit,
        rateBurst: config.rateBurst,
        maxBuffered: config.maxBuffered
      })
      // The echo tester learns the echo ports here, the actual ones even for port 0.
      const echoServers = () => running
        .filter((s) => s.name === 'echo' || s.name === 'echo-debug')
        .map((s) => ({ name: s.name, port: s.port, welcome: s.name === 'echo-debug' }))
      await app.register(ui, { echoServers })
    }
  }
}

export interface RunningServer {
  name: ServerName
  app: FastifyInstance
  /** The port actually bound (differs from the configured one for port 0). */
  port: number
  urls: string[]
}

export interface Echohub {
  registry: ConnectionRegistry
  servers: RunningServer[]
  /** Starts draining (/health 503, no new connections), closes every client with 1001, closes every app. */
  close: () => Promise<void>
}

export interface StartOptions {
  /** Root logger; each server logs through a child named after it. */
  logger: FastifyBaseLogger
  registry?: ConnectionRegistry
}

/** Builds and starts the configured servers. A port in use closes what was started and throws PortInUseError. */
export async function startEchohub (config: Config, options: StartOptions): Promise<Echohub> {
  const registry = options.registry ?? new ConnectionRegistry({ serverInfo: `echohub ${VERSION}` })
  const servers: RunningServer[] = []
  const close = async () => {
    registry.startDraining()
    await Promise.all(servers.map((s) => s.app.close()))
  }
  for (const name of config.servers) {
    const def = DEFINITIONS[name]
    const level = config.logLevel ?? (def.verbose === true ? 'debug' : 'info')
    // Routing stays on while closing, so /health can answer 503 "draining" and upgrades a JSON refusal.
    const app = Fastify({ loggerInstance: options.logger.child({ server: name }, { level }), return503OnClosing: false })
    try {
      await app.register(echohubRegistry, {
        registry,
        maxConnections: config.maxConnections,
        maxConnectionsPerIp: config.maxConnectionsPerIp,
        heartbeatInterval: config.heartbeatInterval,
        shutdownTimeout: config.shutdownTimeout,
        origins: config.origins === '*' ? '*' : [...config.origins],
        ...(config.authToken === undefined ? {} : { authToken: config.authToken })
      })
      await def.setup(app, config, servers)
      await app.register(stats)
      await app.listen({ host: config.host, port: config[def.portKey] })
    } catch (err) {
      await app.close()
      await close()
      if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new PortInUseError(config[def.portKey], name, def.portFlag)
      throw err
    }
    const address = app.server.address()
    const port = typeof address === 'object' && address !== null ? address.port : config[def.portKey]
    servers.push({ name, app, port, urls: clientUrls(config.host, port, def.paths) })
  }
  return { registry, servers, close }
}

/** ws://localhost:PORT/... plus one URL per non-internal IPv4 address when listening on all interfaces. */
export function clientUrls (host: string, port: number, paths: ServerDefinition['paths']): string[] {
  const hosts: string[] = []
  if (host === '0.0.0.0' || host === '::') {
    hosts.push('localhost', ...lanAddresses())
  } else {
    hosts.push(host.includes(':') ? `[${host}]` : host)
  }
  return hosts.flatMap((h) => paths.map((p) => `${p.scheme}://${h}:${port}${p.path}`))
}

function lanAddresses (): string[] {
  return Object.values(os.networkInterfaces())
    .flatMap((list) => list ?? [])
    .filter((a) => a.family === 'IPv4' && !a.internal)
    .map((a) => a.address)
}
