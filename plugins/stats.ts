// /health, /stats and /metrics for the registry this app's echohub endpoints share.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { ensureInfrastructure, requireAdmin, sendRefusal } from './registry.js'
import { healthRoutes } from '../routes/health.js'
import { statsRoutes } from '../routes/stats.js'
import { metricsRoutes } from '../routes/metrics.js'
import { roomsRoutes } from '../routes/rooms.js'
import { connectionsRoutes } from '../routes/connections.js'
import { redactToken, redactedRequest } from '../src/auth/access.js'
import { replyError } from '../routes/errors.js'
import { REFUSALS } from '../src/refusals.js'
import { knownOptions, type OptionKeys } from '../src/options.js'

export interface StatsOptions {
  /** Route prefix for the three routes (Fastify's own `prefix` option works the same way). */
  prefix?: string
}

const OPTION_KEYS: OptionKeys<StatsOptions> = { prefix: true }

export const stats = fp<StatsOptions>(async function statsPlugin (app: FastifyInstance, opts: StatsOptions) {
  knownOptions('echohub-stats', opts, OPTION_KEYS)
  await ensureInfrastructure(app, 0)
  await app.register(async (scope) => {
    scope.setErrorHandler(replyError)
    // Health stays open for load balancers; the figures need the token when one is set.
    await scope.register(healthRoutes)
    await scope.register(async (guarded) => {
      guarded.addHook('onRequest', async (request, reply) => await requireAdmin(guarded, request, reply))
      // What changes something (POST /publish) is refused to other sites' pages.
      guarded.addHook('onRequest', async (request, reply) => {
        if (request.method === 'GET' || request.method === 'HEAD' || request.method === 'OPTIONS') return
        if (guarded.echohubAccess.mutationAllowed(request)) return
        const refusal = REFUSALS.mutationNotAllowed(String(request.headers.origin), guarded.echohubAccess.names.origins)
        guarded.echohub.hit(refusal.limit!)
        request.log.warn({ url: redactToken(request.url), origin: request.headers.origin }, 'admin request refused: origin not allowed')
        return sendRefusal(reply, refusal)
      })
      await guarded.register(statsRoutes)
      await guarded.register(metricsRoutes)
      await guarded.register(roomsRoutes)
      await guarded.register(connectionsRoutes)
    })
    // An admin's `?token=` stays out of the request log lines, whatever logger the app has.
  }, { ...opts, logSerializers: { req: redactedRequest as unknown as (req: unknown) => string } })
}, { name: 'echohub-stats', fastify: '5.x' })
