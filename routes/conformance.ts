// The conformance suite's reports and page, under a base path (`/conformance`): the agents, one
// agent's cases (JSON and JUnit XML), forgetting an agent, where to point a client, and the page
// that shows them. The page and its files are open like the other pages; the reports are gated
// like /stats, and DELETE like the admin POSTs.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Server } from 'node:net'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { ConformanceService } from '../src/conformance/service.js'
import type { AgentRecord } from '../src/conformance/store.js'
import { junitXml, summarize, type ReportCase } from '../src/conformance/report.js'
import type { SuiteCase } from '../src/conformance/types.js'
import { lanAddresses } from '../src/transport/tls.js'

/** A server the suite's WebSocket routes are on, and their base path there. */
export interface SuitePlace {
  server: Server
  base: string
}

type Guard = (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined>

export interface ConformanceReportOptions {
  /** The process's suite, read on each request (none: the routes answer 404). */
  read: () => { service: ConformanceService, places: SuitePlace[] } | undefined
  /** Where the routes are, e.g. `/conformance`. */
  base: string
  /** The pages' folder (public/). */
  publicFolder: string
  /** The reports' gate (as /stats). */
  admin: Guard
  /** DELETE's gate (as the admin POSTs: token, then the Origin rule). */
  mutation: Guard
}

/** The page and the files it loads, by the name it asks for under the base. */
const PAGE_FILES: Record<string, string> = {
  'conformance.js': 'text/javascript; charset=utf-8',
  'conformance.css': 'text/css; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
  'common.js': 'text/javascript; charset=utf-8',
  'favicon.svg': 'image/svg+xml'
}

const NOT_ON = { error: 'not_found', message: 'the conformance suite is not on in this process (the echo servers run it unless --no-conformance)' }

function agentSummary (service: ConformanceService, record: AgentRecord) {
  const cases = casesOf(service, record)
  const run = cases.filter((c) => record.results.has(c.id))
  return {
    agent: record.agent,
    cases: cases.length,
    run: run.length,
    summary: summarize(run.map((c) => record.results.get(c.id)!)),
    updated_at: new Date(record.updatedAt).toISOString(),
    waiting: record.pending === undefined ? null : { id: record.pending.id, gaps_ms: record.pending.gaps }
  }
}

/** The agent's cases: its selection's, and any other it has a result of, in the suite's order. */
function casesOf (service: ConformanceService, record: AgentRecord): SuiteCase[] {
  const selected = record.selection === null ? service.cases : service.engine.select(record.selection.split(',').map((p) => p.trim()).filter((p) => p !== ''))
  const ids = new Set(selected.map((c) => c.id))
  return service.engine.suite.filter((c) => ids.has(c.id) || record.results.has(c.id))
}

function reportCases (service: ConformanceService, record: AgentRecord): ReportCase[] {
  return casesOf(service, record).map((c) => record.results.get(c.id) ?? { id: c.id, description: c.description, expectation: c.expectation, behavior: null, behaviorClose: null })
}

/** ws:// (wss://) URLs of the suite on each place: this machine's and the LAN's addresses. */
function suiteUrls (places: readonly SuitePlace[]): Array<{ port: number, base: string, urls: string[] }> {
  const found: Array<{ port: number, base: string, urls: string[] }> = []
  for (const place of places) {
    const address = place.server.address()
    if (address === null || typeof address === 'string') continue
    const secure = typeof (place.server as Server & { setSecureContext?: unknown }).setSecureContext === 'function'
    const any = address.address === '0.0.0.0' || address.address === '::'
    const hosts = any ? ['localhost', ...lanAddresses()] : [address.family === 'IPv6' ? `[${address.address}]` : address.address]
    found.push({ port: address.port, base: place.base, urls: hosts.map((h) => `ws${secure ? 's' : ''}://${h}:${address.port}${place.base}`) })
  }
  return found
}

export const conformanceReportRoutes: FastifyPluginAsync<ConformanceReportOptions> = async (app, opts) => {
  const { base, read, publicFolder } = opts

  app.get(base, async (_request, reply) => {
    const html = await readFile(join(publicFolder, 'conformance.html'))
    return reply.header('cache-control', 'no-cache').header('x-content-type-options', 'nosniff').type('text/html; charset=utf-8').send(html)
  })
  app.get<{ Params: { file: string } }>(`${base}/page/:file`, async (request, reply) => {
    const type = PAGE_FILES[request.params.file]
    if (type === undefined) return reply.code(404).send({ error: 'not_found', message: `no file ${request.params.file}` })
    const body = await readFile(join(publicFolder, request.params.file))
    return reply.header('cache-control', 'no-cache').header('x-content-type-options', 'nosniff').type(type).send(body)
  })

  await app.register(async (reports) => {
    reports.addHook('onRequest', async (request, reply) => {
      if (request.method === 'DELETE') return await opts.mutation(request, reply)
      return await opts.admin(request, reply)
    })

    reports.get(`${base}/info`, async (_request, reply) => {
      const suite = read()
      if (suite === undefined) return reply.code(404).send(NOT_ON)
      reply.header('cache-control', 'no-store')
      return {
        cases: suite.service.cases.map((c) => ({ id: c.id, description: c.description })),
        max_running: suite.service.maxRunning,
        running: suite.service.running,
        servers: suiteUrls(suite.places)
      }
    })

    reports.get(`${base}/agents`, async (_request, reply) => {
      const suite = read()
      if (suite === undefined) return reply.code(404).send(NOT_ON)
      reply.header('cache-control', 'no-store')
      return { agents: suite.service.store.list().map((r) => agentSummary(suite.service, r)) }
    })

    reports.get<{ Params: { agent: string } }>(`${base}/agents/:agent`, async (request, reply) => {
      const suite = read()
      if (suite === undefined) return reply.code(404).send(NOT_ON)
      const record = suite.service.store.get(request.params.agent)
      if (record === undefined) return reply.code(404).send({ error: 'not_found', message: `no results for agent ${JSON.stringify(request.params.agent)}` })
      reply.header('cache-control', 'no-store')
      return { ...agentSummary(suite.service, record), cases: reportCases(suite.service, record) }
    })

    reports.get<{ Params: { agent: string } }>(`${base}/agents/:agent/junit.xml`, async (request, reply) => {
      const suite = read()
      if (suite === undefined) return reply.code(404).send(NOT_ON)
      const record = suite.service.store.get(request.params.agent)
      if (record === undefined) return reply.code(404).send({ error: 'not_found', message: `no results for agent ${JSON.stringify(request.params.agent)}` })
      return reply.header('cache-control', 'no-store').type('application/xml; charset=utf-8')
        .send(junitXml(record.agent, reportCases(suite.service, record), new Date(record.updatedAt).toISOString()))
    })

    reports.delete<{ Params: { agent: string } }>(`${base}/agents/:agent`, async (request, reply) => {
      const suite = read()
      if (suite === undefined) return reply.code(404).send(NOT_ON)
      const agent = request.params.agent
      if (suite.service.busy(agent)) return reply.code(409).send({ error: 'agent_busy', message: `a case of agent ${JSON.stringify(agent)} runs now: delete it once it has ended` })
      if (!await suite.service.forget(agent)) return reply.code(404).send({ error: 'not_found', message: `no results for agent ${JSON.stringify(agent)}` })
      request.log.info({ agent }, 'conformance: agent forgotten')
      return reply.code(204).send()
    })
  })
}
