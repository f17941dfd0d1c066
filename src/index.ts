// echohub as a library: the Fastify plugins, the registry they share, and the composed servers.
export { echo, ECHO_MAX_PAYLOAD, type EchoOptions } from '../plugins/echo.js'
export { stats, type StatsOptions } from '../plugins/stats.js'
export { echohubRegistry, SHUTDOWN_REASON, type RegistryPluginOptions } from '../plugins/registry.js'
export { ConnectionRegistry, Connection, EndpointStats, type RegistryOptions, type StatsSnapshot, type Traffic } from './registry.js'
export type { EchoEnvelope, EchoWelcome } from './messages.js'
export { InvalidOptionError, InvalidConfigError, PortInUseError } from './errors.js'
export { parseConfig, helpText, type Config, type ServerName } from './config.js'
export { startEchohub, VERSION, type Echohub, type RunningServer, type StartOptions } from './server.js'
