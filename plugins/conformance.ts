// The client conformance suite's routes: the Autobahn fuzzingserver's WebSocket paths (and device
// mode's `next`) under a base path, after the same admission as every echo path; the reports and
// the page. A case's upgrade is taken from ws before it answers (the suite speaks the protocol
// itself), counted in the registry as a connection of its endpoint, and handed to the service.
import { EventEmitter } from 'node:events'
import { join } from 'node:path'
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import { addEndpoint, endpointPlugin, releaseUpgrade, requestUser, requireAdmin, requireClientAdmin, sendRefusal } from './registry.js'
import { findPublicFolder } from './ui.js'
import { takeUpgrade } from './ws-internals.js'
import { clientPeer } from './transport.js'
import { ConformanceService, type Claim, type Request } from '../src/conformance/service.js'
import { AgentStore } from '../src/conformance/store.js'
import { suiteEngine } from '../src/conformance/runner.js'
import type { ConnectionRegistry, EndpointStats, RegistrySocket } from '../src/registry.js'
import { describe, integerOption, knownOptions, stringOption, type OptionKeys } from '../src/options.js'
import { InvalidOptionError } from '../src/errors.js'
import { DEFAULT_LIMITS } from '../src/limits.js'
import { REFUSALS } from '../src/refusals.js'
import { redactToken } from '../src/auth/access.js'
import { conformanceReportRoutes, type SuitePlace } from '../routes/conformance.js'
import type { Socket } from 'node:net'

export interface ConformanceOptions {
  /** Where each agent's results are kept (default `.echohub/conformance`, from the working directory). */
  dir?: string
  /** Agents kept at most; a new one past it forgets the least recently updated (default 100). */
  maxAgents?: number
  /** Cases running at once in the process, at most; past it an upgrade gets `503` (default 8). */
  maxRunning?: number
  /** The server's selection, Autobahn's patterns (`['1.*', '7.*', 'R.*']`; default every case). */
  cases?: string[]
  /** How long device mode waits for an agent's reconnect in R.3, R.4 and R.6, ms (default 60000). */
  reconnectWindow?: number
}

const PLUGIN = 'echohub-conformance'
export const DEFAULT_CONFORMANCE_DIR = join('.echohub', 'conformance')
const OPTION_KEYS: OptionKeys<ConformanceOptions> = { dir: true, maxAgents: true, maxRunning: true, cases: true, reconnectWindow: true }

/** The suite of each registry: every app (and port) of a process shares one, so its agents and its running cap are the process's. */
const services = new WeakMap<ConnectionRegistry, { service: ConformanceService, loaded: Promise<void>, places: SuitePlace[] }>()

/** The suite serving this registry's apps, if one of them has it on. */
export function conformanceOf (registry: ConnectionRegistry): { service: ConformanceService, places: SuitePlace[] } | undefined {
  return services.get(registry)
}

/** Reads the `conformance` option of the echo plugin (`true` or an object); undefined when off. */
export function conformanceOption (plugin: string, value: unknown): ConformanceOptions | undefined {
  if (value === undefined || value === false) return undefined
  if (value === true) return {}
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new InvalidOptionError(plugin, 'conformance', `must be true, false or { dir, maxAgents, maxRunning, cases }, got ${describe(value)}`)
  return value as ConformanceOptions
}

/** The process's suite for this registry: made (and its kept results read) by the first app that asks. */
async function serviceFor (registry: ConnectionRegistry, opts: ConformanceOptions, log: FastifyInstance['log']): Promise<{ service: ConformanceService, places: SuitePlace[] }> {
  let entry = services.get(registry)
  if (entry === undefined) {
    knownOptions(PLUGIN, opts, OPTION_KEYS)
    const dir = stringOption(PLUGIN, opts, 'dir', DEFAULT_CONFORMANCE_DIR)
    const maxAgents = integerOption(PLUGIN, opts, 'maxAgents', DEFAULT_LIMITS.conformanceMaxAgents, 1)
    const maxRunning = integerOption(PLUGIN, opts, 'maxRunning', DEFAULT_LIMITS.conformanceMaxRunning, 1)
    const reconnectWindow = integerOption(PLUGIN, opts, 'reconnectWindow', 60000, 1)
    const cases = opts.cases
    if (cases !== undefined && (!Array.isArray(cases) || cases.length === 0 || !cases.every((c) => typeof c === 'string' && c !== ''))) {
      throw new InvalidOptionError(PLUGIN, 'cases', `must be a non-empty array of Autobahn patterns like ['1.*', '7.1.1'], got ${describe(cases)}`)
    }
    const engine = suiteEngine()
    if (cases !== undefined && engine.select(cases).length === 0) throw new InvalidOptionError(PLUGIN, 'cases', `selects no case: ${cases.join(',')}`)
    const store = new AgentStore({
      dir,
      maxAgents,
      maxAgentBytes: DEFAULT_LIMITS.conformanceAgentBytes,
      maxWireBytes: DEFAULT_LIMITS.conformanceWireBytes,
      busy: (agent) => service.busy(agent),
      onEvict: (agent) => {
        registry.hit('conformance_evicted')
        log.info({ agent, max_agents: maxAgents }, 'conformance: forgot the least recently updated agent to make room')
      },
      onError: (what, err) => log.warn({ err }, `conformance: ${what}`)
    })
    const service: ConformanceService = new ConformanceService({
      engine,
      store,
      maxRunning,
      patterns: cases,
      reconnectWindowMs: reconnectWindow,
      hit: (limit) => registry.hit(limit),
      log: (level, fields, message) => log[level](fields, message)
    })
    Object.assign(registry.limitSettings, {
      conformance_max_agents: maxAgents,
      conformance_max_running: maxRunning,
      conformance_wire_bytes: DEFAULT_LIMITS.conformanceWireBytes,
      conformance_agent_bytes: DEFAULT_LIMITS.conformanceAgentBytes
    })
    entry = { service, loaded: service.load(), places: [] }
    services.set(registry, entry)
  }
  await entry.loaded
  return entry
}

/**
 * What the registry holds for a case's connection: the raw TCP socket, seen through the few things
 * heartbeat, shutdown and the operator's actions do with a socket. The suite speaks for itself on
 * it: `send` and `ping` are ignored (a frame from elsewhere would spoil the case); `close` ends the
 * case (judged on what it saw), `terminate` cuts the TCP connection.
 */
class SuiteSocket extends EventEmitter implements RegistrySocket {
  readonly protocol = ''
  readonly extensions = ''
  readonly #tcp: Socket
  readonly #end: () => void

  constructor (tcp: Socket, end: () => void) {
    super()
    this.#tcp = tcp
    this.#end = end
    tcp.once('close', () => this.emit('close'))
  }

  get readyState (): number {
    return this.#tcp.destroyed ? 3 : 1
  }

  get bufferedAmount (): number {
    return this.#tcp.writableLength
  }

  close (): void {
    this.#end()
  }

  terminate (): void {
    this.#tcp.destroy()
  }

  ping (): void {}
  send (): void {}
}

interface RoutesOptions {
  service: ConformanceService
  stats: EndpointStats
  /** Where the routes are: `/conformance`, or `''` at a port's root. */
  base: string
}

/** The checked query of an upgrade answered by ws, for its handler. */
const answers = new WeakMap<FastifyRequest, Request>()

function queryOf (url: string): URLSearchParams {
  const q = url.indexOf('?')
  return new URLSearchParams(q === -1 ? '' : url.slice(q + 1))
}

/** The suite's WebSocket routes, in the admission's context: `${base}/<op>` and a catch-all that answers 404. */
const suiteRoutes: FastifyPluginAsync<RoutesOptions> = async (app, opts) => {
  const { service, stats, base } = opts
  const registry = app.echohub

  const refuse = (request: FastifyRequest, reply: FastifyReply, refusal: ReturnType<typeof REFUSALS.conformanceInvalid>) => {
    if (refusal.limit !== undefined && refusal.limit !== 'conformance_busy') registry.hit(refusal.limit)
    request.log.warn({ url: redactToken(request.url), status: refusal.status }, `conformance upgrade refused: ${refusal.message}`)
    return sendRefusal(reply, refusal)
  }

  async function beforeUpgrade (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    if (!request.ws) return undefined
    const parsed = service.parse((request.params as { op?: string }).op ?? '', queryOf(request.url))
    if (!parsed.ok) return refuse(request, reply, parsed.refusal)
    const req = parsed.request
    if (req.op !== 'runCase' && req.op !== 'next') {
      answers.set(request, req)
      return undefined
    }
    const claimed = service.claim(req as Request & { agent: string })
    if (!claimed.ok) return refuse(request, reply, claimed.refusal)
    serveCase(request, reply, claimed.claim)
    return reply
  }

  function serveCase (request: FastifyRequest, reply: FastifyReply, claim: Claim): void {
    const upgrade = takeUpgrade(request, reply)
    const socket = new SuiteSocket(upgrade.socket, () => service.abort(claim))
    const conn = registry.attach(socket, stats, { ...clientPeer(request), path: request.url, user: requestUser(request) })
    conn.ownHeartbeat = true
    const log = request.log
    const { op, agent } = claim.request
    log.info({ client: conn.peer, agent, op, case: claim.request.case?.id, connections: registry.connections.size, path: redactToken(request.url) }, 'conformance client connected')
    service.serve(claim, upgrade).then(
      () => log.info({ client: conn.peer, agent, connections: registry.connections.size - (conn.isOpen ? 1 : 0) }, 'conformance connection ended'),
      (err: unknown) => {
        log.error({ client: conn.peer, agent, err }, 'conformance case failed')
        upgrade.socket.destroy()
      }
    )
  }

  /** getCaseCount, getCaseInfo, getCaseStatus, updateReports: one answer, then close 1000. */
  async function answer (socket: WebSocket, request: FastifyRequest): Promise<void> {
    const conn = registry.attach(socket, stats, { ...clientPeer(request), path: request.url, user: requestUser(request) })
    releaseUpgrade(socket, request)
    socket.on('error', (err) => request.log.info({ client: conn.peer, err: err.message }, 'conformance client connection error'))
    const req = answers.get(request)
    if (req === undefined) {
      socket.close(1008, 'not a conformance route')
      return
    }
    let text: string | undefined
    switch (req.op) {
      case 'getCaseCount':
        text = String(req.cases.length)
        break
      case 'getCaseInfo':
        text = JSON.stringify({ id: req.case!.id, description: req.case!.description })
        break
      case 'getCaseStatus':
        text = JSON.stringify(await service.status(req.agent!, req.case!))
        break
      case 'updateReports':
        await service.updateReports(req.agent)
        break
    }
    if (socket.readyState !== socket.OPEN) return
    if (text !== undefined) {
      conn.sent(Buffer.byteLength(text))
      socket.send(text)
    }
    socket.close(1000)
  }

  const plain = (request: FastifyRequest, reply: FastifyReply) =>
    sendRefusal(reply.header('upgrade', 'websocket'), REFUSALS.upgradeRequired(redactToken(request.url), request.host))
  app.route({ method: 'GET', url: `${base}/:op`, preHandler: beforeUpgrade, handler: plain, wsHandler: answer })
  // Anything else under the base is the suite's too: no echo there.
  app.route({
    method: 'GET',
    url: `${base}/*`,
    preHandler: async (request, reply) => refuse(request, reply, REFUSALS.conformanceNotFound(request.url.split('?')[0]!.slice(base.length + 1))),
    handler: plain,
    wsHandler: (socket: WebSocket) => socket.terminate()
  })
}

/**
 * Drivers append paths to a base URL and cannot add a query or a header, so the suite also takes
 * the token as a path segment: `<base>/token/<token>/<op>` is read as `<base>/<op>?token=<token>`
 * before routing, so admission, identity and the logs' redaction see an ordinary `?token=`.
 */
function tokenInPath (app: FastifyInstance, base: string): void {
  const prefix = `${base}/token/`
  app.server.prependListener('upgrade', (request: { url?: string }) => {
    const url = request.url
    if (url === undefined || !url.startsWith(prefix)) return
    const rest = url.slice(prefix.length)
    const slash = rest.indexOf('/')
    if (slash <= 0) return
    const token = rest.slice(0, slash)
    const path = rest.slice(slash)
    const q = path.indexOf('?')
    request.url = `${base}${q === -1 ? path : path.slice(0, q)}?token=${token}${q === -1 ? '' : '&' + path.slice(q + 1)}`
  })
}

/**
 * Mounts the suite in an endpoint's admitted context (the echo plugin's `conformance` option):
 * the WebSocket routes under `base`, the reports and the page.
 */
export async function mountConformance (app: FastifyInstance, opts: ConformanceOptions, endpointName: string, base: string): Promise<void> {
  const { service, places } = await serviceFor(app.echohub, opts, app.log)
  const stats = addEndpoint(app, PLUGIN, endpointName)
  tokenInPath(app, base)
  places.push({ server: app.server, base })
  app.addHook('preClose', async () => {
    service.close()
    await service.store.flush()
  })
  await app.register(suiteRoutes, { service, stats, base })
  await app.register(conformanceReports(app, base === '' ? '/conformance' : base))
}

/** The reports and the page at `base` of this app (the echo servers' and the pages' server's). */
export function conformanceReports (app: FastifyInstance, base: string) {
  const registry = app.echohub
  return async (scope: FastifyInstance) => {
    await scope.register(conformanceReportRoutes, {
      base,
      read: () => conformanceOf(registry),
      publicFolder: findPublicFolder(),
      admin: async (request, reply) => await requireAdmin(scope, request, reply),
      // DELETE acts on one agent: the admin credential, this machine only while none is set, the admin Origin rule.
      mutation: async (request, reply) => await requireClientAdmin(scope, request, reply)
    })
  }
}

/** The suite on a port of its own (`--conformance-port`): the WebSocket routes at the root, the reports and page under `/conformance`. */
export const conformance = endpointPlugin<ConformanceOptions & { name?: string, maxPayload?: number }>(PLUGIN, 1, async (app, opts) => {
  const { name, maxPayload: _maxPayload, ...suite } = opts
  await mountConformance(app, suite, stringOption(PLUGIN, opts, 'name', 'conformance'), '')
})
