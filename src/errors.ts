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
