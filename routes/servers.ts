// GET /api/servers: where the browser pages find the chat, the stats and the echo servers.
import type { FastifyPluginAsync } from 'fastify'

/** What `GET /api/servers` answers: snake_case like the rest of the wire. */
export interface ServersInfo {
  chat: { name: string, path: string }
  stats: { path: string }
  echo: Array<{ name: string, port: number, path: string, raw_path: string, welcome: boolean }>
}

export interface ServersRoutesOptions {
  /** Called on each request, so ports known only after `listen` (port 0) are the real ones. */
  read: () => ServersInfo
}

export const serversRoutes: FastifyPluginAsync<ServersRoutesOptions> = async (app, opts) => {
  app.get('/api/servers', async (_request, reply): Promise<ServersInfo> => {
    reply.header('cache-control', 'no-store')
    return opts.read()
  })
}
