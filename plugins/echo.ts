// The echo endpoint: a JSON envelope for each text message, byte-exact binary echo, a plain echo
// at `<path>/raw`, an optional welcome, and a debug mode that logs every frame.
import type { FastifyBaseLogger, FastifyPluginAsync, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import { addEndpoint, endpointPlugin, releaseUpgrade, socketError, tooBig, upgradeRequired } from './registry.js'
import type { Connection, ConnectionRegistry, EndpointStats } from '../src/registry.js'
import { echoEnvelopeSerializer, echoWelcome } from '../src/messages.js'
import { booleanOption, integerOption, pathOption, stringOption } from '../src/options.js'
import { hexPreview, logsAt, preview } from '../src/format.js'
import { InvalidOptionError } from '../src/errors.js'
import { DEFAULT_LIMITS } from '../src/limits.js'
import { redactToken } from '../src/access.js'

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
}

const PLUGIN = 'echohub-echo'
export const ECHO_MAX_PAYLOAD = DEFAULT_LIMITS.echoMaxPayload
/** Unsent bytes per client above which the echo stops reading from it. */
export const ECHO_HIGH_WATER = 1024 * 1024
const TEXT = { binary: false } as const
const BINARY = { binary: true } as const

interface Settings {
  name: string
  serverInfo: string
  welcome: string | undefined
  debug: boolean
  maxPayload: number
}

function readOptions (opts: EchoOptions) {
  if (opts === null || typeof opts !== 'object') throw new InvalidOptionError(PLUGIN, 'options', 'must be an object')
  const path = pathOption(PLUGIN, opts, 'path', '/')
  const welcome = booleanOption(PLUGIN, opts, 'welcome', false)
  return {
    path,
    raw: booleanOption(PLUGIN, opts, 'raw', true),
    anyPath: booleanOption(PLUGIN, opts, 'anyPath', path === '/'),
    settings: {
      name: stringOption(PLUGIN, opts, 'name', 'echo'),
      serverInfo: stringOption(PLUGIN, opts, 'serverInfo', 'echohub echo server'),
      welcome: welcome ? stringOption(PLUGIN, opts, 'welcomeMessage', 'Welcome to the echohub echo server!') : undefined,
      debug: booleanOption(PLUGIN, opts, 'debug', false),
      maxPayload: integerOption(PLUGIN, opts, 'maxPayload', ECHO_MAX_PAYLOAD, 1)
    } satisfies Settings
  }
}

/** What every connection of one echo endpoint shares. */
interface EchoEndpoint {
  registry: ConnectionRegistry
  stats: EndpointStats
  settings: Settings
  envelope: ReturnType<typeof echoEnvelopeSerializer>
}

/** A connection's state, kept on its socket so one set of listener functions serves every socket. */
interface EchoState {
  endpoint: EchoEndpoint
  conn: Connection
  log: FastifyBaseLogger
  /** The plain echo of `/raw`: no envelope. */
  raw: boolean
}

const kEcho = Symbol('echohub.echo')
type EchoSocket = WebSocket & { [kEcho]: EchoState }
const stateOf = (socket: WebSocket): EchoState => (socket as EchoSocket)[kEcho]

const echoRoutes: FastifyPluginAsync<EchoOptions> = async (app, opts) => {
  const { path, raw, anyPath, settings } = readOptions(opts)
  const registry = app.echohub
  const stats = addEndpoint(registry, PLUGIN, settings.name)
  stats.limits.max_payload = settings.maxPayload
  const endpoint: EchoEndpoint = { registry, stats, settings, envelope: echoEnvelopeSerializer(settings.serverInfo) }

  const envelopeEcho = (socket: WebSocket, request: FastifyRequest) => accept(endpoint, socket, request, false)
  const rawEcho = (socket: WebSocket, request: FastifyRequest) => accept(endpoint, socket, request, true)
  app.route({ method: 'GET', url: path, handler: upgradeRequired, wsHandler: envelopeEcho })
  if (raw) app.route({ method: 'GET', url: path === '/' ? '/raw' : `${path}/raw`, handler: upgradeRequired, wsHandler: rawEcho })
  if (anyPath) app.route({ method: 'GET', url: path === '/' ? '/*' : `${path}/*`, handler: upgradeRequired, wsHandler: envelopeEcho })
}

/** Opens the connection in the registry and wires the listeners every echo socket needs. */
function accept (endpoint: EchoEndpoint, ws: WebSocket, request: FastifyRequest, raw: boolean): void {
  const { registry, settings } = endpoint
  const conn = registry.open(endpoint.stats, request.raw.socket?.remoteAddress, request.raw.socket?.remotePort)
  const socket = ws as EchoSocket
  socket[kEcho] = { endpoint, conn, log: request.log, raw }
  request.log.info({ client: conn.peer, connections: registry.connections.size, path: redactToken(request.url) }, 'client connected')
  releaseUpgrade(socket, request)
  socket.on('message', onMessage)
  socket.on('error', onError)
  socket.on('close', onClose)
  if (settings.welcome !== undefined && !raw) {
    reply(socket, Buffer.from(echoWelcome(settings.welcome, conn.id, settings.serverInfo)), false)
  }
}

function onMessage (this: WebSocket, data: Buffer, isBinary: boolean): void {
  const { endpoint, conn, log, raw } = stateOf(this)
  const { settings } = endpoint
  conn.received(data.length)
  if (data.length > settings.maxPayload) {
    tooBig(endpoint.registry, log, this, conn, settings.maxPayload)
    return
  }
  if (settings.debug) logFrame(log, conn, data, isBinary)
  const infoOn = logsAt(log, 'info')
  if (raw || isBinary) {
    if (infoOn) log.info({ client: conn.peer, n: conn.messagesReceived, ...(isBinary ? { bytes: data.length } : { text: preview(data.toString()) }) }, 'message received')
    reply(this, data, isBinary)
    return
  }
  const text = data.toString()
  if (infoOn) log.info({ client: conn.peer, n: conn.messagesReceived, text: preview(text) }, 'message received')
  reply(this, Buffer.from(endpoint.envelope(text, conn.peer, conn.messagesReceived)), false)
  if (infoOn) log.info({ client: conn.peer, message_id: conn.messagesReceived }, 'echo sent')
}

function onError (this: WebSocket, err: NodeJS.ErrnoException): void {
  const { endpoint, conn, log } = stateOf(this)
  socketError(endpoint.registry, log, conn, err)
}

function onClose (this: WebSocket, code: number, reason: Buffer): void {
  const { endpoint, conn, log } = stateOf(this)
  conn.remove()
  log.info({ client: conn.peer, code, reason: preview(reason.toString()), messages: conn.messagesReceived, connections: endpoint.registry.connections.size }, 'client disconnected')
}

/**
 * Sends one reply. A client that does not read its replies would make them pile up in memory: past
 * ECHO_HIGH_WATER unsent bytes the endpoint stops reading from it, and resumes once the frame that
 * crossed the mark has been written out.
 */
function reply (socket: WebSocket, data: Buffer, isBinary: boolean): void {
  const { endpoint, conn, log } = stateOf(socket)
  conn.sent(data.length)
  if (socket.bufferedAmount + data.length <= ECHO_HIGH_WATER || socket.isPaused) {
    socket.send(data, isBinary ? BINARY : TEXT)
    return
  }
  socket.pause()
  endpoint.registry.hit('echo_backpressure')
  log.warn({ client: conn.peer, buffered: socket.bufferedAmount }, 'client is not reading its echoes; paused reading from it until they drain')
  socket.send(data, isBinary ? BINARY : TEXT, () => { if (socket.readyState === socket.OPEN) socket.resume() })
}

function logFrame (log: FastifyBaseLogger, conn: Connection, data: Buffer, isBinary: boolean): void {
  if (!logsAt(log, 'debug')) return
  log.debug({
    client: conn.peer,
    n: conn.messagesReceived,
    opcode: isBinary ? 'binary' : 'text',
    bytes: data.length,
    ...(isBinary ? { hex: hexPreview(data) } : { text: preview(data.toString(), 2000) })
  }, 'frame received')
}

/** The echo plugin: an envelope echo at `path`, a plain one at `<path>/raw`. */
export const echo = endpointPlugin<EchoOptions>(PLUGIN, ECHO_MAX_PAYLOAD, echoRoutes)
