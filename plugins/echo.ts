// The echo endpoint: a JSON envelope for each text message, byte-exact binary echo, a plain echo
// at `<path>/raw`, an optional welcome, and a debug mode that logs every frame.
import type { FastifyBaseLogger, FastifyPluginAsync, FastifyRequest } from 'fastify'
import type { IncomingMessage } from 'node:http'
import type { WebSocket } from 'ws'
import { addEndpoint, addUpgradeCheck, endpointPlugin, requestUser, socketError, tooBig, upgradeRequired } from './registry.js'
import { directSocket, releaseUpgrade } from './ws-internals.js'
import type { Connection, ConnectionRegistry, EndpointStats } from '../src/registry.js'
import { dataFrame } from '../src/transport/frames.js'
import { echoEnvelopeWriter, echoWelcome } from '../src/echo/messages.js'
import { booleanOption, integerOption, knownOptions, pathOption, stringOption, type OptionKeys } from '../src/options.js'
import { hexPreview, logsAt, preview } from '../src/format.js'
import { InvalidOptionError } from '../src/errors.js'
import { REFUSALS } from '../src/refusals.js'
import { DEFAULT_LIMITS, ENDPOINT_DEFAULTS } from '../src/limits.js'
import { redactToken } from '../src/auth/access.js'
import { publicUser, TOKEN_EXPIRED_CODE, TOKEN_EXPIRED_REASON } from '../src/auth/user.js'
import { parseControls, type Controls } from '../src/lab/controls.js'
import { LabSession } from '../src/lab/session.js'
import { onWatched } from '../src/lab/inspector.js'
import { clientPeer, offerSubprotocols, subprotocolsOption } from './transport.js'
import { conformanceOption, mountConformance, type ConformanceOptions } from './conformance.js'

export interface EchoOptions {
  /** Where the envelope echo listens (default `/`). The plain echo is at `<path>/raw`. */
  path?: string
  /** Name of the endpoint in /stats and /metrics (default `echo`); unique per app. */
  name?: string
  /** `server_info` in every envelope (default `echohub echo server`). */
  serverInfo?: string
  /** Greet each client with a `welcome` frame on connect (default false). */
  welcome?: boolean
  /** The welcome's `message` text. */
  welcomeMessage?: string
  /** Log every frame at debug level: its text, or hex for binary (default false). */
  debug?: boolean
  /** Also serve the plain echo at `<path>/raw` (default true). */
  raw?: boolean
  /** Largest message in bytes (default 1048576); a larger one closes the connection with 1009. */
  maxPayload?: number
  /** Echo on every path the app has no route for, as devices configured with any path expect (default: true when `path` is `/`). */
  anyPath?: boolean
  /** Subprotocols accepted: `'*'` (default) the first a client offers, or a list (the first offered that is on it; none: no protocol header). */
  subprotocols?: '*' | string[]
  /** The most bytes one received message's lab replies may send, copies and frame headers (default 16777216); past it: close 1008. */
  labMaxOutput?: number
  /** The most bytes a lab burst may ask for, `burst * burst_size` (default 268435456); more is refused 400 at the upgrade. */
  labMaxBurst?: number
  /** The client conformance suite under `<path>/conformance` (off unless given): `true`, or `{ dir, maxAgents, maxRunning, cases }`. */
  conformance?: boolean | ConformanceOptions
}

const PLUGIN = 'echohub-echo'
const DEFAULTS = ENDPOINT_DEFAULTS.echo
export const ECHO_MAX_PAYLOAD = DEFAULT_LIMITS.echoMaxPayload
/** Unsent bytes per client above which the echo stops reading from it. */
export const ECHO_HIGH_WATER = 1024 * 1024
const TEXT = { binary: false } as const
const BINARY = { binary: true } as const
/**
 * Replies up to this size are framed here and written to the TCP socket in one write, rather than
 * handed to ws, which writes a frame's header and payload as two (cork, write, write, uncork):
 * for a small echo that write path costs more than the echo itself. The frame is then carved
 * from Node's shared buffer pool (allocUnsafe pools under half its size), so it costs no
 * allocation of its own; larger replies go through ws and are never copied.
 */
const DIRECT_MAX = (Buffer.poolSize >>> 1) - 5

interface Settings {
  name: string
  serverInfo: string
  welcome: string | undefined
  debug: boolean
  maxPayload: number
  labMaxOutput: number
  maxBurst: number
}

const OPTION_KEYS: OptionKeys<EchoOptions> = {
  path: true,
  name: true,
  serverInfo: true,
  welcome: true,
  welcomeMessage: true,
  debug: true,
  raw: true,
  maxPayload: true,
  anyPath: true,
  subprotocols: true,
  labMaxOutput: true,
  labMaxBurst: true,
  conformance: true
}

function readOptions (opts: EchoOptions) {
  if (opts === null || typeof opts !== 'object') throw new InvalidOptionError(PLUGIN, 'options', 'must be an object')
  knownOptions(PLUGIN, opts, OPTION_KEYS)
  const path = pathOption(PLUGIN, opts, 'path', DEFAULTS.path)
  const welcome = booleanOption(PLUGIN, opts, 'welcome', false)
  return {
    path,
    raw: booleanOption(PLUGIN, opts, 'raw', true),
    anyPath: booleanOption(PLUGIN, opts, 'anyPath', path === '/'),
    subprotocols: subprotocolsOption(PLUGIN, opts, '*', true),
    conformance: conformanceOption(PLUGIN, opts.conformance),
    settings: {
      name: stringOption(PLUGIN, opts, 'name', DEFAULTS.name),
      serverInfo: stringOption(PLUGIN, opts, 'serverInfo', DEFAULTS.serverInfo),
      welcome: welcome ? stringOption(PLUGIN, opts, 'welcomeMessage', DEFAULTS.welcomeMessage) : undefined,
      debug: booleanOption(PLUGIN, opts, 'debug', false),
      maxPayload: integerOption(PLUGIN, opts, 'maxPayload', ECHO_MAX_PAYLOAD, 1),
      labMaxOutput: integerOption(PLUGIN, opts, 'labMaxOutput', DEFAULT_LIMITS.labMaxOutput, 1),
      maxBurst: integerOption(PLUGIN, opts, 'labMaxBurst', DEFAULT_LIMITS.labMaxBurst, 1)
    } satisfies Settings
  }
}

/** What every connection of one echo endpoint shares. */
interface EchoEndpoint {
  registry: ConnectionRegistry
  stats: EndpointStats
  settings: Settings
  envelope: ReturnType<typeof echoEnvelopeWriter>
}

/** A connection's state, kept on its socket so one set of listener functions serves every socket. */
interface EchoState {
  endpoint: EchoEndpoint
  conn: Connection
  log: FastifyBaseLogger
  /** The plain echo of `/raw`: no envelope. */
  raw: boolean
  /** The device lab's controls at work on this connection; none on a plain one. */
  lab: LabSession | undefined
}

const kEcho = Symbol('echohub.echo')
type EchoSocket = WebSocket & { [kEcho]: EchoState }
const stateOf = (socket: WebSocket): EchoState => (socket as EchoSocket)[kEcho]

const echoRoutes: FastifyPluginAsync<EchoOptions> = async (app, opts) => {
  const { path, raw, anyPath, subprotocols, conformance, settings } = readOptions(opts)
  const registry = app.echohub
  const stats = addEndpoint(app, PLUGIN, settings.name)
  // Before the echo's own hooks, so the lab's controls never meet the suite's routes.
  if (conformance !== undefined) await mountConformance(app, conformance, `${settings.name}-conformance`, path === '/' ? '/conformance' : `${path}/conformance`)
  stats.limits.max_payload = settings.maxPayload
  Object.assign(registry.limitSettings, { lab_max_output: settings.labMaxOutput, lab_max_burst: settings.maxBurst })
  const endpoint: EchoEndpoint = { registry, stats, settings, envelope: echoEnvelopeWriter(settings.serverInfo) }

  // The lab's controls are read before the upgrade (and by `?check`), so a bad one is an HTTP 400 naming it.
  addUpgradeCheck(app, (request) => {
    const parsed = parseControls(request.url, settings)
    if (!parsed.ok) return REFUSALS.invalidControl(parsed.refusal.control, parsed.refusal.message)
    if (parsed.controls !== undefined) requestControls.set(request.raw, parsed.controls)
    return undefined
  })

  app.addHook('onRequest', offerSubprotocols(subprotocols))
  const envelopeEcho = (socket: WebSocket, request: FastifyRequest) => accept(endpoint, socket, request, false)
  const rawEcho = (socket: WebSocket, request: FastifyRequest) => accept(endpoint, socket, request, true)
  app.route({ method: 'GET', url: path, handler: upgradeRequired, wsHandler: envelopeEcho })
  if (raw) app.route({ method: 'GET', url: path === '/' ? '/raw' : `${path}/raw`, handler: upgradeRequired, wsHandler: rawEcho })
  if (anyPath) app.route({ method: 'GET', url: path === '/' ? '/*' : `${path}/*`, handler: upgradeRequired, wsHandler: envelopeEcho })
}

/** Controls parsed before the upgrade, for the handler that opens the connection. */
const requestControls = new WeakMap<IncomingMessage, Controls>()

/** Attaches the socket to the registry (which removes it on close) and wires the echo's listeners. */
function accept (endpoint: EchoEndpoint, ws: WebSocket, request: FastifyRequest, raw: boolean): void {
  const { registry, settings } = endpoint
  const conn = registry.attach(ws, endpoint.stats, { ...clientPeer(request), path: request.url, user: requestUser(request) })
  const user = conn.user
  const socket = ws as EchoSocket
  const controls = requestControls.get(request.raw)
  const log = request.log
  const lab = controls === undefined
    ? undefined
    : new LabSession({ socket, conn, registry, controls, raw, highWater: ECHO_HIGH_WATER, maxOutput: settings.labMaxOutput, tcp: request.raw.socket, log })
  // Compressed replies are ws's to write, and a lab session writes its own.
  const direct = lab === undefined && socket.extensions === '' ? directSocket(socket, request) : undefined
  socket[kEcho] = { endpoint, conn, log, raw, lab }
  // Small replies are written pre-framed to the TCP socket, with no extension negotiated.
  conn.direct = direct
  // An inspector sees frames through ws's send: while one watches, replies go that way.
  if (direct !== undefined) onWatched(socket, (watched) => { conn.direct = watched ? undefined : direct })
  log.info({ client: conn.peer, ...(user === undefined ? {} : { user: user.id }), connections: registry.connections.size, path: redactToken(request.url) }, 'client connected')
  // Echo text is echoed, so an echo client cannot refresh in-band: it reconnects with a new token.
  if (user?.expiresAt !== undefined) conn.expireAt(user.expiresAt, () => expire(socket))
  releaseUpgrade(socket, request)
  // A plain connection keeps the plain echo's listener: the controls cost it nothing.
  socket.on('message', lab === undefined ? onMessage : onLabMessage)
  socket.on('error', onError)
  socket.on('close', onClose)
  if (settings.welcome !== undefined && !raw) {
    reply(socket, Buffer.from(echoWelcome(settings.welcome, conn.id, settings.serverInfo, user === undefined ? undefined : publicUser(user), controls, socket.protocol)), false)
  }
  lab?.start()
}

function expire (socket: EchoSocket): void {
  const { endpoint, conn, log } = stateOf(socket)
  endpoint.registry.hit('token_expired')
  log.info({ client: conn.peer, user: conn.user?.id }, 'token expired; connection closed with 4401')
  socket.close(TOKEN_EXPIRED_CODE, TOKEN_EXPIRED_REASON)
}

/** Counts a received message and refuses one over the cap; false when it must not be answered. */
function admit (socket: WebSocket, data: Buffer, isBinary: boolean): boolean {
  const { endpoint, conn, log } = stateOf(socket)
  const { settings } = endpoint
  conn.received(data.length)
  if (data.length > settings.maxPayload) {
    tooBig(endpoint.registry, log, socket, conn, settings.maxPayload, data.length)
    return false
  }
  if (settings.debug) logFrame(log, conn, 'frame received', conn.messagesReceived, data, isBinary)
  return true
}

function onMessage (this: WebSocket, data: Buffer, isBinary: boolean): void {
  if (!admit(this, data, isBinary)) return
  const { endpoint, conn, log, raw } = stateOf(this)
  const { settings } = endpoint
  // With debug's frame lines on, the info lines would say the same again.
  const infoOn = logsAt(log, 'info') && !(settings.debug && logsAt(log, 'debug'))
  if (infoOn) log.info({ client: conn.peer, n: conn.messagesReceived, ...received(data, isBinary) }, 'message received')
  if (raw || isBinary) {
    reply(this, data, isBinary)
    return
  }
  reply(this, endpoint.envelope(data, conn.peer, conn.messagesReceived), false)
  if (infoOn) log.info({ client: conn.peer, message_id: conn.messagesReceived }, 'echo sent')
}

/** onMessage for a connection with lab controls: the same reply, handed to its LabSession. */
function onLabMessage (this: WebSocket, data: Buffer, isBinary: boolean): void {
  if (!admit(this, data, isBinary)) return
  const { endpoint, conn, log, raw, lab } = stateOf(this)
  if (logsAt(log, 'info')) log.info({ client: conn.peer, n: conn.messagesReceived, ...received(data, isBinary) }, 'message received')
  lab!.reply(raw || isBinary ? data : endpoint.envelope(data, conn.peer, conn.messagesReceived), isBinary)
}

/** What the `message received` line says of a message: its size if binary, else the start of its text. */
function received (data: Buffer, isBinary: boolean): { bytes: number } | { text: string } {
  return isBinary ? { bytes: data.length } : { text: preview(data.toString()) }
}

function onError (this: WebSocket, err: NodeJS.ErrnoException): void {
  const { endpoint, conn, log } = stateOf(this)
  socketError(endpoint.registry, log, conn, err)
}

function onClose (this: WebSocket, code: number, reason: Buffer): void {
  const { endpoint, conn, log, lab } = stateOf(this)
  lab?.stop()
  log.info({ client: conn.peer, code, reason: preview(reason.toString()), messages: conn.messagesReceived, connections: endpoint.registry.connections.size }, 'client disconnected')
}

/**
 * Sends one reply. A client that does not read its replies would make them pile up in memory: past
 * ECHO_HIGH_WATER unsent bytes the endpoint stops reading from it, and resumes once the frame that
 * crossed the mark has been written out.
 */
function reply (socket: WebSocket, data: Buffer, isBinary: boolean): void {
  const { endpoint, conn, log } = stateOf(socket)
  const { direct } = conn
  conn.sent(data.length)
  if (endpoint.settings.debug) logFrame(log, conn, 'frame sent', conn.messagesSent, data, isBinary)
  if (socket.bufferedAmount + data.length <= ECHO_HIGH_WATER || socket.isPaused) {
    if (direct !== undefined && data.length <= DIRECT_MAX && socket.readyState === socket.OPEN) direct.write(dataFrame(data, isBinary))
    else socket.send(data, isBinary ? BINARY : TEXT)
    return
  }
  socket.pause()
  endpoint.registry.hit('echo_backpressure')
  log.warn({ client: conn.peer, buffered: socket.bufferedAmount }, 'client is not reading its echoes; paused reading from it until they drain')
  socket.send(data, isBinary ? BINARY : TEXT, () => { if (socket.readyState === socket.OPEN) socket.resume() })
}

/** One debug line per frame, each direction: its text, or hex for binary. */
function logFrame (log: FastifyBaseLogger, conn: Connection, what: 'frame received' | 'frame sent', n: number, data: Buffer, isBinary: boolean): void {
  if (!logsAt(log, 'debug')) return
  log.debug({
    client: conn.peer,
    n,
    opcode: isBinary ? 'binary' : 'text',
    bytes: data.length,
    ...(isBinary ? { hex: hexPreview(data) } : { text: preview(data.toString(), 2000) })
  }, what)
}

/** The echo plugin: an envelope echo at `path`, a plain one at `<path>/raw`. */
export const echo = endpointPlugin<EchoOptions>(PLUGIN, ECHO_MAX_PAYLOAD, echoRoutes)
