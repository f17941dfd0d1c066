// The seven places echohub relies on how `ws` and @fastify/websocket work inside, beyond their
// documented API. Kept together, each with a test in test/ws-internals.test.ts that fails when a
// new version changes the behaviour relied on (both packages are pinned with `~` for that reason).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { Socket } from 'node:net'
import type { ServerOptions, WebSocket, WebSocketServer } from 'ws'
import { DEFLATE_WINDOW_BITS } from '../src/transport/compression.js'
import { oversizeReason } from '../src/format.js'
import type { DirectWriter } from '../src/registry.js'

/** The ServerResponse @fastify/websocket made for each upgrade that echohub's own @fastify/websocket handles. */
const upgradeResponses = new WeakMap<IncomingMessage, ServerResponse>()

/**
 * Notes an upgrade whose @fastify/websocket echohub registered itself, so `releaseUpgrade` may
 * later drop what the library keeps for it. Call from an `onRequest` hook of an echohub route.
 */
export function rememberUpgrade (request: FastifyRequest, reply: FastifyReply): void {
  upgradeResponses.set(request.raw, reply.raw)
}

/**
 * Lets go of what an open WebSocket does not need. @fastify/websocket keeps the upgrade's Fastify
 * request and reply alive for as long as the connection lasts (its per-socket error listener closes
 * over them, and the reply's ServerResponse stays attached to the TCP socket, holding Node's
 * IncomingMessage): about 3 KB on every idle connection. Where echohub registered the library
 * itself, that listener only reaches echohub's errorHandler, which has nothing to do for socket
 * errors (ws has already closed the socket; the endpoint's own listener logs and counts them), so
 * it is dropped and the response detached. An app that registered @fastify/websocket with its own
 * errorHandler keeps it. Call in the handler before adding the endpoint's own `error` listener.
 *
 * Relies on: @fastify/websocket adds its `error` listener last, right before calling the handler,
 * and the reply's ServerResponse is the one assigned to the upgrade's TCP socket.
 */
export function releaseUpgrade (socket: WebSocket, request: FastifyRequest): void {
  const response = upgradeResponses.get(request.raw)
  if (response === undefined) return
  upgradeResponses.delete(request.raw)
  const libraryListener = socket.listeners('error').at(-1)
  if (libraryListener !== undefined) socket.removeListener('error', libraryListener as (err: Error) => void)
  if (request.raw.socket !== undefined && request.raw.socket !== null) response.detachSocket(request.raw.socket)
}

/** What of ws's own state `directSocket` reads. */
interface WsInternals {
  _extensions: Record<string, { params: { server_no_context_takeover?: boolean, server_max_window_bits?: number } | null } | undefined>
  _sender: { _state: number }
}

/** ws's Sender state when it holds nothing back (not compressing, not reading a Blob). */
const SENDER_IDLE = 0

/**
 * Where pre-framed bytes may be written to a WebSocket's TCP socket directly, else undefined.
 * Without extensions ws's Sender writes each frame straight to that socket, in call order, so
 * frames written past it keep their place among ws's own; and ws counts the socket's unsent bytes
 * in `bufferedAmount`, so slow-consumer checks still see them. With permessage-deflate it is the
 * same while the Sender is idle; while it compresses a frame it queues the ones after it, so direct
 * bytes are written only while `deflate.idle()`. That needs server_no_context_takeover (a message
 * compressed elsewhere would otherwise break the context ws's deflater and the client share) and a
 * window of at least DEFLATE_WINDOW_BITS. Never mix with `send` of a Blob.
 */
export function directSocket (socket: WebSocket, request: FastifyRequest): DirectWriter | undefined {
  const tcp = request.raw.socket
  if (!(tcp instanceof Socket)) return undefined
  if (socket.extensions === '') return tcp
  if (socket.extensions !== 'permessage-deflate') return undefined
  const ws = socket as unknown as WsInternals
  const params = ws._extensions['permessage-deflate']?.params
  if (params?.server_no_context_takeover !== true || (params.server_max_window_bits ?? 15) < DEFLATE_WINDOW_BITS) return undefined
  const sender = ws._sender
  return { write: (data) => tcp.write(data), deflate: { idle: () => sender._state === SENDER_IDLE } }
}

/**
 * Raises the largest message the WebSocket server accepts, after it was built (an endpoint
 * registered later may allow larger messages than the first). ws reads `options.maxPayload` at
 * each upgrade, so connections opened from then on get the new cap; open ones keep theirs.
 */
export function raiseMaxPayload (server: WebSocketServer, maxPayload: number): void {
  const options = server.options
  if (maxPayload > (options.maxPayload ?? 0)) options.maxPayload = maxPayload
}

/**
 * Lets a client have `pending` pongs not yet written before ws cuts it off. ws (from 8.18) ends a
 * connection without a close frame once `maxPendingAutoPongs` (default 60) pongs wait to be
 * written, which a client sending many pings in one write reaches at once; echohub counts pings
 * and pongs itself (`--max-control-frames`) and closes such a client with 1008, so ws's cut-off is
 * raised above that count and stays only as the backstop for a client that pings without reading.
 * ws reads the option at each upgrade (it builds each WebSocket from the server's options).
 */
export function allowPendingPongs (server: WebSocketServer, pending: number): void {
  const options = server.options as ServerOptions & { maxPendingAutoPongs?: number }
  const current = options.maxPendingAutoPongs ?? 0
  if (current > 0 && pending > current) options.maxPendingAutoPongs = pending
}

export type HandleProtocols = NonNullable<ServerOptions['handleProtocols']>

/**
 * Replaces the subprotocol decision of a WebSocket server after it was built (the app registered
 * @fastify/websocket before echohub): `make` gets the app's own `handleProtocols`, if any, and
 * returns the one to use. ws reads `options.handleProtocols` at each upgrade, not once when the
 * server is built, so upgrades from then on get the new one.
 */
export function replaceHandleProtocols (server: WebSocketServer, make: (current: HandleProtocols | undefined) => HandleProtocols): void {
  server.options.handleProtocols = make(server.options.handleProtocols ?? undefined)
}

/** What ws's Receiver holds of the message it is reading: bytes announced so far (inflated, with compression). */
interface ReceiverInternals {
  _maxPayload: number
  _totalPayloadLength: number
  _messageLength: number
  on: (event: 'error', listener: (err: NodeJS.ErrnoException) => void) => void
  prependListener: (event: 'error', listener: (err: NodeJS.ErrnoException) => void) => void
}

/** A message too big for ws's own cap, as echohub told the client: its size and the limit named. */
export interface Oversize {
  bytes: number
  limit: number
  reason: string
}

/** The oversize each ws error stood for, for the endpoint's `error` listener to log. */
const oversizes = new WeakMap<Error, Oversize>()

/** What `explainOversize` told the client for this `error` of a socket, if it was a message too big. */
export function oversizeOf (err: Error): Oversize | undefined {
  return oversizes.get(err)
}

/**
 * Gives a message over ws's own `maxPayload` a close reason. ws refuses such a message as soon as
 * its header announces too many bytes (nothing of it is buffered), but closes with a bare 1009: a
 * client cannot tell which limit it hit. Here the close frame names the size and the limit (the
 * endpoint's, or ws's where that is lower); ws's own close that follows finds the socket closing
 * and sends nothing more.
 *
 * Relies on: ws's Receiver emits `error` (code WS_ERR_UNSUPPORTED_MESSAGE_LENGTH) before the
 * WebSocket closes and re-emits it, and keeps the bytes counted so far in `_totalPayloadLength`
 * (`_messageLength` once inflated).
 */
export function explainOversize (socket: WebSocket, endpointLimit: number): void {
  const receiver = (socket as unknown as { _receiver: ReceiverInternals | null })._receiver
  if (receiver === null) return
  receiver.prependListener('error', (err) => {
    if (err.code !== 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' || socket.readyState !== socket.OPEN) return
    const bytes = Math.max(receiver._totalPayloadLength, receiver._messageLength)
    const limit = Math.min(endpointLimit, receiver._maxPayload > 0 ? receiver._maxPayload : endpointLimit)
    const oversize = { bytes, limit, reason: oversizeReason(bytes, limit) }
    oversizes.set(err, oversize)
    socket.close(1009, oversize.reason)
  })
}

/**
 * Takes an upgrade's TCP socket from @fastify/websocket before ws answers it, for a route that
 * speaks the protocol itself (the conformance suite): the reply is hijacked (so the library's
 * handler never runs) and its ServerResponse detached from the socket. Call from a route's
 * `preHandler` on an upgrade, after the admission hooks.
 *
 * Relies on: @fastify/websocket keeps the bytes read past the request's head on the raw request
 * under a symbol described `ws-head`, and assigns the reply's ServerResponse to the TCP socket.
 */
export function takeUpgrade (request: FastifyRequest, reply: FastifyReply): { socket: Socket, head: Buffer, headers: IncomingMessage['headers'] } {
  reply.hijack()
  const raw = request.raw
  const socket = raw.socket as Socket
  reply.raw.detachSocket(socket)
  const headKey = Object.getOwnPropertySymbols(raw).find((s) => s.description === 'ws-head')
  const head = headKey === undefined ? undefined : (raw as unknown as Record<symbol, unknown>)[headKey]
  return { socket, head: Buffer.isBuffer(head) ? head : Buffer.alloc(0), headers: raw.headers }
}

/**
 * Adds a `preClose` hook that runs before those already added to this instance. Where the app
 * registered @fastify/websocket before echohub, the library's own preClose (added first) closes
 * every client with a bare close frame (1005); echohub's hook, run first, gives its own clients
 * 1001 "server shutting down" and waits for them, and the library then closes the app's.
 * Falls back to a plain `addHook` (after the library's) if Fastify keeps its hooks elsewhere.
 *
 * Relies on: Fastify runs an instance's preClose hooks from the array under its `fastify.hooks`
 * symbol, in array order, when `close()` is called.
 */
export function addFirstPreClose (app: FastifyInstance, hook: () => Promise<void>): void {
  const symbol = Object.getOwnPropertySymbols(app).find((s) => s.description === 'fastify.hooks')
  const hooks = symbol === undefined ? undefined : (app as unknown as Record<symbol, { preClose?: unknown[] }>)[symbol]
  if (hooks === undefined || !Array.isArray(hooks.preClose)) {
    app.addHook('preClose', hook)
    return
  }
  // Fastify calls a preClose hook with `this` as the instance and a `done` callback unless it is async.
  hooks.preClose.unshift(async function echohubFirst (this: FastifyInstance) { await hook.call(this) })
}
