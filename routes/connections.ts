// GET /connections and POST /connections/:id/send|ping|close|drop: the process's live connections
// (every endpoint of every app sharing the registry, chat included) and what an operator can do to
// one. The stats plugin mounts it behind the token, where a POST from another site's page is refused.
import type { FastifyPluginAsync } from 'fastify'
import { ACTION_NAMES, act, listConnections, type ActionName } from '../src/lab/actions.js'

export const connectionsRoutes: FastifyPluginAsync = async (app) => {
  const registry = app.echohub

  // ping and drop take no body; an empty one with a JSON content type is no body, not an error.
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    const text = (body as string).trim()
    if (text === '') {
      done(null, undefined)
      return
    }
    try {
      done(null, JSON.parse(text))
    } catch {
      done(Object.assign(new Error('the body is not valid JSON'), { statusCode: 400, code: 'invalid_body' }), undefined)
    }
  })
  app.get('/connections', async (_request, reply) => {
    reply.header('cache-control', 'no-store')
    return { connections: listConnections(registry) }
  })

  app.post<{ Params: { id: string, action: string } }>('/connections/:id/:action', async (request, reply) => {
    const { id: rawId, action } = request.params
    if (!(ACTION_NAMES as readonly string[]).includes(action)) {
      return reply.code(404).send({ error: 'not_found', message: `no action "${action}": use ${ACTION_NAMES.join(', ')}` })
    }
    const id = /^\d{1,15}$/.test(rawId) ? Number(rawId) : Number.NaN
    if (Number.isNaN(id)) return reply.code(404).send({ error: 'not_found', message: `no open connection has id ${JSON.stringify(rawId)}` })
    const result = act(registry, id, action as ActionName, request.body)
    if (!result.ok) return reply.code(result.status).send({ error: result.error, message: result.message })
    request.log.info({ id, action }, 'connection action')
    return reply.code(202).send({ id, action, status: 'accepted' })
  })
}
