// Every HTTP refusal echohub answers, defined once: the status, the `error` code of the JSON body,
// the message a person reads, and the limit it counts against. Plugins only send them.
import type { LimitName } from './limits.js'
import { plainAddress } from './format.js'

/** An HTTP refusal: sent as `status` with the body `{ error, message }`. */
export interface Refusal {
  status: number
  error: string
  message: string
  /** Seconds for a `Retry-After` header, when trying again later may work. */
  retryAfter?: number
  /** The limit this refusal counts against in /stats, if any. */
  limit?: LimitName
  /** More fields of the JSON body, between `error` and `message` (e.g. the lab's `control`). */
  details?: Record<string, string | number>
}

/** What a client is told when it lacks the token. */
export const TOKEN_REQUIRED = 'a valid token is required: send "Authorization: Bearer <token>" or ?token=<token>'

/** Seconds a client refused for load or shutdown is asked to wait. */
const RETRY_AFTER = 5

export const REFUSALS = {
  /** Shutdown has begun. */
  draining: (): Refusal => ({ status: 503, error: 'shutting_down', message: 'the server is shutting down', retryAfter: RETRY_AFTER, limit: 'draining' }),
  /** No valid token (upgrades, /stats, /metrics). */
  unauthorized: (): Refusal => ({ status: 401, error: 'unauthorized', message: TOKEN_REQUIRED, limit: 'auth' }),
  /** Credentials `authenticate` (or the JWT check) refused: `invalid_token` or `token_expired`. */
  badCredentials: (error: 'invalid_token' | 'token_expired', message: string): Refusal => ({ status: 401, error, message, limit: 'auth' }),
  /** An admin route, a user who is no admin (identity on, no --auth-token). */
  adminRequired: (): Refusal => ({ status: 403, error: 'admin_required', message: 'this route is for admins: it needs a token whose "admin" claim is true', limit: 'auth' }),
  /** A browser Origin not on the allowlist; `setting` names the list as the user set it (a flag or an option). */
  originNotAllowed: (origin: string, setting = '--origins'): Refusal => ({ status: 403, error: 'origin_not_allowed', message: `origin ${origin} is not allowed (see ${setting})`, limit: 'origin' }),
  /** A page of another site tries to change something (POST /publish). */
  mutationNotAllowed: (origin: string, setting = '--origins'): Refusal => ({ status: 403, error: 'origin_not_allowed', message: `origin ${origin} may not change anything here: list it in ${setting}`, limit: 'origin' }),
  /**
   * An admin route that shows or acts on single clients, asked from another host while no admin
   * credential is set; `credential` names how to set one (the flag, or the plugin option).
   */
  adminLocalOnly: (credential: string): Refusal => ({ status: 403, error: 'admin_local_only', message: `this route shows or acts on single clients and, with no admin credential set, answers only this machine: set ${credential} to use it from another host`, limit: 'admin_local_only' }),
  /** A page of another site tries to read an admin route that shows single clients. */
  adminReadNotAllowed: (origin: string, setting = '--origins'): Refusal => ({ status: 403, error: 'origin_not_allowed', message: `origin ${origin} may not read this route: list it in ${setting}`, limit: 'origin' }),
  /** The process-wide connection cap is full. */
  serverFull: (max: number): Refusal => ({ status: 503, error: 'server_full', message: `the server holds its maximum of ${max} connections`, retryAfter: RETRY_AFTER, limit: 'max_connections' }),
  /** One client address holds its share already. */
  tooManyConnections: (address: string, max: number): Refusal => ({ status: 429, error: 'too_many_connections', message: `${plainAddress(address)} already holds the maximum of ${max} connections`, retryAfter: RETRY_AFTER, limit: 'max_connections_per_ip' }),
  /** A lab control with a bad value: the SPEC's `400 {"error":"invalid_control","control":...,"message":...}`. */
  invalidControl: (control: string, message: string): Refusal => ({ status: 400, error: 'invalid_control', message, limit: 'invalid_control', details: { control } }),
  /** A request body that is not JSON, or none where one is needed. */
  invalidJson: (message: string): Refusal => ({ status: 400, error: 'invalid_json', message }),
  /** A request body over the route's limit. */
  bodyTooLarge: (limit: number): Refusal => ({ status: 413, error: 'body_too_large', message: `the body is over the ${limit}-byte limit` }),
  /** A request body of a type the route does not read. */
  unsupportedMediaType: (type: string | undefined): Refusal => ({ status: 415, error: 'unsupported_media_type', message: `send the body as JSON, with "Content-Type: application/json" (${type === undefined ? 'this request gave no Content-Type' : `not ${type}`})` }),
  /** A request malformed in some other way. */
  badRequest: (message: string): Refusal => ({ status: 400, error: 'bad_request', message }),
  /** A route failed: the log has the error, the client a plain sentence. */
  internalError: (): Refusal => ({ status: 500, error: 'internal_error', message: 'the server failed to answer this request; its log says why' }),
  /** A plain HTTP GET on a WebSocket path: say how to connect instead of a bare 404. */
  upgradeRequired: (url: string, host: string): Refusal => ({ status: 426, error: 'upgrade_required', message: `${url} is a WebSocket endpoint: connect with a WebSocket client, e.g. ws://${host}${url}` }),
  /** The conformance suite: a path that is none of its routes. */
  conformanceNotFound: (op: string): Refusal => ({ status: 404, error: 'not_found', message: `no conformance route "${op}": use getCaseCount, getCaseInfo, runCase, getCaseStatus, updateReports or next` }),
  /** The conformance suite: a query it cannot take (agent, case, cases, max_size). */
  conformanceInvalid: (message: string): Refusal => ({ status: 400, error: 'invalid_request', message }),
  /** The conformance suite: a second connection for an agent while one of its cases runs. */
  conformanceAgentBusy: (agent: string, caseId: string): Refusal => ({ status: 409, error: 'agent_busy', message: `a case of agent ${JSON.stringify(agent)} runs now (${caseId}): one connection at a time per agent` }),
  /** The conformance suite: as many cases run as it may run at once. */
  conformanceBusy: (max: number): Refusal => ({ status: 503, error: 'conformance_busy', message: `${max} conformance cases run already (see --conformance-max-running)`, retryAfter: RETRY_AFTER, limit: 'conformance_busy' })
} as const

/** A refusal's JSON body: `{ error, ...details, message }`. */
export function refusalBody (refusal: Refusal): Record<string, string | number> {
  return refusal.details === undefined
    ? { error: refusal.error, message: refusal.message }
    : { error: refusal.error, ...refusal.details, message: refusal.message }
}
