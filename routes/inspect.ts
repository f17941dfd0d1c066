// The inspector's endpoints on the pages' server: `GET /inspect` (the page) and the WebSocket
// `/inspect/ws` that feeds it. The WebSocket checks the admin credentials itself and, since it can
// act on connections, takes browsers only from the origins that may change something (listed ones,
// or the page's own on localhost or an IP address); with no credential set, both answer this
// machine only. Each inspector is a connection of the registry (endpoint `inspector`), counted
// against the connection caps like any client.
import { readFile } from 'node:fs/promises'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import { inspectorHub } from '../src/lab/inspector.js'
import { redactToken } from '../src/auth/access.js'
import { formatPeer } from '../src/format.js'
import { REFUSALS, type Refusal } from '../src/refusals.js'
import type { EndpointStats, PeerInfo } from '../src/registry.js'

export interface InspectRoutesOptions {
  /** The folder holding inspect.html. */
  publicFolder: string
  /** An inspector's unsent bytes past which its events are dropped. */
  maxBuffered: number
  /** The admin routes' check (the token, or an admin user with identity on): the inspector is one of them. */
  adminRefusal: (request: FastifyRequest) => Promise<{ refusal: Refusal } | undefined>
  /** With no admin credential set, a request from another host is refused (the page and the WebSocket). */
  localRefusal: (request: FastifyRequest) => Refusal | undefined
  /** The connection caps, which an inspector counts against like any client. */
  capRefusal: (request: FastifyRequest) => Refusal | undefined
  /** The registry endpoint inspectors are connections of (`inspector` in /stats). */
  endpoint: EndpointStats
  /** Who the client of a request is, as the registry records it. */
  peer: (request: FastifyRequest) => PeerInfo
}

export const inspectRoutes: FastifyPluginAsync<InspectRoutesOptions> = async (app, opts) => {
  const registry = app.echohub
  const access = app.echohubAccess
  const hub = inspectorHub(registry)
  // One hub serves every app sharing the registry: the pages' server sets its limit.
  hub.maxBuffered = opts.maxBuffered
  registry.limitSettings.inspector_max_buffered = opts.maxBuffered
  const sockets = new Set<WebSocket>()
  const page = opts.publicFolder + 'inspect.html'

  // The page itself holds nothing, but it is for this machine only while no credential is set.
  app.get('/inspect', {
    onRequest: async (request, reply) => {
      if (!access.originListed(request.headers.origin)) reply.removeHeader('access-control-allow-origin')
      const refused = opts.localRefusal(request) ?? (access.mutationAllowed(request) ? undefined : REFUSALS.adminReadNotAllowed(String(request.headers.origin)))
      if (refused !== undefined) return refuse(request, reply, refused)
    }
  }, async (_request, reply) => {
    return reply.type('text/html; charset=utf-8').header('x-content-type-options', 'nosniff').send(await readFile(page))
  })

  async function refusal (request: FastifyRequest): Promise<Refusal | undefined> {
    if (registry.draining) return REFUSALS.draining()
    const admin = await opts.adminRefusal(request)
    if (admin !== undefined) return admin.refusal
    const local = opts.localRefusal(request)
    if (local !== undefined) return local
    if (!access.mutationAllowed(request)) return REFUSALS.originNotAllowed(String(request.headers.origin), access.names.origins)
    // Last and after every await: the check and the handler that opens the connection run without yielding.
    return opts.capRefusal(request)
  }

  function refuse (request: FastifyRequest, reply: FastifyReply, refused: Refusal) {
    if (refused.limit !== undefined) registry.hit(refused.limit)
    const socket = request.raw.socket
    request.log.warn({ client: formatPeer(socket?.remoteAddress, socket?.remotePort), url: redactToken(request.url), status: refused.status, limit: refused.limit }, `inspector refused: ${refused.message}`)
    if (refused.retryAfter !== undefined) reply.header('retry-after', String(refused.retryAfter))
    return reply.code(refused.status).send({ error: refused.error, message: refused.message })
  }

  async function admit (request: FastifyRequest, reply: FastifyReply) {
    if (!access.originListed(request.headers.origin)) reply.removeHeader('access-control-allow-origin')
    const refused = await refusal(request)
    if (refused === undefined) return
    return refuse(request, reply, refused)
  }

  app.route({
    method: 'GET',
    url: '/inspect/ws',
    onRequest: admit,
    handler: (request, reply) => {
      const refused = REFUSALS.upgradeRequired(request.url, request.host)
      return reply.code(refused.status).header('upgrade', 'websocket').send({ error: refused.error, message: refused.message })
    },
    wsHandler (socket, request) {
      const conn = registry.attach(socket, opts.endpoint, opts.peer(request))
      const inspector = hub.attach(socket, conn)
      sockets.add(socket)
      socket.on('message', (data: Buffer, isBinary: boolean) => {
        conn.received(data.length)
        if (!isBinary) hub.command(inspector, data.toString())
      })
      socket.on('error', () => {})
      socket.on('close', () => {
        sockets.delete(socket)
        hub.detach(inspector)
      })
    }
  })

  // Closing the app closes the inspectors of this app, and cuts off any that does not answer
  // within a second (a page has nothing to finish).
  app.addHook('preClose', async () => {
    if (sockets.size === 0) return
    const closed = [...sockets].map((socket) => new Promise<void>((resolve) => {
      socket.once('close', () => resolve())
      socket.close(1001, 'server shutting down')
    }))
    let timer: NodeJS.Timeout | undefined
    await Promise.race([Promise.all(closed), new Promise<void>((resolve) => { timer = setTimeout(resolve, 1000) })])
    clearTimeout(timer)
    for (const socket of sockets) socket.terminate()
  })
}
