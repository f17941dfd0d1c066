// echohub's coded errors, defined once. A wrong plugin option or CLI value fails early with one
// of these, naming the option, instead of surprising a client later.
import createError from '@fastify/error'

/** A plugin option is missing, of the wrong type or out of range. */
export const InvalidOptionError = createError<[plugin: string, option: string, problem: string]>(
  'ECHOHUB_ERR_INVALID_OPTION',
  '%s: option "%s" %s',
  500,
  TypeError
)

/** A CLI flag or environment variable is wrong. */
export const InvalidConfigError = createError<[source: string, problem: string]>(
  'ECHOHUB_ERR_INVALID_CONFIG',
  '%s %s'
)

/** A server's port is taken by another program. */
export const PortInUseError = createError<[port: number, server: string, flag: string]>(
  'ECHOHUB_ERR_PORT_IN_USE',
  'port %s (%s server) is already in use: stop the program using it, or choose another port with %s'
)

/**
 * A client's credentials were refused: the upgrade or admin request gets `401` with
 * `{"error":"invalid_token","message":...}`. An `authenticate` function may throw it (any other
 * error is refused the same way, with a generic message that reveals nothing of the failure).
 */
export const InvalidTokenError = createError<[message: string]>(
  'ECHOHUB_ERR_INVALID_TOKEN',
  '%s',
  401
)

/** The credentials were good but have expired: `401 {"error":"token_expired",...}`. */
export const TokenExpiredError = createError<[message: string]>(
  'ECHOHUB_ERR_TOKEN_EXPIRED',
  '%s',
  401
)

/** A certificate or key file given for https/wss cannot be used. */
export const TlsFileError = createError<[flag: string, file: string, problem: string]>(
  'ECHOHUB_ERR_TLS_FILE',
  '%s %s: %s'
)
