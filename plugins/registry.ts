// The infrastructure every echohub plugin stands on: one ConnectionRegistry per app (or one handed
// in, shared by several apps) and @fastify/websocket, registered exactly once.
import type { FastifyBaseLogger, FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import websocket from '@fastify/websocket'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { WebSocket } from 'ws'
import { ConnectionRegistry, type Connection, type EndpointStats } from '../src/registry.js'
import { describe, integerOption, stringOption } from '../src/options.js'
import { AccessPolicy, TOKEN_REQUIRED, redactToken } from '../src/access.js'
import { DEFAULT_LIMITS } from '../src/limits.js'
import { formatPeer, plainAddress } from '../src/format.js'
import { InvalidOptionError } from '../src/errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** echohub's connection registry, shared by all echohub plugins of this app. */
    echohub: ConnectionRegistry
    /** Who may connect and read the stats: the Origin allowlist and the optional token. */
    echohubAccess: AccessPolicy
  }
}

export interface RegistryPluginOptions {
  /** Use this registry instead of a new one, e.g. to share one across several apps. */
  registry?: ConnectionRegistry
  /** How long closing the app waits for WebSocket clients to finish closing, in ms (default 5000). */
  shutdownTimeout?: number
  /** Connections the registry holds at most, all endpoints together; over it an upgrade gets 503 (default 10000). */
  maxConnections?: number
  /** Connections from one client address at most; over it an upgrade gets 429 (default 1000). */
  maxConnectionsPerIp?: number
  /** Ping period in ms; a client that has not answered the previous ping is cut off. 0 turns it off (default 30000). */
  heartbeatInterval?: number
  /** Allowed `Origin`s on the upgrade: `*` (default) or a list; refused ones get 403. */
  origins?: '*' | string[]
  /** Require this token on upgrades, /stats and /metrics (Bearer header or `?token=`); off by default. */
  authToken?: string
}

export const SHUTDOWN_REASON = 'server shutting down'
const PLUGIN = 'echohub-registry'
const DEFAULT_WS_MAX_PAYLOAD = 64 * 1024
/** Marks an app whose @fastify/websocket echohub registered, so its settings are echohub's to tune. */
const kOwnsWebsocket = Symbol('echohub.ownsWebsocket')

function readOptions (opts: RegistryPluginOptions) {
  if (opts.registry !== undefined && !(opts.registry instanceof ConnectionRegistry)) {
    throw new InvalidOptionError(PLUGIN, 'registry', 'must be a ConnectionRegistry')
  }
  const origins = opts.origins ?? '*'
  if (origins !== '*' && !(Array.isArray(origins) && origins.every((o) => typeof o === 'string' && o !== ''))) {
    throw new InvalidOptionError(PLUGIN, 'origins', `must be "*" or an array of origins, got ${describe(origins)}`)
  }
  return {
    shutdownTimeout: integerOption(PLUGIN, opts, 'shutdownTimeout', DEFAULT_LIMITS.shutdownTimeout, 0),
    maxConnections: integerOption(PLUGIN, opts, 'maxConnections', DEFAULT_LIMITS.maxConnections, 1),
    maxConnectionsPerIp: integerOption(PLUGIN, opts, 'maxConnectionsPerIp', DEFAULT_LIMITS.maxConnectionsPerIp, 1),
    heartbeatInterval: integerOption(PLUGIN, opts, 'heartbeatInterval', DEFAULT_LIMITS.heartbeatInterval, 0),
    access: new AccessPolicy({ origins, authToken: opts.authToken === undefined ? undefined : stringOption(PLUGIN, opts, 'authToken', '') })
  }
}

const registryPlugin: FastifyPluginAsync<RegistryPluginOptions> = async (app, opts) => {
  const settings = readOptions(opts)
  const registry = opts.registry ?? new ConnectionRegistry()
  Object.assign(registry.limitSettings, {
    max_connections: settings.maxConnections,
    max_connections_per_ip: settings.maxConnectionsPerIp,
    heartbeat_interval_ms: settings.heartbeatInterval,
    shutdown_timeout_ms: settings.shutdownTimeout,
    origins: settings.access.origins === '*' ? '*' : [...settings.access.origins].join(','),
    auth: settings.access.authRequired
  })
  app.decorate('echohub', registry)
  app.decorate('echohubAccess', settings.access)

  if (!app.hasDecorator('websocketServer')) {
    await app.register(websocket, {
      options: { maxPayload: DEFAULT_WS_MAX_PAYLOAD },
      // ws has already answered a protocol error with the right close code (1002, 1007, 1009) and
      // the endpoint's own listener logs and counts it; anything else is a bug in a handler.
      errorHandler (error, socket, request) {
        if ((error as NodeJS.ErrnoException).code?.startsWith('WS_ERR_') === true) return
        request.log.error({ err: error }, 'websocket handler failed')
        socket.terminate()
      },
      preClose: async function closeClients (this: FastifyInstance) {
        registry.startDraining()
        await closeAll(this.websocketServer.clients, settings.shutdownTimeout)
      }
    })
    app.decorate(kOwnsWebsocket, true)
  }

  app.addHook('onRequest', async (request, reply) => {
    if (!request.ws) return
    if (app.hasDecorator(kOwnsWebsocket as unknown as string)) upgradeResponses.set(request.raw, reply.raw)
    return admit(request, reply, registry, settings)
  })
  if (settings.heartbeatInterval > 0) startHeartbeat(app, registry, settings.heartbeatInterval)
}

/**
 * Refuses an upgrade with an HTTP status and a JSON body before any WebSocket exists. The checks
 * and the handler that opens the connection run without yielding to other sockets' I/O, so two
 * upgrades cannot both pass the last free slot.
 */
function admit (request: FastifyRequest, reply: FastifyReply, registry: ConnectionRegistry, settings: ReturnType<typeof readOptions>): FastifyReply | undefined {
  const refuse = (status: number, limit: string, error: string, message: string, retryAfter?: number) => {
    registry.hit(limit)
    request.log.warn({ client: formatPeer(request.raw.socket?.remoteAddress, request.raw.socket?.remotePort), url: redactToken(request.url), status, limit }, `upgrade refused: ${message}`)
    if (retryAfter !== undefined) reply.header('retry-after', String(retryAfter))
    return reply.code(status).send({ error, message })
  }
  if (registry.draining) return refuse(503, 'draining', 'shutting_down', 'the server is shutting down', 5)
  if (!settings.access.authorized(request)) {
    return refuse(401, 'auth', 'unauthorized', TOKEN_REQUIRED)
  }
  if (!settings.access.originAllowed(request)) {
    return refuse(403, 'origin', 'origin_not_allowed', `origin ${String(request.headers.origin)} is not allowed (see --origins)`)
  }
  if (registry.connections.size >= settings.maxConnections) {
    return refuse(503, 'max_connections', 'server_full', `the server holds its maximum of ${settings.maxConnections} connections`, 5)
  }
  const address = request.raw.socket?.remoteAddress
  if (address !== undefined && registry.connectionsFrom(address) >= settings.maxConnectionsPerIp) {
    return refuse(429, 'max_connections_per_ip', 'too_many_connections', `${plainAddress(address)} already holds the maximum of ${settings.maxConnectionsPerIp} connections`, 5)
  }
  return undefined
}

const kAwaitingPong = Symbol('echohub.awaitingPong')
type HeartbeatSocket = WebSocket & { [kAwaitingPong]?: boolean }

// One listener function for every socket: a closure per connection would cost memory on each.
function onPong (this: WebSocket): void {
  (this as HeartbeatSocket)[kAwaitingPong] = false
}

/** Pings every client each period; one that has not answered the previous ping is terminated. */
function startHeartbeat (app: FastifyInstance, registry: ConnectionRegistry, interval: number): void {
  app.websocketServer.on('connection', (ws: WebSocket) => ws.on('pong', onPong))
  const timer = setInterval(() => {
    for (const ws of app.websocketServer.clients as Set<HeartbeatSocket>) {
      if (ws.readyState !== ws.OPEN) continue
      if (ws[kAwaitingPong] === true) {
        registry.hit('heartbeat_timeout')
        app.log.warn({ interval_ms: interval }, 'client missed a heartbeat ping; connection terminated')
        ws.terminate()
      } else {
        ws[kAwaitingPong] = true
        ws.ping()
      }
    }
  }, interval)
  timer.unref()
  app.addHook('onClose', async () => clearInterval(timer))
}

/** Closes every client with 1001 and waits for them, at most `timeout` ms; then cuts the rest off. */
async function closeAll (clients: Set<WebSocket>, timeout: number): Promise<void> {
  const open = [...clients].filter((ws) => ws.readyState !== ws.CLOSED)
  if (open.length === 0) return
  const closed = open.map((ws) => new Promise<void>((resolve) => {
    ws.once('close', () => resolve())
    ws.close(1001, SHUTDOWN_REASON)
  }))
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<void>((resolve) => { timer = setTimeout(resolve, timeout) })
  await Promise.race([Promise.all(closed), timedOut])
  clearTimeout(timer)
  for (const ws of open) if (ws.readyState !== ws.CLOSED) ws.terminate()
  // A terminated socket still emits 'close' (and so leaves the registry) a moment later.
  await Promise.all(closed)
}

export const echohubRegistry = fp(registryPlugin, { name: 'echohub-registry', fastify: '5.x' })

/**
 * Called by every echohub feature plugin in its parent's context: registers the registry (and with
 * it @fastify/websocket) unless the app has it already, and makes sure the WebSocket server accepts
 * messages as large as this endpoint allows. Smaller per-endpoint caps are enforced by the endpoint.
 */
export async function ensureInfrastructure (app: FastifyInstance, maxPayload: number): Promise<ConnectionRegistry> {
  if (!app.hasDecorator('echohub')) await app.register(echohubRegistry)
  if (app.hasDecorator(kOwnsWebsocket as unknown as string)) {
    const options = app.websocketServer.options
    if (maxPayload > (options.maxPayload ?? 0)) options.maxPayload = maxPayload
  }
  return app.echohub
}

/** The limit a `ws` error stands for; ws has already closed the socket with the matching code. */
const WS_ERROR_LIMITS: Record<string, string> = {
  WS_ERR_INVALID_UTF8: 'invalid_utf8',
  WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: 'oversize'
}

/** An endpoint's `error` listener: counts protocol faults (1002, 1007, 1009) and logs one line. */
export function socketError (registry: ConnectionRegistry, log: FastifyBaseLogger, conn: Connection, err: NodeJS.ErrnoException): void {
  const code = err.code ?? 'unknown'
  if (code.startsWith('WS_ERR_')) {
    registry.hit(WS_ERROR_LIMITS[code] ?? 'protocol_error')
    log.warn({ client: conn.peer, code, err: err.message }, 'client broke the protocol; connection closed')
  } else {
    log.info({ client: conn.peer, code, err: err.message }, 'client connection error')
  }
}

/** A message over the endpoint's own cap (below the WebSocket server's): close 1009 and count it. */
export function tooBig (registry: ConnectionRegistry, log: FastifyBaseLogger, socket: WebSocket, conn: Connection, maxPayload: number): void {
  registry.hit('oversize')
  log.warn({ client: conn.peer, max_payload: maxPayload }, 'message too big; connection closed with 1009')
  socket.close(1009, `message larger than ${maxPayload} bytes`)
}

/** Declares an endpoint in the registry; a name already taken fails `register`, naming the option. */
export function addEndpoint (registry: ConnectionRegistry, plugin: string, name: string): EndpointStats {
  if (registry.endpoints.has(name)) {
    throw new InvalidOptionError(plugin, 'name', `"${name}" is already used by another endpoint of this app; give each endpoint its own name`)
  }
  return registry.addEndpoint(name)
}

/** A plain HTTP GET on a WebSocket path: say how to connect instead of a bare 404. */
export function upgradeRequired (request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return reply.code(426).header('upgrade', 'websocket').send({
    error: 'upgrade_required',
    message: `${request.url} is a WebSocket endpoint: connect with a WebSocket client, e.g. ws://${request.host}${request.url}`
  })
}

/**
 * Wraps an endpoint's routes as its public plugin. The wrapper runs in the parent's context only to
 * make sure the shared registry and @fastify/websocket exist there; the routes live in an
 * encapsulated child, so `prefix` and their hooks stay local.
 */
export function endpointPlugin<Options extends { maxPayload?: number }> (name: string, defaultMaxPayload: number, routes: FastifyPluginAsync<Options>) {
  return fp<Options>(async function endpoint (app: FastifyInstance, opts: Options) {
    await ensureInfrastructure(app, integerOption(name, opts, 'maxPayload', defaultMaxPayload, 1))
    await app.register(routes, opts)
  }, { name, fastify: '5.x' })
}

/** The ServerResponse @fastify/websocket made for each upgrade echohub's own websocket handles. */
const upgradeResponses = new WeakMap<IncomingMessage, ServerResponse>()

/**
 * Lets go of what an open WebSocket does not need. @fastify/websocket keeps the upgrade's Fastify
 * request and reply alive for as long as the connection lasts (its per-socket error listener closes
 * over them, and the reply's ServerResponse stays attached to the TCP socket, holding Node's
 * IncomingMessage): about 3 KB on every idle connection. Where echohub registered the library
 * itself, that listener only reaches echohub's errorHandler, which has nothing to do for socket
 * errors (ws has already closed the socket; the endpoint's own listener logs and counts them), so
 * it is dropped and the response detached. An app that registered @fastify/websocket with its own
 * errorHandler keeps it. Call before adding the endpoint's own `error` listener.
 */
export function releaseUpgrade (socket: WebSocket, request: FastifyRequest): void {
  const response = upgradeResponses.get(request.raw)
  if (response === undefined) return
  upgradeResponses.delete(request.raw)
  // The library adds its listener last, right before calling the handler; others stay.
  const libraryListener = socket.listeners('error').at(-1)
  if (libraryListener !== undefined) socket.removeListener('error', libraryListener as (err: Error) => void)
  if (request.raw.socket !== undefined && request.raw.socket !== null) response.detachSocket(request.raw.socket)
}
