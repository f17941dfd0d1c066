// /health, /stats and /metrics for the registry this app's echohub endpoints share.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { ensureInfrastructure } from './registry.js'
import { healthRoutes } from '../routes/health.js'
import { statsRoutes } from '../routes/stats.js'
import { metricsRoutes } from '../routes/metrics.js'

export interface StatsOptions {
  /** Route prefix for the three routes (Fastify's own `prefix` option works the same way). */
  prefix?: string
}

export const stats = fp<StatsOptions>(async function statsPlugin (app: FastifyInstance, opts: StatsOptions) {
  await ensureInfrastructure(app, 0)
  await app.register(async (scope) => {
    await scope.register(healthRoutes)
    await scope.register(statsRoutes)
    await scope.register(metricsRoutes)
  }, opts)
}, { name: 'echohub-stats', fastify: '5.x' })
