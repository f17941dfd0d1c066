// How echohub's servers log HTTP: one line per request, after it, instead of Fastify's two (with
// the whole request object), and nothing for WebSocket upgrades, whose events (connected,
// refused, disconnected) the endpoints log themselves.
import { LogController, type FastifyReply, type FastifyRequest } from 'fastify'
import { redactToken } from '../src/auth/access.js'
import { formatPeer } from '../src/format.js'

function isUpgrade (request: FastifyRequest): boolean {
  return request.headers.upgrade?.toLowerCase() === 'websocket'
}

export class RequestLines extends LogController {
  override incomingRequest (): void {}

  /** `GET /stats 200`: at debug when it went well (the pages poll), at info when it did not. */
  override requestCompleted (error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error !== null && error !== undefined) return super.requestCompleted(error, request, reply)
    if (isUpgrade(request)) return
    const status = reply.statusCode
    const log = reply.log
    const fields = {
      client: formatPeer(request.raw.socket?.remoteAddress, request.raw.socket?.remotePort),
      ms: Math.round(reply.elapsedTime * 10) / 10
    }
    const line = `${request.method} ${redactToken(request.url)} ${status}`
    if (status >= 400) log.info(fields, line)
    else log.debug(fields, line)
  }

  /** 4xx answers are said by the request line; a 5xx keeps Fastify's error line with the error. */
  override defaultErrorLog (error: Error, request: FastifyRequest, reply: FastifyReply): void {
    if (reply.statusCode >= 500) super.defaultErrorLog(error, request, reply)
  }

  /** The request line says 404. */
  override routeNotFound (): void {}
}
