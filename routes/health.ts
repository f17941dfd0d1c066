// GET /health: liveness for load balancers and people; 503 "draining" once shutdown has begun.
import type { FastifyPluginAsync } from 'fastify'

const body = {
  type: 'object',
  properties: { status: { type: 'string' }, uptime_s: { type: 'number' }, connections: { type: 'integer' } }
} as const

export const healthRoutes: FastifyPluginAsync = async (app) => {
  const registry = app.echohub
  app.get('/health', { schema: { response: { 200: body, 503: body } } }, async (_request, reply) => {
    return reply.code(registry.draining ? 503 : 200).send({
      status: registry.draining ? 'draining' : 'ok',
      uptime_s: registry.uptimeSeconds,
      connections: registry.connections.size
    })
  })
}
