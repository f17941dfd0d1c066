// The inspector's endpoints on the pages' server: `GET /inspect` (the page) and the WebSocket
// `/inspect/ws` that feeds it. The WebSocket is no client of the registry: it checks the admin
// credentials itself and, since it can act on connections, takes browsers only from the origins that may
// change something (listed ones, or the page's own on localhost or an IP address).
import { readFile } from 'node:fs/promises'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import { inspectorHub } from '../src/lab/inspector.js'
import { redactToken } from '../src/auth/access.js'
import { REFUSALS, type Refusal } from '../src/refusals.js'

export interface InspectRoutesOptions {
  /** The folder holding inspect.html. */
  publicFolder: string
  /** An inspector's unsent bytes past which its events are dropped. */
  maxBuffered: number
  /** The admin routes' check (the token, or an admin user with identity on): the inspector is one of them. */
  adminRefusal: (request: FastifyRequest) => Promise<{ refusal: Refusal } | undefined>
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

  app.get('/inspect', async (_request, reply) => {
    return reply.type('text/html; charset=utf-8').header('x-content-type-options', 'nosniff').send(await readFile(page))
  })

  async function refusal (request: FastifyRequest): Promise<Refusal | undefined> {
    if (registry.draining) return REFUSALS.draining()
    const admin = await opts.adminRefusal(request)
    if (admin !== undefined) return admin.refusal
    if (!access.mutationAllowed(request)) return REFUSALS.originNotAllowed(String(request.headers.origin))
    return undefined
  }

  async function admit (request: FastifyRequest, reply: FastifyReply) {
    const refused = await refusal(request)
    if (refused === undefined) return
    if (refused.limit !== undefined) registry.hit(refused.limit)
    request.log.warn({ url: redactToken(request.url), status: refused.status }, `inspector refused: ${refused.message}`)
    if (refused.retryAfter !== undefined) reply.header('retry-after', String(refused.retryAfter))
    return reply.code(refused.status).send({ error: refused.error, message: refused.message })
  }

  app.route({
    method: 'GET',
    url: '/inspect/ws',
    onRequest: admit,
    handler: (request, reply) => {
      const refused = REFUSALS.upgradeRequired(request.url, request.host)
      return reply.code(refused.status).header('upgrade', 'websocket').send({ error: refused.error, message: refused.message })
    },
    wsHandler (socket) {
      const inspector = hub.attach(socket)
      sockets.add(socket)
      socket.on('message', (data: Buffer, isBinary: boolean) => {
        if (!isBinary) hub.command(inspector, data.toString())
      })
      socket.on('error', () => {})
      socket.on('close', () => {
        sockets.delete(socket)
        hub.detach(inspector)
      })
    }
  })

  // Inspectors are not clients of the registry; closing the app closes them itself, and cuts off
  // any that does not answer within a second (a page has nothing to finish).
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
