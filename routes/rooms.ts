// GET /rooms and POST /publish: the rooms of every chat endpoint sharing the registry (cluster-wide
// with a shared adapter), and server-side publishing to a room or the lobby.
import type { FastifyPluginAsync } from 'fastify'
import type { RoomInfo } from '../src/chat/adapter.js'
import type { ChatEndpointApi, ConnectionRegistry } from '../src/registry.js'
import { PublishError } from '../src/chat/core.js'
import type { JsonValue } from '../src/chat/messages.js'

/** Every chat endpoint's rooms, by name. */
export async function allRooms (registry: ConnectionRegistry): Promise<RoomInfo[]> {
  const lists = await Promise.all([...registry.chats.values()].map((chat) => chat.adapter.rooms()))
  return lists.flat().sort((a, b) => a.room < b.room ? -1 : a.room > b.room ? 1 : 0)
}

const publishBody = {
  type: 'object',
  required: ['payload'],
  properties: { room: { type: 'string' }, payload: {} },
  additionalProperties: false
} as const

const PUBLISH_STATUS: Record<PublishError['code'], number> = { invalid_room: 400, invalid_message: 400, room_limit: 503 }

export const roomsRoutes: FastifyPluginAsync = async (app) => {
  const registry = app.echohub
  app.get('/rooms', async () => ({ rooms: await allRooms(registry) }))

  app.post<{ Body: { room?: string, payload: JsonValue } }>('/publish', {
    schema: { body: publishBody },
    // A body that is not what the schema says answers 400 with a JSON body naming what is wrong.
    attachValidation: true
  }, async (request, reply) => {
    if (request.validationError !== undefined) {
      return reply.code(400).send({ error: 'invalid_message', message: `the body must be {"room":"<name>","payload":<any JSON>} (room optional: the lobby): ${request.validationError.message}` })
    }
    const chat: ChatEndpointApi | undefined = registry.chats.values().next().value
    if (chat === undefined) return reply.code(404).send({ error: 'no_chat', message: 'this process runs no chat endpoint to publish to' })
    try {
      const { id, seq } = await chat.publish(request.body.room ?? null, request.body.payload)
      return reply.code(202).send({ id, seq })
    } catch (err) {
      if (!(err instanceof PublishError)) throw err
      return reply.code(PUBLISH_STATUS[err.code]).send({ error: err.code, message: err.message })
    }
  })
}
