// The CLI (`npm start` / `echohub`, entered through cli.ts): reads flags and environment, starts the
// servers, prints where clients connect, and shuts down gracefully on SIGINT, SIGTERM and SIGHUP
// (the terminal closed), or when its terminal goes away.
import { pino, type Logger, type LoggerOptions } from 'pino'
import type { FastifyRequest } from 'fastify'
import { redactToken } from '../src/auth/access.js'
import { prettyFactory } from 'pino-pretty'
import closeWithGrace from 'close-with-grace'
import { parseConfig, type Config } from '../src/config.js'
import { startEchohub, type Echohub } from './server.js'
import { VERSION } from '../src/version.js'
import { Terminal } from './terminal.js'

/** Human lines on a terminal, JSON lines for anything else (`--log-format` decides when given). */
function usePrettyLogs (config: Config): boolean {
  return config.logFormat === 'pretty' || (config.logFormat === undefined && process.stdout.isTTY === true)
}

function createLogger (config: Config, terminal: Terminal): Logger {
  // The root passes everything; each server's child logger applies its own level.
  const options: LoggerOptions = {
    level: 'trace',
    base: undefined,
    // Fastify's error line for a failed request, with a ?token= kept out of the logs.
    serializers: {
      req: (req: FastifyRequest) => ({ method: req.method, url: redactToken(req.url), host: req.host, remoteAddress: req.ip, remotePort: req.socket?.remotePort })
    }
  }
  const out = terminal.destination()
  if (!usePrettyLogs(config)) return pino(options, out)
  // One line per event: the fields after the message, the server's name before it.
  const prettify = prettyFactory({
    translateTime: 'SYS:HH:MM:ss.l',
    singleLine: true,
    messageFormat: '{if server}{server}: {end}{msg}',
    ignore: 'pid,hostname,reqId,server',
    colorize: process.stdout.isTTY === true
  })
  return pino(options, { write: (line: string) => out.write(prettify(line)) })
}

/** Where clients connect, said once: one structured line in JSON, a small table in pretty mode. */
function logBanner (log: Logger, hub: Echohub, pretty: boolean): void {
  const tls = hub.tls
  if (!pretty) {
    const certificate = tls === undefined
      ? {}
      : { certificate: { fingerprint_sha256: tls.fingerprint, cert_file: tls.certFile, self_signed: tls.selfSigned !== undefined, created: tls.selfSigned?.created, valid_to: tls.validTo.toISOString() } }
    log.info({ version: VERSION, pid: process.pid, servers: hub.servers.map((s) => ({ name: s.name, port: s.port, urls: s.urls })), ...certificate }, 'echohub listening')
    return
  }
  const lines = hub.servers.map((s) => `  ${s.name.padEnd(11)} ${s.urls.join('\n' + ' '.repeat(14))}`)
  // Devices pin the certificate by this fingerprint.
  const cert = tls === undefined
    ? ''
    : `\nCertificate: ${tls.certFile ?? '(given by the host program)'}${tls.selfSigned === undefined ? '' : tls.selfSigned.created ? ' (self-signed, made now)' : ' (self-signed, kept from an earlier start)'}, valid to ${tls.validTo.toISOString().slice(0, 10)}\n  SHA-256 fingerprint: ${tls.fingerprint}`
  log.info(`echohub ${VERSION} is running. Connect to:\n${lines.join('\n')}${cert}\nPress Ctrl+C to stop.`)
}

function fail (message: string): never {
  process.stderr.write(`echohub: ${message}\n`)
  process.exit(1)
}

/**
 * `npm start` runs echohub under `sh -c`. On SIGTERM npm signals that shell, and dash (Debian's and
 * Ubuntu's sh) dies without passing the signal on: echohub would keep running with its ports held.
 * Started by an npm script, echohub therefore treats losing its parent like a SIGTERM. A supervisor
 * that runs `echohub` or `node dist/app/cli.js` itself signals echohub directly and needs none of this.
 */
function shutDownWhenOrphaned (): void {
  const parent = process.ppid
  const timer = setInterval(() => {
    if (process.ppid === parent) return
    clearInterval(timer)
    process.kill(process.pid, 'SIGTERM')
  }, 500)
  timer.unref()
}

async function main (): Promise<void> {
  let parsed
  try {
    parsed = parseConfig(process.argv.slice(2))
  } catch (err) {
    fail((err as Error).message)
  }
  if (parsed.help) {
    process.stdout.write(parsed.text + '\n')
    return
  }
  const config = parsed.config
  const terminal = new Terminal()
  const logger = createLogger(config, terminal)
  // echohub's own lines, at the level asked for (the servers' children apply theirs).
  const log = logger.child({}, { level: config.logLevel ?? 'info' })

  let hub: Echohub
  try {
    hub = await startEchohub(config, { logger })
  } catch (err) {
    fail((err as Error).message)
  }
  logBanner(log, hub, usePrettyLogs(config))

  const tls = hub.tls
  if (tls !== undefined && tls.validTo.getTime() < Date.now()) {
    log.warn({ cert_file: tls.certFile, valid_to: tls.validTo.toISOString() }, 'the certificate has expired: clients that check it will refuse to connect')
  }
  if (tls?.selfSigned !== undefined && tls.selfSigned.uncovered.length > 0) {
    log.warn({ cert_file: tls.certFile, addresses: tls.selfSigned.uncovered }, 'the kept self-signed certificate does not name these addresses of this machine: clients checking the name will refuse them (delete .echohub/ to make a new certificate, which changes the fingerprint)')
  }
  if (process.env.npm_lifecycle_event !== undefined) shutDownWhenOrphaned()

  // Why a shutdown not asked for by close-with-grace's signals began, for its first log line.
  let asked: string | undefined
  let closing = false
  const grace = closeWithGrace({
    delay: false,
    logger: log,
    // Faults (SIGSEGV, SIGABRT...) end the process as they would without echohub: handling them
    // as a shutdown request turned an abort into an endless loop of signals. SIGHUP is below.
    skip: ['SIGHUP', 'SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGSEGV'],
    // A second signal while closing exits at once, saying so in the log's own format.
    onSecondSignal: (signal) => {
      log.warn({ signal }, 'second signal: exiting without waiting for clients')
      terminal.release()
    }
  }, async ({ signal, err }) => {
    closing = true
    if (err !== undefined) log.error({ err }, 'unexpected error, shutting down')
    else log.info({ signal: signal ?? asked }, 'shutting down: closing clients')
    await hub.close()
    log.info('stopped')
    terminal.release()
  })
  const shutDown = (why: string) => {
    if (closing) return
    asked = why
    void grace.close()
  }
  // Closing the terminal sends SIGHUP, often twice (to the session's leader and to its foreground
  // group): a shutdown like SIGTERM's, and a repeat is no second signal. A terminal that goes away
  // without one reaching echohub gets the same.
  process.on('SIGHUP', () => shutDown('SIGHUP'))
  terminal.watch(() => shutDown('terminal gone'))
}

await main()
