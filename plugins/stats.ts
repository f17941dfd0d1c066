// /health, /stats and /metrics for the registry this app's echohub endpoints share.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { ensureInfrastructure, requireAdmin, requireClientAdmin } from './registry.js'
import { healthRoutes } from '../routes/health.js'
import { statsRoutes } from '../routes/stats.js'
import { metricsRoutes } from '../routes/metrics.js'
import { roomsRoutes } from '../routes/rooms.js'
import { connectionsRoutes } from '../routes/connections.js'
import { redactedRequest } from '../src/auth/access.js'
import { replyError } from '../routes/errors.js'
import { knownOptions, type OptionKeys } from '../src/options.js'

export interface StatsOptions {
  /** Route prefix for the three routes (Fastify's own `prefix` option works the same way). */
  prefix?: string
}

const OPTION_KEYS: OptionKeys<StatsOptions> = { prefix: true }
/** The paths of routes/rooms.ts and routes/connections.ts. */
const CLIENT_ADMIN_PATHS = ['/connections', '/connections/:id/:action', '/rooms', '/publish']

export const stats = fp<StatsOptions>(async function statsPlugin (app: FastifyInstance, opts: StatsOptions) {
  knownOptions('echohub-stats', opts, OPTION_KEYS)
  await ensureInfrastructure(app, 0)
  await app.register(async (scope) => {
    scope.setErrorHandler(replyError)
    // Health stays open for load balancers; the figures need the token when one is set.
    await scope.register(healthRoutes)
    await scope.register(async (guarded) => {
      guarded.addHook('onRequest', async (request, reply) => await requireAdmin(guarded, request, reply))
      await guarded.register(statsRoutes)
      await guarded.register(metricsRoutes)
    })
    // The routes that show or act on single clients: this machine only while no credential is
    // set, and no other site's page may read or drive them (no `*` CORS, the admin Origin rule).
    await scope.register(async (clients) => {
      clients.addHook('onRequest', async (request, reply) => await requireClientAdmin(clients, request, reply))
      await clients.register(roomsRoutes)
      await clients.register(connectionsRoutes)
      // With any origin allowed (`*`), an app-wide CORS plugin would answer their preflights with
      // `Access-Control-Allow-Origin: *`; no origin is listed, so none gets CORS here.
      if (clients.echohubAccess.origins === '*') {
        for (const url of CLIENT_ADMIN_PATHS) clients.options(url, { config: { cors: false } }, async (_request, reply) => reply.code(204).header('allow', 'GET, HEAD, POST').send())
      }
    })
    // An admin's `?token=` stays out of the request log lines, whatever logger the app has.
  }, { ...opts, logSerializers: { req: redactedRequest as unknown as (req: unknown) => string } })
}, { name: 'echohub-stats', fastify: '5.x' })
