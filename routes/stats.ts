// GET /stats: the whole registry (every endpoint of every app that shares it) as JSON.
import type { FastifyPluginAsync } from 'fastify'
import { allRooms } from './rooms.js'

const count = { type: 'integer' } as const
const pair = { type: 'object', properties: { received: count, sent: count } } as const
const connections = { type: 'object', properties: { current: count, peak: count, total: count } } as const
const scalars = { type: 'object', additionalProperties: { type: ['number', 'string', 'boolean'] } } as const
const endpoint = {
  type: 'object',
  properties: { connections, messages: pair, bytes: pair, limits: scalars }
} as const

export const statsSchema = {
  type: 'object',
  properties: {
    server_info: { type: 'string' },
    started_at: { type: 'string' },
    uptime_s: { type: 'number' },
    connections,
    messages: pair,
    bytes: pair,
    endpoints: { type: 'object', additionalProperties: endpoint },
    limits: {
      type: 'object',
      properties: { settings: scalars, hits: { type: 'object', additionalProperties: count } }
    },
    memory: { type: 'object', properties: { rss: count, heap_used: count } },
    rooms: { type: 'object', properties: { count, members: count, history: { type: 'object', properties: { messages: count, bytes: count } } } },
    redis: { type: 'object', properties: { status: { type: 'string' }, outages: count } }
  }
} as const

export const statsRoutes: FastifyPluginAsync = async (app) => {
  const registry = app.echohub
  app.get('/stats', { schema: { response: { 200: statsSchema } } }, async () => {
    const snapshot = registry.snapshot()
    if (registry.chats.size === 0) return snapshot
    const rooms = await allRooms(registry)
    // A chat on Redis: whether it is reachable now, and how often it was lost.
    const brokered = [...registry.chats.values()].map((c) => c.adapter).filter((a) => a.outages !== undefined)
    const redis = brokered.length === 0
      ? {}
      : { redis: { status: brokered.some((a) => a.status === 'down') ? 'down' : 'up', outages: brokered.reduce((sum, a) => sum + a.outages!, 0) } }
    // What the in-process history holds (a broker's history is in the broker's memory, not here).
    const usages = [...registry.chats.values()].flatMap((c) => c.adapter.historyUsage === undefined ? [] : [c.adapter.historyUsage()])
    const history = usages.length === 0 ? {} : { history: { messages: usages.reduce((n, u) => n + u.messages, 0), bytes: usages.reduce((n, u) => n + u.bytes, 0) } }
    return { ...snapshot, rooms: { count: rooms.length, members: rooms.reduce((sum, r) => sum + r.members, 0), ...history }, ...redis }
  })
}
