// `GET <WebSocket path>?check`: the upgrade's admission checks over plain HTTP, without upgrading.
// A browser never sees the HTTP status of a refused upgrade (only a 1006), so echohub's pages ask
// here after a failed connect and can say why: 200 `{"ok":true}`, or the very refusal the upgrade
// got (400 for a lab control, 401, 403, 429, 503 with Retry-After) and its JSON reason: the same
// admission function decides both.
import type { FastifyReply, FastifyRequest } from 'fastify'
import { refusalBody, type Refusal } from '../src/refusals.js'

/** The admission decision for a request, without side effects (nothing counted, nothing logged). */
export type Admission = (request: FastifyRequest) => Promise<Refusal | undefined>

/** A plain GET asking for a check: `?check` in the query. */
export function isCheck (request: FastifyRequest): boolean {
  const query = request.query as Record<string, unknown> | undefined
  return query !== undefined && query !== null && Object.hasOwn(query, 'check')
}

/**
 * Answers a check. A page on the server's own origin sends no `Origin` on a GET, so it names its
 * origin in `?origin=`; a real `Origin` header always wins, so a page cannot claim another's.
 * Any page may read the answer (it tells nothing a refused upgrade does not): the origin a refusal
 * is about must be able to read why.
 */
export async function answerCheck (request: FastifyRequest, reply: FastifyReply, admission: Admission): Promise<FastifyReply> {
  const claimed = (request.query as Record<string, unknown>).origin
  const asked = request.headers.origin === undefined && typeof claimed === 'string' && claimed !== ''
    ? Object.create(request, { headers: { value: { ...request.headers, origin: claimed } } }) as FastifyRequest
    : request
  const refusal = await admission(asked)
  reply.header('cache-control', 'no-store')
  if (request.headers.origin !== undefined && !reply.hasHeader('access-control-allow-origin')) {
    reply.header('access-control-allow-origin', request.headers.origin).header('vary', 'Origin')
  }
  request.log.debug({ status: refusal?.status ?? 200 }, 'admission check')
  if (refusal === undefined) return reply.code(200).send({ ok: true })
  if (refusal.retryAfter !== undefined) reply.header('retry-after', String(refusal.retryAfter))
  return reply.code(refusal.status).send(refusalBody(refusal))
}
