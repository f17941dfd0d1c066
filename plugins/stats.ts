// /health, /stats and /metrics for the registry this app's echohub endpoints share.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { ensureInfrastructure } from './registry.js'
import { healthRoutes } from '../routes/health.js'
import { statsRoutes } from '../routes/stats.js'
import { metricsRoutes } from '../routes/metrics.js'
import { TOKEN_REQUIRED, redactToken } from '../src/access.js'

export interface StatsOptions {
  /** Route prefix for the three routes (Fastify's own `prefix` option works the same way). */
  prefix?: string
}

export const stats = fp<StatsOptions>(async function statsPlugin (app: FastifyInstance, opts: StatsOptions) {
  await ensureInfrastructure(app, 0)
  await app.register(async (scope) => {
    // Health stays open for load balancers; the figures need the token when one is set.
    await scope.register(healthRoutes)
    await scope.register(async (guarded) => {
      guarded.addHook('onRequest', async (request, reply) => {
        if (guarded.echohubAccess.authorized(request)) return
        guarded.echohub.hit('auth')
        request.log.warn({ url: redactToken(request.url) }, 'stats request refused: no valid token')
        return reply.code(401).header('www-authenticate', 'Bearer').send({
          error: 'unauthorized',
          message: TOKEN_REQUIRED
        })
      })
      await guarded.register(statsRoutes)
      await guarded.register(metricsRoutes)
    })
  }, opts)
}, { name: 'echohub-stats', fastify: '5.x' })
