// The chat endpoint: a thin Fastify adapter over the framework-free chat core (src/chat/core.ts).
// It validates the options, opens each socket in the registry and feeds the core its frames.
import type { FastifyBaseLogger, FastifyPluginAsync, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import { DEFAULT_LIMITS, ENDPOINT_DEFAULTS } from '../src/limits.js'
import { addEndpoint, endpointPlugin, requestUser, socketError, upgradeRequired } from './registry.js'
import { directSocket, releaseUpgrade } from './ws-internals.js'
import { clientPeer, offerSubprotocols, subprotocolsOption } from './transport.js'
import { customEventAck, type JsonObject } from '../src/chat/messages.js'
import { ChatCore, CustomEventError, type ChatClient, type ChatEventHandler } from '../src/chat/core.js'
import type { ChatAdapter } from '../src/chat/adapter.js'
import { isRedisClient, type RedisClient } from '../src/chat/redis-client.js'
import { MemoryAdapter } from '../src/chat/memory-adapter.js'
import { onWatched } from '../src/lab/inspector.js'
import { integerOption, pathOption, stringOption, describe, knownOptions, type OptionKeys } from '../src/options.js'
import { preview } from '../src/format.js'
import { InvalidOptionError } from '../src/errors.js'

export { CustomEventError }

/** What a custom event handler knows about the client that sent the event. */
export interface CustomEventContext {
  /** The sender's `client_id`, as in its `welcome`. */
  clientId: number
  /** The sender's `address:port`. */
  client: string
  /** The request that opened the WebSocket (headers, `request.log`...). */
  request: FastifyRequest
}

/**
 * Answers a `custom_event`. What it returns (or resolves to) becomes the reply's `payload`;
 * `undefined` sends the default acknowledgement. A throw or rejection sends the sender an `error`
 * `custom_event_failed`: with the error's message if it is a CustomEventError, else a generic one.
 */
export type CustomEventHandler = ChatEventHandler<CustomEventContext>

export interface ChatOptions {
  /** Where the chat WebSocket listens (default `/ws`). */
  path?: string
  /** Name of the endpoint in /stats and /metrics (default `chat`); unique per app. */
  name?: string
  /** `server_info` in the welcome (default `echohub chat server`). */
  serverInfo?: string
  /** The welcome's `message` text. */
  welcomeMessage?: string
  /** Largest message in bytes (default 65536); a larger one closes the connection with 1009. */
  maxPayload?: number
  /** Messages per second per connection (default 20); `0` turns the rate limit off. */
  rateLimit?: number
  /** Messages a connection may send at once before the rate applies (default 40). */
  rateBurst?: number
  /** A client whose unsent bytes pass this is dropped as a slow consumer (default 4194304); `0` turns it off. */
  maxBuffered?: number
  /** Custom event handlers by `payload.action`, e.g. `{ add: ({ a, b }) => Number(a) + Number(b) }`. */
  customEvents?: Record<string, CustomEventHandler>
  /** Answers the custom events no `customEvents` entry takes (default: `{"status":"received","data":<payload>}`). */
  onCustomEvent?: CustomEventHandler
  /** Messages kept per room for `history` and resume (default 100); `0` keeps none. */
  historySize?: number
  /** Rooms one connection may be in (default 32). */
  maxRoomsPerClient?: number
  /** Rooms that exist at once (default 10000; across the cluster with a shared adapter). */
  maxRooms?: number
  /** A room with no member is forgotten, history included, this many ms after its last member left (default 300000). */
  roomTtl?: number
  /** All rooms' stored messages together in bytes, in memory (default 67108864); past it the oldest are evicted first. */
  historyMaxBytes?: number
  /** How long (ms) a message's `key` is remembered: a repeat within it is acked, not sent again (default 120000). */
  dedupeWindow?: number
  /** Message keys remembered at most in this process, the oldest forgotten first (default 100000). */
  dedupeMaxKeys?: number
  /**
   * Carries messages, history and presence (default: a new in-memory adapter, one process). A Redis
   * URL (`redis://127.0.0.1:6379`) or an ioredis client is short for a RedisAdapter on it with the
   * default prefix; build a RedisAdapter yourself for another prefix or a logger.
   */
  adapter?: ChatAdapter | string | RedisClient
  /** Subprotocols accepted, the first offered that is on the list (default none: no protocol header). */
  subprotocols?: string[]
}

const PLUGIN = 'echohub-chat'
export const CHAT_MAX_PAYLOAD = DEFAULT_LIMITS.chatMaxPayload
export const CHAT_RATE_LIMIT = DEFAULT_LIMITS.rateLimit
export const CHAT_RATE_BURST = DEFAULT_LIMITS.rateBurst
export const CHAT_MAX_BUFFERED = DEFAULT_LIMITS.maxBuffered

const OPTION_KEYS: OptionKeys<ChatOptions> = {
  path: true,
  name: true,
  serverInfo: true,
  welcomeMessage: true,
  maxPayload: true,
  rateLimit: true,
  rateBurst: true,
  maxBuffered: true,
  customEvents: true,
  onCustomEvent: true,
  historySize: true,
  maxRoomsPerClient: true,
  maxRooms: true,
  roomTtl: true,
  historyMaxBytes: true,
  dedupeWindow: true,
  dedupeMaxKeys: true,
  adapter: true,
  subprotocols: true
}

function readOptions (opts: ChatOptions) {
  if (opts === null || typeof opts !== 'object') throw new InvalidOptionError(PLUGIN, 'options', 'must be an object')
  knownOptions(PLUGIN, opts, OPTION_KEYS)
  const handlers = new Map<string, CustomEventHandler>()
  if (opts.customEvents !== undefined) {
    if (opts.customEvents === null || typeof opts.customEvents !== 'object' || Array.isArray(opts.customEvents)) {
      throw new InvalidOptionError(PLUGIN, 'customEvents', `must be an object of handler functions keyed by payload.action, got ${describe(opts.customEvents)}`)
    }
    for (const [action, handler] of Object.entries(opts.customEvents)) {
      if (typeof handler !== 'function') {
        throw new InvalidOptionError(PLUGIN, `customEvents.${action}`, `must be a function, got ${describe(handler)}`)
      }
      handlers.set(action, handler)
    }
  }
  if (opts.onCustomEvent !== undefined && typeof opts.onCustomEvent !== 'function') {
    throw new InvalidOptionError(PLUGIN, 'onCustomEvent', `must be a function, got ${describe(opts.onCustomEvent)}`)
  }
  return {
    path: pathOption(PLUGIN, opts, 'path', ENDPOINT_DEFAULTS.chat.path),
    name: stringOption(PLUGIN, opts, 'name', ENDPOINT_DEFAULTS.chat.name),
    serverInfo: stringOption(PLUGIN, opts, 'serverInfo', ENDPOINT_DEFAULTS.chat.serverInfo),
    welcomeMessage: stringOption(PLUGIN, opts, 'welcomeMessage', ENDPOINT_DEFAULTS.chat.welcomeMessage),
    maxPayload: integerOption(PLUGIN, opts, 'maxPayload', CHAT_MAX_PAYLOAD, 1),
    rateLimit: integerOption(PLUGIN, opts, 'rateLimit', CHAT_RATE_LIMIT, 0),
    rateBurst: integerOption(PLUGIN, opts, 'rateBurst', CHAT_RATE_BURST, 1),
    maxBuffered: integerOption(PLUGIN, opts, 'maxBuffered', CHAT_MAX_BUFFERED, 0),
    historySize: integerOption(PLUGIN, opts, 'historySize', DEFAULT_LIMITS.historySize, 0),
    maxRoomsPerClient: integerOption(PLUGIN, opts, 'maxRoomsPerClient', DEFAULT_LIMITS.maxRoomsPerClient, 1),
    maxRooms: integerOption(PLUGIN, opts, 'maxRooms', DEFAULT_LIMITS.maxRooms, 1),
    roomTtl: integerOption(PLUGIN, opts, 'roomTtl', DEFAULT_LIMITS.roomTtl, 0),
    historyMaxBytes: integerOption(PLUGIN, opts, 'historyMaxBytes', DEFAULT_LIMITS.historyMaxBytes, 0),
    dedupeWindow: integerOption(PLUGIN, opts, 'dedupeWindow', DEFAULT_LIMITS.dedupeWindow, 0),
    dedupeMaxKeys: integerOption(PLUGIN, opts, 'dedupeMaxKeys', DEFAULT_LIMITS.dedupeMaxKeys, 0),
    adapter: adapterOption(opts.adapter),
    subprotocols: subprotocolsOption(PLUGIN, opts, [], false),
    handlers,
    fallback: opts.onCustomEvent ?? ((payload: JsonObject) => customEventAck(payload))
  }
}

/** The adapter, or the Redis (URL or ioredis client) to build a RedisAdapter on once the plugin runs. */
function adapterOption (adapter: unknown): ChatAdapter | { redis: string | RedisClient } {
  if (adapter === undefined) return new MemoryAdapter()
  if (typeof adapter === 'string') {
    if (!/^rediss?:\/\/./.test(adapter)) throw new InvalidOptionError(PLUGIN, 'adapter', `as a string must be a Redis URL like redis://127.0.0.1:6379, got ${describe(adapter)}`)
    return { redis: adapter }
  }
  const a = adapter as Partial<ChatAdapter> | null
  // An ioredis client: it can duplicate itself, which is what the adapter does with it.
  if (isRedisClient(adapter)) return { redis: adapter }
  const methods = ['start', 'publish', 'join', 'leave', 'history', 'rooms', 'close'] as const
  if (a === null || typeof a !== 'object' || methods.some((m) => typeof a[m] !== 'function')) {
    throw new InvalidOptionError(PLUGIN, 'adapter', `must be a ChatAdapter (an object with ${methods.join(', ')}), a Redis URL or an ioredis client, got ${describe(adapter)}`)
  }
  return a as ChatAdapter
}

/** Redis is loaded only by a chat that uses it. */
async function resolveAdapter (option: ChatAdapter | { redis: string | RedisClient }): Promise<ChatAdapter> {
  if (!('redis' in option)) return option
  const { RedisAdapter } = await import('../src/chat/redis-adapter.js')
  return new RedisAdapter(option.redis)
}

/** A chat connection's client, kept on its socket so one set of listener functions serves every socket. */
const kChat = Symbol('echohub.chat')
type ChatWebSocket = WebSocket & { [kChat]: { core: ChatCore<CustomEventContext>, client: ChatClient<CustomEventContext> } }

function onMessage (this: WebSocket, data: Buffer, isBinary: boolean): void {
  const { core, client } = (this as ChatWebSocket)[kChat]
  core.receive(client, data, isBinary)
}

function onError (this: WebSocket, err: NodeJS.ErrnoException): void {
  const { core, client } = (this as ChatWebSocket)[kChat]
  // The client's logger is the request's (see accept).
  socketError(core.registry, client.log as FastifyBaseLogger, client.conn, err)
}

function onClose (this: WebSocket, code: number, reason: Buffer): void {
  const { core, client } = (this as ChatWebSocket)[kChat]
  const { conn, log } = client
  core.closed(client)
  log.info({ client: conn.peer, client_id: conn.id, code, reason: preview(reason.toString()), messages: conn.messagesReceived, connections: core.registry.connections.size }, 'chat client disconnected')
}

const chatRoutes: FastifyPluginAsync<ChatOptions> = async (app, opts) => {
  const { path, name, adapter: adapterOpt, handlers, fallback, subprotocols, ...settings } = readOptions(opts)
  const adapter = await resolveAdapter(adapterOpt)
  const registry = app.echohub
  const endpoint = addEndpoint(app, PLUGIN, name)
  Object.assign(endpoint.limits, {
    max_payload: settings.maxPayload,
    rate_limit: settings.rateLimit,
    rate_burst: settings.rateBurst,
    max_buffered: settings.maxBuffered,
    history_size: settings.historySize,
    max_rooms_per_client: settings.maxRoomsPerClient,
    max_rooms: settings.maxRooms,
    room_ttl_ms: settings.roomTtl,
    history_max_bytes: settings.historyMaxBytes,
    dedupe_window_ms: settings.dedupeWindow,
    dedupe_max_keys: settings.dedupeMaxKeys
  })
  const refresh = app.echohubAccess.identity?.refresh
  const core = new ChatCore<CustomEventContext>({ settings, registry, adapter, log: app.log, handlers, fallback, ...(refresh === undefined ? {} : { refresh }) })
  await core.start()
  endpoint.idBase = adapter.clientIdBase
  registry.chats.set(name, core)
  app.addHook('onClose', async () => {
    registry.chats.delete(name)
    await core.close()
  })

  function accept (socket: WebSocket, request: FastifyRequest): void {
    const conn = registry.attach(socket, endpoint, { ...clientPeer(request), path: request.url, user: requestUser(request) })
    const log = request.log
    const direct = directSocket(socket, request)
    conn.direct = direct
    const client = core.accept(socket, conn, log, { clientId: conn.id, client: conn.peer, request })
    ;(socket as ChatWebSocket)[kChat] = { core, client }
    // Broadcasts written as pre-framed bytes pass the inspector's tap: while one watches this
    // client, they go through the socket's send like every other frame.
    if (direct !== undefined) onWatched(socket, (watched) => { conn.direct = watched ? undefined : direct })
    log.info({ client: conn.peer, client_id: conn.id, ...(conn.user === undefined ? {} : { user: conn.user.id }), connections: registry.connections.size, chat_clients: core.clients.size }, 'chat client connected')
    releaseUpgrade(socket, request)
    socket.on('message', onMessage)
    socket.on('error', onError)
    socket.on('close', onClose)
  }

  app.addHook('onRequest', offerSubprotocols(subprotocols))
  app.route({ method: 'GET', url: path, handler: upgradeRequired, wsHandler: accept })
}

/** The chat plugin: broadcast chat with rooms at `path` (default `/ws`). */
export const chat = endpointPlugin<ChatOptions>(PLUGIN, CHAT_MAX_PAYLOAD, chatRoutes)
