// The infrastructure every echohub plugin stands on: one ConnectionRegistry per app (or one handed
// in, shared by several apps) and @fastify/websocket, registered exactly once.
import type { FastifyBaseLogger, FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import websocket from '@fastify/websocket'
import type { WebSocket } from 'ws'
import type { IncomingMessage } from 'node:http'
import { ConnectionRegistry, connectionOf, type Connection, type EndpointStats } from '../src/registry.js'
import { booleanOption, describe, integerOption, knownOptions, stringOption, type OptionKeys } from '../src/options.js'
import { AccessPolicy, fromLoopback, redactToken, redactedRequest } from '../src/auth/access.js'
import { DEFAULT_LIMITS, type LimitName } from '../src/limits.js'
import { REFUSALS, refusalBody, type Refusal } from '../src/refusals.js'
import { formatPeer, oversizeReason } from '../src/format.js'
import { InvalidOptionError, InvalidTokenError, TokenExpiredError } from '../src/errors.js'
import { createJwtVerifier, publicKeyFromPem, secretKey, type JwtOptions } from '../src/auth/jwt.js'
import { checkedUser, identify, jwtIdentity, type Identity } from '../src/auth/identity.js'
import type { Authenticate, User } from '../src/auth/user.js'
import { PER_MESSAGE_DEFLATE } from '../src/transport/compression.js'
import { headersDeadline } from '../src/transport/headers-deadline.js'
import { addFirstPreClose, allowPendingPongs, explainOversize, oversizeOf, raiseMaxPayload, rememberUpgrade } from './ws-internals.js'
import { clientPeer, routeSubprotocols, subprotocolRouter } from './transport.js'
import { answerCheck, isCheck } from '../routes/check.js'
import { replyError } from '../routes/errors.js'

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
  /** Pings and pongs one client may send in a second; more closes it 1008 (default 100; 0 turns it off). */
  maxControlFrames?: number
  /** Allowed `Origin`s on the upgrade: `*` (default) or a list; refused ones get 403. */
  origins?: '*' | string[]
  /**
   * Require this token on upgrades and the admin routes (Bearer header or `?token=`); off by default.
   * With identity on (`jwt` or `authenticate`), upgrades take only the user's credentials and this
   * token guards only the admin routes.
   */
  authToken?: string
  /** Identity from signed tokens: every WebSocket client presents a JWT checked with these settings. */
  jwt?: JwtOptions
  /**
   * Identity from the host app: who an upgrade (or admin request) comes from. Returns the user
   * `{ id, name?, rooms?, admin?, expiresAt? }` or throws for a `401` (an InvalidTokenError or
   * TokenExpiredError sets the body's message; any other error is refused with a generic one).
   */
  authenticate?: Authenticate<FastifyRequest>
  /** With `authenticate`: checks the token of a chat `refresh` frame, returning its user or throwing. Without it, chat connections cannot be extended in-band. */
  verifyToken?: (token: string) => User | Promise<User>
  /**
   * permessage-deflate on the app's WebSocket server (off by default): ws holds it per server, so it
   * applies to every WebSocket route of the app. Where the app registered @fastify/websocket itself,
   * set `perMessageDeflate` in its options instead.
   */
  compression?: boolean
  /**
   * ms a socket of the app's server has, from accept (its TLS handshake included), to complete its
   * request's headers; then it is closed, counted as `headers_timeout` (default 10000). Meanwhile it
   * counts against `maxConnectionsPerIp` by its peer address, unless that is a proxy the app's
   * `trustProxy` names. It applies to the whole server, as which route a socket wants is known only
   * from its headers.
   */
  headersTimeout?: number
}

export const SHUTDOWN_REASON = 'server shutting down'
/**
 * Set (to true) in the registry's options by the CLI, whose users set `--origins` rather than
 * `origins`: refusals then name the flags. A symbol, so no plugin user meets it as an option.
 */
export const NAMED_BY_FLAGS = Symbol('echohub.namedByFlags')
const PLUGIN = 'echohub-registry'
const DEFAULT_WS_MAX_PAYLOAD = 64 * 1024

const OPTION_KEYS: OptionKeys<RegistryPluginOptions> = {
  registry: true,
  shutdownTimeout: true,
  maxConnections: true,
  maxConnectionsPerIp: true,
  heartbeatInterval: true,
  maxControlFrames: true,
  origins: true,
  authToken: true,
  jwt: true,
  authenticate: true,
  verifyToken: true,
  compression: true,
  headersTimeout: true
}

function readOptions (opts: RegistryPluginOptions) {
  knownOptions(PLUGIN, opts, OPTION_KEYS)
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
    maxControlFrames: integerOption(PLUGIN, opts, 'maxControlFrames', DEFAULT_LIMITS.maxControlFrames, 0),
    compression: booleanOption(PLUGIN, opts, 'compression', false),
    headersTimeout: integerOption(PLUGIN, opts, 'headersTimeout', DEFAULT_LIMITS.headersTimeout, 1),
    access: new AccessPolicy({
      origins,
      authToken: opts.authToken === undefined ? undefined : stringOption(PLUGIN, opts, 'authToken', ''),
      identity: identityOption(opts),
      namedBy: (opts as Record<symbol, unknown>)[NAMED_BY_FLAGS] === true ? 'flags' : 'options'
    })
  }
}

/** The `jwt` or `authenticate` option as one Identity, checked now so a bad key fails `register`. */
function identityOption (opts: RegistryPluginOptions): Identity | undefined {
  const { jwt, authenticate, verifyToken } = opts
  if (jwt !== undefined && authenticate !== undefined) {
    throw new InvalidOptionError(PLUGIN, 'jwt', 'and "authenticate" exclude each other: the JWT check is one authenticate function')
  }
  if (verifyToken !== undefined && typeof verifyToken !== 'function') throw new InvalidOptionError(PLUGIN, 'verifyToken', `must be a function, got ${describe(verifyToken)}`)
  if (authenticate !== undefined) {
    if (typeof authenticate !== 'function') throw new InvalidOptionError(PLUGIN, 'authenticate', `must be a function (request) => user, got ${describe(authenticate)}`)
    return { authenticate: authenticate as Authenticate, refresh: verifyToken === undefined ? undefined : async (token) => checkedUser(await verifyToken(token)) }
  }
  if (jwt === undefined) {
    if (verifyToken !== undefined) throw new InvalidOptionError(PLUGIN, 'verifyToken', 'needs "authenticate"')
    return undefined
  }
  if (jwt === null || typeof jwt !== 'object') throw new InvalidOptionError(PLUGIN, 'jwt', `must be an object like { secret } or { publicKey }, got ${describe(jwt)}`)
  if (jwt.clockTolerance !== undefined) integerOption(PLUGIN, jwt, 'clockTolerance', 0, 0, 300)
  for (const key of ['audience', 'issuer'] as const) {
    if (jwt[key] !== undefined && (typeof jwt[key] !== 'string' || jwt[key] === '')) throw new InvalidOptionError(PLUGIN, `jwt.${key}`, `must be a non-empty string, got ${describe(jwt[key])}`)
  }
  const check = (key: 'secret' | 'publicKey', test: () => unknown) => {
    try {
      test()
    } catch (err) {
      throw new InvalidOptionError(PLUGIN, `jwt.${key}`, (err as Error).message)
    }
  }
  if (jwt.secret !== undefined) check('secret', () => secretKey(jwt.secret!))
  if (jwt.publicKey !== undefined) check('publicKey', () => publicKeyFromPem(jwt.publicKey!))
  try {
    return jwtIdentity(createJwtVerifier(jwt)) as Identity
  } catch (err) {
    throw new InvalidOptionError(PLUGIN, 'jwt', (err as Error).message)
  }
}

type Settings = ReturnType<typeof readOptions>

/**
 * What one registration of the registry plugin (one app) holds: its settings and the endpoints
 * declared in it. Heartbeat and shutdown reach exactly the connections of these endpoints, never
 * another app's nor the sockets of the app's own WebSocket routes.
 */
interface AppScope {
  registry: ConnectionRegistry
  settings: Settings
  endpoints: Set<EndpointStats>
  /** echohub registered @fastify/websocket in this app, so its settings are echohub's to tune. */
  ownsWebsocket: boolean
}

const kScope = Symbol('echohub.scope')

function scopeOf (app: FastifyInstance): AppScope {
  return (app as unknown as Record<symbol, AppScope>)[kScope]!
}

const OPEN = 1
const CLOSED = 3

const registryPlugin: FastifyPluginAsync<RegistryPluginOptions> = async (app, opts) => {
  const settings = readOptions(opts)
  const registry = opts.registry ?? new ConnectionRegistry()
  Object.assign(registry.limitSettings, {
    max_connections: settings.maxConnections,
    max_connections_per_ip: settings.maxConnectionsPerIp,
    heartbeat_interval_ms: settings.heartbeatInterval,
    max_control_frames: settings.maxControlFrames,
    shutdown_timeout_ms: settings.shutdownTimeout,
    origins: settings.access.origins === '*' ? '*' : [...settings.access.origins].join(','),
    auth: settings.access.authRequired,
    identity: opts.jwt !== undefined ? 'jwt' : opts.authenticate !== undefined ? 'authenticate' : false,
    compression: settings.compression,
    headers_timeout_ms: settings.headersTimeout
  })
  app.decorate('echohub', registry)
  app.decorate('echohubAccess', settings.access)
  const scope: AppScope = { registry, settings, endpoints: new Set(), ownsWebsocket: !app.hasDecorator('websocketServer') }
  app.decorate(kScope as unknown as string, scope)

  if (scope.ownsWebsocket) {
    await app.register(websocket, {
      options: {
        maxPayload: DEFAULT_WS_MAX_PAYLOAD,
        // Each echohub endpoint picks its own subprotocol, though ws asks the server once.
        handleProtocols: subprotocolRouter(),
        ...(settings.compression ? { perMessageDeflate: PER_MESSAGE_DEFLATE } : {})
      },
      // ws has already answered a protocol error with the right close code (1002, 1007, 1009) and
      // the endpoint's own listener logs and counts it; anything else is a bug in a handler.
      errorHandler (error, socket, request) {
        if ((error as NodeJS.ErrnoException).code?.startsWith('WS_ERR_') === true) return
        request.log.error({ err: error }, 'websocket handler failed')
        socket.terminate()
      },
      preClose: async function closeClients (this: FastifyInstance) {
        registry.startDraining()
        // The app's own WebSocket routes get what the library's default preClose gives them: their
        // clients a close frame, and no new upgrade (ws answers 503 once its server is closed).
        // The upgrade listener stays, so echohub's routes can still refuse with a JSON 503.
        for (const ws of this.websocketServer.clients) if (connectionOf(ws) === undefined) ws.close()
        this.websocketServer.close()
        await closeAll(registry.connectionsOf(scope.endpoints), settings.shutdownTimeout)
      }
    })
    // Past --max-control-frames echohub closes a flooding client 1008 itself, before ws's own cut-off.
    if (settings.maxControlFrames > 0) allowPendingPongs(app.websocketServer, settings.maxControlFrames + 1)
  } else {
    if (settings.compression) {
      throw new InvalidOptionError(PLUGIN, 'compression', 'cannot be set where the app registered @fastify/websocket itself: give perMessageDeflate in its options instead')
    }
    // The app's own routes keep the app's handleProtocols; echohub's answer as each endpoint decides.
    routeSubprotocols(app.websocketServer)
    // The app's @fastify/websocket would close every client first with a bare close frame (its
    // default preClose, added earlier): echohub's runs before it, so its own clients get 1001
    // "server shutting down" in this order too; the library then closes the app's.
    // It only starts closing them; waiting for them comes after the library's hook, so the app's own
    // clients are not kept waiting on echohub's.
    addFirstPreClose(app, async () => {
      registry.startDraining()
      for (const conn of registry.connectionsOf(scope.endpoints)) conn.socket.close(1001, SHUTDOWN_REASON)
    })
    app.addHook('preClose', async () => {
      await closeAll(registry.connectionsOf(scope.endpoints), settings.shutdownTimeout)
    })
  }
  // Before any endpoint's handler: a message over ws's own cap gets a close reason naming the limit.
  app.websocketServer.on('connection', (socket: WebSocket, raw: IncomingMessage) => {
    const limit = upgradeLimits.get(raw)
    if (limit !== undefined) explainOversize(socket, limit)
  })
  if (settings.heartbeatInterval > 0) startHeartbeat(app, scope, settings.heartbeatInterval)
  watchHeaders(app, registry, settings.headersTimeout)
}

/** Slow requests: closes a socket of the app's server that has not sent its headers in time (src/transport/headers-deadline.ts). */
function watchHeaders (app: FastifyInstance, registry: ConnectionRegistry, timeout: number): void {
  const server = app.server
  // An HTTP/2 server has no such phase to bound (nor WebSocket upgrades).
  if (!('headersTimeout' in server)) return
  const watch = headersDeadline(registry).watch(server, {
    timeout,
    expired (address, port) {
      registry.hit('headers_timeout')
      app.log.warn({ client: formatPeer(address, port), timeout_ms: timeout }, 'request headers not complete in time; connection closed')
    }
  })
  // Every upgrade, the app's own WebSocket routes' included, is routed through the app (so through
  // this hook, registered where the registry is: the app's root, as a rule): its headers are complete.
  app.addHook('onRequest', (request, _reply, done) => {
    watch.complete(request.raw.socket)
    done()
  })
  app.addHook('onClose', async () => watch.stop())
}

/** The largest message of the endpoint each admitted upgrade goes to. */
const upgradeLimits = new WeakMap<IncomingMessage, number>()

/** Sends a refusal from src/refusals.ts: its status, `Retry-After` when it has one, and the JSON body. */
export function sendRefusal (reply: FastifyReply, refusal: Refusal): FastifyReply {
  if (refusal.retryAfter !== undefined) reply.header('retry-after', String(refusal.retryAfter))
  return reply.code(refusal.status).send(refusalBody(refusal))
}

/** One of an endpoint's own upgrade checks (the lab's controls): a refusal, or undefined to let it in. */
export type UpgradeCheck = (request: FastifyRequest) => Refusal | undefined

/** Each endpoint's own checks, by the encapsulated instance its routes are declared in. */
const upgradeChecks = new WeakMap<FastifyInstance, UpgradeCheck[]>()

/**
 * Adds a check of an endpoint's own to its upgrades, run after the shared ones (identity, draining,
 * token, origin, caps). `?check` runs it too, so a page learns the very refusal its upgrade got.
 * A check may note what it parsed for the handler; it must not count or log (the caller does).
 */
export function addUpgradeCheck (app: FastifyInstance, check: UpgradeCheck): void {
  const checks = upgradeChecks.get(app)
  if (checks === undefined) upgradeChecks.set(app, [check])
  else checks.push(check)
}

/** The admission of an upgrade: a refusal (with what caused it, for the log), or the user it comes from. */
type Admission = { refusal: Refusal, cause?: unknown } | { user: User | undefined }

/**
 * The one admission decision for an upgrade to an endpoint, shared by the upgrade and `?check`:
 * the user's credentials (identity on), then draining, token, origin and caps, then the endpoint's
 * own checks. Nothing is counted or logged here. The checks after the credentials run without
 * yielding to other sockets' I/O, and so does the handler that opens the connection after them,
 * so two upgrades cannot both pass the last free slot.
 */
async function admission (request: FastifyRequest, scope: AppScope, checks: readonly UpgradeCheck[]): Promise<Admission> {
  const { registry, settings } = scope
  const identity = settings.access.identity
  let user: User | undefined
  if (identity !== undefined && !registry.draining) {
    const result = await identify(identity, request)
    if ('refusal' in result) return { refusal: REFUSALS.badCredentials(result.refusal.error, result.refusal.message), cause: result.cause }
    user = result.user
  }
  let refusal = refusalFor(request, registry, settings)
  for (const check of checks) refusal ??= check(request)
  return refusal === undefined ? { user } : { refusal }
}

/**
 * Refuses an upgrade to one of echohub's routes with an HTTP status and a JSON body before any
 * WebSocket exists: counted against its limit and logged without the token.
 */
function refuseUpgrade (request: FastifyRequest, reply: FastifyReply, registry: ConnectionRegistry, refused: { refusal: Refusal, cause?: unknown }): FastifyReply {
  const { refusal, cause } = refused
  if (refusal.limit !== undefined) registry.hit(refusal.limit)
  const peer = clientPeer(request)
  const client = formatPeer(peer.address, peer.port)
  // An error that is not one of echohub's token errors came from a host app's authenticate: log it whole.
  if (cause !== undefined && !(cause instanceof InvalidTokenError) && !(cause instanceof TokenExpiredError)) {
    request.log.error({ client, url: redactToken(request.url), err: cause }, 'upgrade refused: authenticate failed')
  } else {
    request.log.warn({ client, url: redactToken(request.url), status: refusal.status, limit: refusal.limit, ...refusal.details }, `upgrade refused: ${refusal.message}`)
  }
  return sendRefusal(withChallenge(reply, refusal), refusal)
}

/** A 401 names the scheme it wants (RFC 6750): `Bearer`, with `error="invalid_token"` for refused credentials. */
function withChallenge (reply: FastifyReply, refusal: Refusal): FastifyReply {
  if (refusal.status === 401) reply.header('www-authenticate', refusal.error === 'unauthorized' ? 'Bearer' : 'Bearer error="invalid_token"')
  return reply
}

/** The shared checks after the credentials: draining, token (identity off), origin, caps. */
function refusalFor (request: FastifyRequest, registry: ConnectionRegistry, settings: Settings): Refusal | undefined {
  if (registry.draining) return REFUSALS.draining()
  // With identity on, the user's credentials (checked before) are what lets a client in.
  if (settings.access.identity === undefined && !settings.access.authorized(request)) return REFUSALS.unauthorized()
  if (!settings.access.originAllowed(request)) return REFUSALS.originNotAllowed(String(request.headers.origin), settings.access.names.origins)
  return capRefusal(request, registry, settings)
}

/** The connection caps: the process-wide one (503), then the client address's (429). */
function capRefusal (request: FastifyRequest, registry: ConnectionRegistry, settings: Settings): Refusal | undefined {
  if (registry.connections.size >= settings.maxConnections) return REFUSALS.serverFull(settings.maxConnections)
  const address = clientPeer(request).address
  if (address === undefined) return undefined
  let held = registry.connectionsFrom(address)
  // Sockets from this address still sending their headers count too, unless it is a trusted proxy's.
  const waiting = headersDeadline(registry).pendingFrom(address)
  if (waiting > 0 && !trustsProxyAt(request, address)) held += waiting
  if (held >= settings.maxConnectionsPerIp) return REFUSALS.tooManyConnections(address, settings.maxConnectionsPerIp)
  return undefined
}

/**
 * Whether the app's `trustProxy` believes a proxy at this address, asked of Fastify itself: its
 * request's `ips` getter (defined only with trustProxy) run on a request from that address.
 */
function trustsProxyAt (request: FastifyRequest, address: string): boolean {
  let getter: (() => unknown) | undefined
  for (let proto = Object.getPrototypeOf(request) as object | null; proto !== null && getter === undefined; proto = Object.getPrototypeOf(proto) as object | null) {
    getter = Object.getOwnPropertyDescriptor(proto, 'ips')?.get
  }
  if (getter === undefined) return false
  const ips = getter.call({ raw: { socket: { remoteAddress: address }, headers: { 'x-forwarded-for': '192.0.2.1' } } })
  return Array.isArray(ips) && ips.length > 1
}

/**
 * The connection caps (`maxConnections`, `maxConnectionsPerIp`) for a WebSocket of echohub's that
 * is no endpoint's, such as the inspector's: it counts against them like any client. Check it
 * last, after any await, so that the check and the upgrade's handler run without yielding.
 */
export function connectionCapRefusal (app: FastifyInstance, request: FastifyRequest): Refusal | undefined {
  const { registry, settings } = scopeOf(app)
  return capRefusal(request, registry, settings)
}

/** The user each admitted upgrade comes from (identity on), for the endpoint that opens its connection. */
const requestUsers = new WeakMap<FastifyRequest, User>()

/** Who the client of this upgrade is, when identity is on. */
export function requestUser (request: FastifyRequest): User | undefined {
  return requestUsers.get(request)
}

/**
 * The admin routes' guard (`/stats`, `/metrics`, `/connections`, `/rooms`, `POST /publish`, `/inspect`):
 * `--auth-token` when it is set; otherwise, with identity on, a user whose `admin` is true (no or bad
 * credentials: 401; a user without admin: 403 `admin_required`); otherwise open. Returns the
 * refusal to send, or undefined to let the request through.
 */
export async function adminRefusal (app: FastifyInstance, request: FastifyRequest): Promise<{ refusal: Refusal, cause?: unknown } | undefined> {
  const access = app.echohubAccess
  if (access.authRequired || access.identity === undefined) {
    return access.authorized(request) ? undefined : { refusal: REFUSALS.unauthorized() }
  }
  const result = await identify(access.identity, request)
  if ('refusal' in result) return { refusal: REFUSALS.badCredentials(result.refusal.error, result.refusal.message), cause: result.cause }
  return result.user.admin === true ? undefined : { refusal: REFUSALS.adminRequired() }
}

/** An onRequest hook body for the admin routes: sends adminRefusal's refusal, counted and logged. */
export async function requireAdmin (app: FastifyInstance, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
  const refused = await adminRefusal(app, request)
  if (refused === undefined) return undefined
  const { refusal, cause } = refused
  app.echohub.hit(refusal.limit!)
  if (cause !== undefined && !(cause instanceof InvalidTokenError) && !(cause instanceof TokenExpiredError)) {
    request.log.error({ url: redactToken(request.url), err: cause }, 'admin request refused: authenticate failed')
  } else {
    request.log.warn({ url: redactToken(request.url), status: refusal.status }, `admin request refused: ${refusal.message}`)
  }
  return sendRefusal(withChallenge(reply, refusal), refusal)
}

/**
 * The admin routes that show or act on single clients, while no admin credential is set (no
 * `--auth-token`, no identity): only a request from this machine passes (fromLoopback), as in
 * Redis's protected mode. Returns the refusal, or undefined to let the request through.
 */
export function adminLocalRefusal (app: FastifyInstance, request: FastifyRequest): Refusal | undefined {
  if (!app.echohubAccess.localOnly) return undefined
  // Fastify's `ips` (with trustProxy only): the socket's address, then what the trusted proxies forwarded.
  const forwarded = (request as { ips?: string[] }).ips
  if (fromLoopback(request.raw.socket?.remoteAddress, forwarded)) return undefined
  return REFUSALS.adminLocalOnly(app.echohubAccess.names.authToken)
}

/**
 * The admin Origin rule, for reads as for changes: a request whose `Origin` is neither listed in
 * `--origins` nor its own on a localhost or IP-address host is refused (cross-site reads, DNS
 * rebinding). Requests without `Origin` (curl, devices, scripts) pass.
 */
export function adminOriginRefusal (app: FastifyInstance, request: FastifyRequest): Refusal | undefined {
  if (app.echohubAccess.mutationAllowed(request)) return undefined
  const origin = String(request.headers.origin)
  const setting = app.echohubAccess.names.origins
  return request.method === 'GET' || request.method === 'HEAD' ? REFUSALS.adminReadNotAllowed(origin, setting) : REFUSALS.mutationNotAllowed(origin, setting)
}

/**
 * An onRequest hook body for the admin routes that show or act on single clients (`/connections`
 * and its actions, `/rooms`, `POST /publish`, the conformance reports' `DELETE`): the admin
 * credential (requireAdmin), then this machine only while no credential is set (adminLocalRefusal),
 * then the admin Origin rule (adminOriginRefusal). Refusals are counted and logged. Their answers
 * carry CORS headers only for an origin listed in `--origins`, never `*`: run it after the app's
 * CORS hook (a root `onRequest` hook, as @fastify/cors adds, runs before a plugin's).
 */
export async function requireClientAdmin (app: FastifyInstance, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
  if (!app.echohubAccess.originListed(request.headers.origin)) reply.removeHeader('access-control-allow-origin')
  const refused = await requireAdmin(app, request, reply)
  if (refused !== undefined) return refused
  const refusal = adminLocalRefusal(app, request) ?? adminOriginRefusal(app, request)
  if (refusal === undefined) return undefined
  return refuseClientAdmin(app, request, reply, refusal)
}

/** Sends a refusal of an admin route: counted, logged with the client's address and Origin. */
export function refuseClientAdmin (app: FastifyInstance, request: FastifyRequest, reply: FastifyReply, refusal: Refusal): FastifyReply {
  if (refusal.limit !== undefined) app.echohub.hit(refusal.limit)
  const client = formatPeer(request.raw.socket?.remoteAddress, request.raw.socket?.remotePort)
  request.log.warn({ client, url: redactToken(request.url), origin: request.headers.origin, status: refusal.status, limit: refusal.limit }, `admin request refused: ${refusal.message}`)
  return sendRefusal(reply, refusal)
}

/** The most slices a heartbeat period is cut into, and the shortest slice, in ms. */
const HEARTBEAT_SLICES = 30
const HEARTBEAT_MIN_SLICE_MS = 10

/**
 * Pings the app's echohub clients once a period; one that has not answered the previous ping is
 * cut off. One timer for all of them, spreading the period's pings over it: each tick takes the
 * next slice of the registry's connections (a pass over them starts each period), so 18,000
 * connections never cost one turn of the event loop 18,000 pings. A ping is judged no sooner than
 * half a period after it left, however the slices shifted as connections came and went.
 */
function startHeartbeat (app: FastifyInstance, scope: AppScope, interval: number): void {
  const { registry } = scope
  const slices = Math.max(1, Math.min(HEARTBEAT_SLICES, Math.floor(interval / HEARTBEAT_MIN_SLICE_MS)))
  const patience = interval / 2
  let slice = 0
  let pass: Iterator<Connection> = registry.connections.values()
  const timer = setInterval(() => {
    if (slice === 0) pass = registry.connections.values()
    // The period's last slice takes whatever is left, connections that came during the pass included.
    const last = slice === slices - 1
    const count = last ? Number.POSITIVE_INFINITY : Math.ceil(registry.connections.size / slices)
    slice = last ? 0 : slice + 1
    for (let n = 0; n < count; n++) {
      const next = pass.next()
      if (next.done === true) break
      const conn = next.value
      if (!scope.endpoints.has(conn.endpoint) || conn.socket.readyState !== OPEN || conn.heartbeat(patience)) continue
      registry.hit('heartbeat_timeout')
      app.log.warn({ client: conn.peer, interval_ms: interval }, 'client missed a heartbeat ping; connection terminated')
      conn.socket.terminate()
    }
  }, interval / slices)
  timer.unref()
  app.addHook('onClose', async () => clearInterval(timer))
}

/** Idle time before TCP keep-alive probes start: the kernel then reaps a peer that vanished. */
export const KEEP_ALIVE_MS = 60_000

/** Closes these clients with 1001 and waits for them, at most `timeout` ms; then cuts the rest off. */
async function closeAll (conns: Connection[], timeout: number): Promise<void> {
  const open = conns.map((conn) => conn.socket).filter((ws) => ws.readyState !== CLOSED)
  if (open.length === 0) return
  const closed = open.map((ws) => new Promise<void>((resolve) => {
    ws.on('close', () => resolve())
    ws.close(1001, SHUTDOWN_REASON)
  }))
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<void>((resolve) => { timer = setTimeout(resolve, timeout) })
  await Promise.race([Promise.all(closed), timedOut])
  clearTimeout(timer)
  for (const ws of open) if (ws.readyState !== CLOSED) ws.terminate()
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
  if (scopeOf(app).ownsWebsocket) raiseMaxPayload(app.websocketServer, maxPayload)
  return app.echohub
}

/** The limit a `ws` error stands for; ws has already closed the socket with the matching code. */
const WS_ERROR_LIMITS: Record<string, LimitName> = {
  WS_ERR_INVALID_UTF8: 'invalid_utf8',
  WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: 'oversize'
}

/** An endpoint's `error` listener: counts protocol faults (1002, 1007, 1009) and logs one line. */
export function socketError (registry: ConnectionRegistry, log: FastifyBaseLogger, conn: Connection, err: NodeJS.ErrnoException): void {
  const code = err.code ?? 'unknown'
  const oversize = oversizeOf(err)
  if (oversize !== undefined) {
    registry.hit('oversize')
    log.warn({ client: conn.peer, bytes: oversize.bytes, max_payload: oversize.limit }, `${oversize.reason}; connection closed with 1009`)
  } else if (code.startsWith('WS_ERR_')) {
    registry.hit(WS_ERROR_LIMITS[code] ?? 'protocol_error')
    log.warn({ client: conn.peer, code, err: err.message }, 'client broke the protocol; connection closed')
  } else {
    log.info({ client: conn.peer, code, err: err.message }, 'client connection error')
  }
}

/** A message over the endpoint's own cap (below the WebSocket server's): close 1009 with a reason naming the limit, and count it. */
export function tooBig (registry: ConnectionRegistry, log: FastifyBaseLogger, socket: WebSocket, conn: Connection, maxPayload: number, bytes: number): void {
  registry.hit('oversize')
  const reason = oversizeReason(bytes, maxPayload)
  log.warn({ client: conn.peer, bytes, max_payload: maxPayload }, `${reason}; connection closed with 1009`)
  socket.close(1009, reason)
}

/**
 * Declares an endpoint of this app in the registry, so the app's heartbeat and shutdown reach its
 * connections; a name already taken fails `register`, naming the option.
 */
export function addEndpoint (app: FastifyInstance, plugin: string, name: string): EndpointStats {
  const registry = app.echohub
  if (registry.endpoints.has(name)) {
    throw new InvalidOptionError(plugin, 'name', `"${name}" is already used by another endpoint of this app; give each endpoint its own name`)
  }
  const stats = registry.addEndpoint(name)
  const scope = scopeOf(app)
  scope.endpoints.add(stats)
  const max = scope.settings.maxControlFrames
  stats.maxControlFrames = max
  stats.onControlFlood = (conn) => {
    app.log.warn({ client: conn.peer, max_control_frames: max }, `client sent more than ${max} pings and pongs in a second; connection closed with 1008`)
  }
  return stats
}

/**
 * A plain HTTP GET on a WebSocket path: with `?check`, the upgrade's admission without the upgrade
 * and without counting it (routes/check.ts); otherwise say how to connect instead of a bare 404.
 */
export async function upgradeRequired (this: FastifyInstance, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  if (isCheck(request)) {
    const scope = scopeOf(this)
    const checks = upgradeChecks.get(this) ?? []
    return await answerCheck(request, reply, async (asked) => {
      const admitted = await admission(asked, scope, checks)
      if (!('refusal' in admitted)) return undefined
      withChallenge(reply, admitted.refusal)
      return admitted.refusal
    })
  }
  return sendRefusal(reply.header('upgrade', 'websocket'), REFUSALS.upgradeRequired(request.url, request.host))
}

/**
 * Wraps an endpoint's routes as its public plugin. The wrapper runs in the parent's context only to
 * make sure the shared registry and @fastify/websocket exist there; the routes live in an
 * encapsulated child with the admission hook (draining, token, origin, caps), so `prefix` and the
 * hook stay on echohub's own routes and never meet the app's.
 */
export function endpointPlugin<Options extends { maxPayload?: number }> (name: string, defaultMaxPayload: number, routes: FastifyPluginAsync<Options>) {
  const admitted: FastifyPluginAsync<Options> = async (child, opts) => {
    const scope = scopeOf(child)
    const maxPayload = integerOption(name, opts, 'maxPayload', defaultMaxPayload, 1)
    child.setErrorHandler(replyError)
    child.addHook('onRequest', async (request, reply) => {
      if (!request.ws) return
      if (scope.ownsWebsocket) rememberUpgrade(request, reply)
      const admitted = await admission(request, scope, upgradeChecks.get(child) ?? [])
      if ('refusal' in admitted) return refuseUpgrade(request, reply, scope.registry, admitted)
      if (admitted.user !== undefined) requestUsers.set(request, admitted.user)
      upgradeLimits.set(request.raw, maxPayload)
      // A peer that vanishes without a FIN is found by the kernel, heartbeat or not (`ping=0`).
      request.raw.socket?.setKeepAlive(true, KEEP_ALIVE_MS)
    })
    await routes(child, opts)
  }
  return fp<Options>(async function endpoint (app: FastifyInstance, opts: Options) {
    await ensureInfrastructure(app, integerOption(name, opts, 'maxPayload', defaultMaxPayload, 1))
    // The request lines of echohub's routes hide `?token=`, whatever logger the app has.
    // (Fastify types serializers as returning strings; pino takes objects, as its own `req` serializer returns.)
    await app.register(async (child) => { await child.register(admitted, opts) }, { logSerializers: { req: redactedRequest as unknown as (req: unknown) => string } })
  }, { name, fastify: '5.x' })
}

export { releaseUpgrade } from './ws-internals.js'
