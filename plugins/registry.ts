// The infrastructure every echohub plugin stands on: one ConnectionRegistry per app (or one handed
// in, shared by several apps) and @fastify/websocket, registered exactly once.
import type { FastifyBaseLogger, FastifyInstance, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import websocket from '@fastify/websocket'
import type { WebSocket } from 'ws'
import { ConnectionRegistry, type Connection } from '../src/registry.js'
import { integerOption } from '../src/options.js'
import { InvalidOptionError } from '../src/errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** echohub's connection registry, shared by all echohub plugins of this app. */
    echohub: ConnectionRegistry
  }
}

export interface RegistryPluginOptions {
  /** Use this registry instead of a new one, e.g. to share one across several apps. */
  registry?: ConnectionRegistry
  /** How long closing the app waits for WebSocket clients to finish closing, in ms (default 5000). */
  shutdownTimeout?: number
}

export const SHUTDOWN_REASON = 'server shutting down'
const DEFAULT_WS_MAX_PAYLOAD = 64 * 1024
/** Marks an app whose @fastify/websocket echohub registered, so its settings are echohub's to tune. */
const kOwnsWebsocket = Symbol('echohub.ownsWebsocket')

const registryPlugin: FastifyPluginAsync<RegistryPluginOptions> = async (app, opts) => {
  if (opts.registry !== undefined && !(opts.registry instanceof ConnectionRegistry)) {
    throw new InvalidOptionError('echohub-registry', 'registry', 'must be a ConnectionRegistry')
  }
  const shutdownTimeout = integerOption('echohub-registry', opts, 'shutdownTimeout', 5000, 0)
  const registry = opts.registry ?? new ConnectionRegistry()
  registry.limitSettings.shutdown_timeout_ms = shutdownTimeout
  app.decorate('echohub', registry)

  if (app.hasDecorator('websocketServer')) return
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
      await closeAll(this.websocketServer.clients, shutdownTimeout)
    }
  })
  app.decorate(kOwnsWebsocket, true)
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
