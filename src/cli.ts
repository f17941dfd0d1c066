#!/usr/bin/env node
// `npm start` / `echohub`: reads flags and environment, starts the servers, prints where clients
// connect, and shuts down gracefully on SIGINT/SIGTERM.
import { pino, type Logger, type LoggerOptions } from 'pino'
import type { FastifyRequest } from 'fastify'
import { redactToken } from './access.js'
import pretty from 'pino-pretty'
import closeWithGrace from 'close-with-grace'
import { helpText, parseConfig, type Config } from './config.js'
import { startEchohub, type Echohub } from './server.js'

/** Human lines on a terminal, JSON lines for anything else (`--log-format` decides when given). */
function usePrettyLogs (config: Config): boolean {
  return config.logFormat === 'pretty' || (config.logFormat === undefined && process.stdout.isTTY === true)
}

function createLogger (config: Config): Logger {
  // The root passes everything; each server's child logger applies its own level.
  const options: LoggerOptions = {
    level: 'trace',
    base: undefined,
    // Fastify's request line, with a ?token= kept out of the logs.
    serializers: {
      req: (req: FastifyRequest) => ({ method: req.method, url: redactToken(req.url), host: req.host, remoteAddress: req.ip, remotePort: req.socket?.remotePort })
    }
  }
  if (!usePrettyLogs(config)) return pino(options)
  return pino(options, pretty({ sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,reqId', colorize: process.stdout.isTTY === true }))
}

function fail (message: string): never {
  process.stderr.write(`echohub: ${message}\n`)
  process.exit(1)
}

async function main (): Promise<void> {
  let parsed
  try {
    parsed = parseConfig(process.argv.slice(2))
  } catch (err) {
    fail((err as Error).message)
  }
  if (parsed.help) {
    process.stdout.write(helpText() + '\n')
    return
  }
  const config = parsed.config
  const logger = createLogger(config)

  let hub: Echohub
  try {
    hub = await startEchohub(config, { logger })
  } catch (err) {
    fail((err as Error).message)
  }

  if (!usePrettyLogs(config)) {
    for (const server of hub.servers) {
      logger.info({ server: server.name, port: server.port, urls: server.urls }, `${server.name} listening`)
    }
  } else {
    const lines = hub.servers.map((s) => `  ${s.name.padEnd(11)} ${s.urls.join('\n' + ' '.repeat(14))}`)
    process.stdout.write(`\nechohub is running. Connect to:\n${lines.join('\n')}\n\nPress Ctrl+C to stop.\n\n`)
  }

  // A second signal while closing exits at once (close-with-grace's own behaviour).
  closeWithGrace({ delay: false }, async ({ signal, err }) => {
    if (err !== undefined) logger.error({ err }, 'unexpected error, shutting down')
    else logger.info({ signal }, 'shutting down: closing clients')
    await hub.close()
    logger.info('stopped')
  })
}

await main()
