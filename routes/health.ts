// GET /health: liveness for load balancers and people; 503 "draining" once shutdown has begun,
// 200 "degraded" while a chat's Redis is lost (local chat goes on, so the instance stays in service).
import type { FastifyPluginAsync } from 'fastify'

const body = {
  type: 'object',
  properties: { status: { type: 'string' }, redis: { type: 'string' }, uptime_s: { type: 'number' }, connections: { type: 'integer' } }
} as const

export const healthRoutes: FastifyPluginAsync = async (app) => {
  const registry = app.echohub
  app.get('/health', { schema: { response: { 200: body, 503: body } } }, async (_request, reply) => {
    let degraded = false
    for (const chat of registry.chats.values()) degraded ||= chat.adapter.status === 'down'
    return reply.code(registry.draining ? 503 : 200).send({
      status: registry.draining ? 'draining' : degraded ? 'degraded' : 'ok',
      ...(degraded ? { redis: 'down' } : {}),
      uptime_s: registry.uptimeSeconds,
      connections: registry.connections.size
    })
  })
}
