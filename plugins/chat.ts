// The chat endpoint: each client's `message` is broadcast to every chat client (the sender too),
// a `custom_event` is answered to its sender by the library user's handlers, `ping` gets `pong`.
// Its own limits: message size, a token bucket per connection, and a cap on unsent bytes per client.
import type { FastifyBaseLogger, FastifyPluginAsync, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import { Socket } from 'node:net'
import { DEFAULT_LIMITS } from '../src/limits.js'
import { addEndpoint, endpointPlugin, releaseUpgrade, socketError, tooBig, upgradeRequired } from './registry.js'
import type { Connection } from '../src/registry.js'
import {
  chatCustomEventReply,
  chatError,
  chatMessage,
  chatPong,
  chatWelcome,
  customEventAck,
  parseChatFrame,
  type ChatErrorCode,
  type JsonObject,
  type JsonValue
} from '../src/chat-messages.js'
import { TokenBucket } from '../src/rate-limit.js'
import { textFrame } from '../src/frames.js'
import { integerOption, pathOption, stringOption, describe } from '../src/options.js'
import { logsAt, preview } from '../src/format.js'
import { InvalidOptionError } from '../src/errors.js'

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
export type CustomEventHandler = (payload: JsonObject, context: CustomEventContext) =>
  JsonValue | undefined | Promise<JsonValue | undefined>

/** Throw it from a custom event handler to tell the client why its event was refused. */
export class CustomEventError extends Error {
  override name = 'CustomEventError'
}

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
}

const PLUGIN = 'echohub-chat'
export const CHAT_MAX_PAYLOAD = DEFAULT_LIMITS.chatMaxPayload
export const CHAT_RATE_LIMIT = DEFAULT_LIMITS.rateLimit
export const CHAT_RATE_BURST = DEFAULT_LIMITS.rateBurst
export const CHAT_MAX_BUFFERED = DEFAULT_LIMITS.maxBuffered
const TEXT = { binary: false } as const
const OPEN = 1 // WebSocket.OPEN

/** One chat client: its socket, its registry entry and its rate limit state. */
interface Client {
  socket: WebSocket
  /**
   * The TCP socket under `socket`, when broadcasts may be written to it directly: a real
   * connection without extensions, whose frames ws writes straight through in order.
   */
  tcp: Socket | undefined
  conn: Connection
  /** The logger of the request that opened the connection: every line about this client uses it. */
  log: FastifyBaseLogger
  bucket: TokenBucket | undefined
  /** Messages dropped by the rate limit since the last one let through. */
  droppedInARow: number
  context: CustomEventContext
}

function readOptions (opts: ChatOptions) {
  if (opts === null || typeof opts !== 'object') throw new InvalidOptionError(PLUGIN, 'options', 'must be an object')
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
    path: pathOption(PLUGIN, opts, 'path', '/ws'),
    name: stringOption(PLUGIN, opts, 'name', 'chat'),
    serverInfo: stringOption(PLUGIN, opts, 'serverInfo', 'echohub chat server'),
    welcomeMessage: stringOption(PLUGIN, opts, 'welcomeMessage', 'Welcome to the echohub chat!'),
    maxPayload: integerOption(PLUGIN, opts, 'maxPayload', CHAT_MAX_PAYLOAD, 1),
    rateLimit: integerOption(PLUGIN, opts, 'rateLimit', CHAT_RATE_LIMIT, 0),
    rateBurst: integerOption(PLUGIN, opts, 'rateBurst', CHAT_RATE_BURST, 1),
    maxBuffered: integerOption(PLUGIN, opts, 'maxBuffered', CHAT_MAX_BUFFERED, 0),
    handlers,
    fallback: opts.onCustomEvent ?? ((payload: JsonObject) => customEventAck(payload))
  }
}

const chatRoutes: FastifyPluginAsync<ChatOptions> = async (app, opts) => {
  const settings = readOptions(opts)
  const { maxPayload, rateLimit, rateBurst, maxBuffered } = settings
  // A client still flooding after this many drops in a row is closed: it is not slowing down.
  const floodAfter = 2 * rateBurst
  const registry = app.echohub
  const endpoint = addEndpoint(registry, PLUGIN, settings.name)
  Object.assign(endpoint.limits, { max_payload: maxPayload, rate_limit: rateLimit, rate_burst: rateBurst, max_buffered: maxBuffered })

  const clients = new Set<Client>()
  /** Numbers broadcast messages of this endpoint from 1. */
  let lastMessageId = 0

  /** Sends one frame to one client, then drops the client if it is not reading what it is sent. */
  function deliver (client: Client, data: Buffer): void {
    if (client.socket.readyState !== OPEN) return
    // A reply must not overtake broadcasts already queued for this client.
    if (pending.length > 0) flush()
    client.socket.send(data, TEXT)
    client.conn.sent(data.length)
    checkBuffered(client)
  }

  function checkBuffered (client: Client): void {
    if (maxBuffered > 0 && client.socket.bufferedAmount > maxBuffered) dropSlowConsumer(client)
  }

  // Broadcasts are queued and written out once per turn of the event loop: every message that
  // arrived in one read is framed once, joined into one buffer, and that same buffer is written
  // to each client in a single write.
  const pending: Buffer[] = []
  let pendingBytes = 0

  function queueBroadcast (data: Buffer): void {
    if (pending.length === 0) setImmediate(flush)
    pending.push(data)
    pendingBytes += data.length
  }

  function flush (): void {
    if (pending.length === 0) return
    const messages = pending.splice(0)
    const bytes = pendingBytes
    pendingBytes = 0
    const framed = messages.length === 1 ? textFrame(messages[0]!) : Buffer.concat(messages.map(textFrame))
    for (const client of clients) {
      if (client.socket.readyState !== OPEN) continue
      if (client.tcp !== undefined) {
        client.tcp.write(framed)
        client.conn.sent(bytes, messages.length)
      } else {
        for (const data of messages) {
          client.socket.send(data, TEXT)
          client.conn.sent(data.length)
        }
      }
      checkBuffered(client)
    }
  }

  function dropSlowConsumer (client: Client): void {
    const { log } = client
    if (!clients.delete(client)) return
    registry.hit('slow_consumer')
    log.warn({ client: client.conn.peer, buffered: client.socket.bufferedAmount, max_buffered: maxBuffered }, 'slow consumer: unsent bytes over the cap; connection dropped')
    // A close frame would wait behind the unread bytes; cut the connection so its memory is freed now.
    client.socket.terminate()
  }

  function reply (client: Client, frame: string): void {
    deliver(client, Buffer.from(frame))
  }

  function refuse (client: Client, code: ChatErrorCode, message: string): void {
    const { log } = client
    if (logsAt(log, 'debug')) log.debug({ client: client.conn.peer, code }, 'bad input answered with an error')
    reply(client, chatError(code, message))
  }

  /** The token bucket said no: drop the message with `rate_limited`, and close a client that keeps on. */
  function rateLimited (client: Client): void {
    const { log } = client
    client.droppedInARow++
    registry.hit('rate_limited')
    if (client.droppedInARow >= floodAfter) {
      registry.hit('rate_flood')
      log.warn({ client: client.conn.peer, dropped: client.droppedInARow }, 'client keeps flooding past the rate limit; connection closed with 1008')
      client.socket.close(1008, 'too many messages: over the rate limit')
      return
    }
    log.warn({ client: client.conn.peer, rate_limit: rateLimit, rate_burst: rateBurst }, 'rate limit hit; message dropped')
    reply(client, chatError('rate_limited', `Too many messages: at most ${rateLimit} per second (bursts of ${rateBurst}). This one was dropped; slow down.`))
  }

  function broadcast (from: Client, payload: JsonValue): void {
    const { log } = from
    let payloadJson: string
    try {
      payloadJson = JSON.stringify(payload)
    } catch {
      // JSON.parse accepts nesting deeper than JSON.stringify can write back.
      refuse(from, 'invalid_message', 'The payload is nested too deeply to be sent on.')
      return
    }
    const id = ++lastMessageId
    const data = Buffer.from(chatMessage(payloadJson, from.conn.id, id))
    queueBroadcast(data)
    if (logsAt(log, 'debug')) log.debug({ client: from.conn.peer, id, recipients: clients.size, bytes: data.length }, 'message broadcast')
  }

  function customEvent (client: Client, payload: JsonObject): void {
    const { log } = client
    if (!serializable(payload)) {
      refuse(client, 'invalid_message', 'The payload is nested too deeply to be answered.')
      return
    }
    const action = payload.action
    const handler = (typeof action === 'string' ? settings.handlers.get(action) : undefined) ?? settings.fallback
    const answer = (result: JsonValue | undefined) => {
      let frame: string
      try {
        frame = chatCustomEventReply(result === undefined ? customEventAck(payload) : result)
      } catch (err) {
        failed(err)
        return
      }
      reply(client, frame)
    }
    const failed = (err: unknown) => {
      const known = err instanceof CustomEventError
      log[known ? 'info' : 'error']({ client: client.conn.peer, action, err }, 'custom event handler failed')
      refuse(client, 'custom_event_failed', known ? err.message : 'The server could not handle this custom_event.')
    }
    let result: ReturnType<CustomEventHandler>
    try {
      result = handler(payload, client.context)
    } catch (err) {
      failed(err)
      return
    }
    // A synchronous handler answers at once, so its reply keeps its place among the client's frames.
    if (isPromiseLike(result)) result.then(answer, failed)
    else answer(result)
  }

  function onMessage (client: Client, data: Buffer, isBinary: boolean): void {
    const { log } = client
    const { conn, socket } = client
    conn.received(data.length)
    if (socket.readyState !== OPEN) return
    if (data.length > maxPayload) {
      tooBig(registry, log, socket, conn, maxPayload)
      return
    }
    if (client.bucket !== undefined) {
      if (!client.bucket.take()) {
        rateLimited(client)
        return
      }
      client.droppedInARow = 0
    }
    if (isBinary) {
      refuse(client, 'binary_not_supported', 'Binary frames are not supported here: send JSON as a text frame.')
      return
    }
    const text = data.toString()
    if (logsAt(log, 'info')) log.info({ client: conn.peer, n: conn.messagesReceived, text: preview(text) }, 'message received')
    const parsed = parseChatFrame(text)
    if (!parsed.ok) {
      refuse(client, parsed.code, parsed.message)
      return
    }
    const frame = parsed.frame
    switch (frame.type) {
      case 'message':
        broadcast(client, frame.payload)
        break
      case 'custom_event':
        customEvent(client, frame.payload)
        break
      case 'ping':
        reply(client, chatPong())
        break
    }
  }

  function accept (socket: WebSocket, request: FastifyRequest): void {
    const tcp = request.raw.socket
    const conn = registry.open(endpoint, tcp?.remoteAddress, tcp?.remotePort)
    const log = request.log
    const client: Client = {
      socket,
      tcp: tcp instanceof Socket && socket.extensions === '' ? tcp : undefined,
      conn,
      log,
      bucket: rateLimit > 0 ? new TokenBucket(rateLimit, rateBurst) : undefined,
      droppedInARow: 0,
      context: { clientId: conn.id, client: conn.peer, request }
    }
    // Welcomed before it joins: a broadcast queued meanwhile must not reach it ahead of its welcome.
    reply(client, chatWelcome(conn.id, settings.welcomeMessage, settings.serverInfo))
    clients.add(client)
    log.info({ client: conn.peer, client_id: conn.id, connections: registry.connections.size, chat_clients: clients.size }, 'chat client connected')
    releaseUpgrade(socket, request)
    socket.on('message', (data: Buffer, isBinary: boolean) => onMessage(client, data, isBinary))
    socket.on('error', (err: NodeJS.ErrnoException) => socketError(registry, log, conn, err))
    socket.on('close', (code: number, reason: Buffer) => {
      clients.delete(client)
      conn.remove()
      log.info({ client: conn.peer, client_id: conn.id, code, reason: preview(reason.toString()), messages: conn.messagesReceived, connections: registry.connections.size }, 'chat client disconnected')
    })
  }

  app.route({ method: 'GET', url: settings.path, handler: upgradeRequired, wsHandler: accept })
}

/** JSON.parse accepts nesting deeper than JSON.stringify can write back; such a payload cannot be answered. */
function serializable (value: JsonValue): boolean {
  try {
    JSON.stringify(value)
    return true
  } catch {
    return false
  }
}

function isPromiseLike<T> (value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}

/** The chat plugin: broadcast chat at `path` (default `/ws`). */
export const chat = endpointPlugin<ChatOptions>(PLUGIN, CHAT_MAX_PAYLOAD, chatRoutes)
