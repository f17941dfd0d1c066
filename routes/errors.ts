// How echohub's HTTP routes answer an error, whatever raised it (a body parser, a schema check, a
// handler): `{"error","message"}` in plain words, as every refusal, instead of Fastify's own body.
// Set on echohub's own encapsulated contexts only: a host app's routes keep the app's handler.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { REFUSALS, refusalBody, type Refusal } from '../src/refusals.js'

/** Fastify's default body limit, when the route does not say its own. */
const DEFAULT_BODY_LIMIT = 1048576

/** The refusal an error stands for. */
export function errorRefusal (err: FastifyError, request: FastifyRequest): Refusal {
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY': return REFUSALS.invalidJson('the body is not valid JSON')
    case 'FST_ERR_CTP_EMPTY_JSON_BODY': return REFUSALS.invalidJson('the body is empty: send a JSON value')
    case 'FST_ERR_CTP_BODY_TOO_LARGE': return REFUSALS.bodyTooLarge(request.routeOptions.bodyLimit ?? DEFAULT_BODY_LIMIT)
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE': return REFUSALS.unsupportedMediaType(request.headers['content-type'])
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH': return REFUSALS.badRequest('the body is not as long as its Content-Length says')
  }
  const status = err.statusCode ?? 500
  if (status >= 400 && status < 500) {
    // An error of echohub's own carries its code in the SPEC's style (`invalid_body`); others get a generic one.
    return { status, error: /^[a-z_]+$/.test(err.code ?? '') ? err.code : 'bad_request', message: err.message }
  }
  return REFUSALS.internalError()
}

/** The error handler of echohub's contexts; a 5xx is logged with its error, a 4xx by the request line. */
export function replyError (err: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const refusal = errorRefusal(err, request)
  if (refusal.status >= 500) request.log.error({ err }, 'request failed')
  return reply.code(refusal.status).send(refusalBody(refusal))
}
