// GET /metrics: the registry's figures in Prometheus text format, plus Node's process metrics.
import type { FastifyPluginAsync } from 'fastify'
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import type { ConnectionRegistry, EndpointStats } from '../src/registry.js'

/**
 * Node's process metrics, collected once per process however many apps serve /metrics: each
 * collection starts its own GC observer and event-loop histogram in prom-client, which it never
 * stops. The apps holding it are counted; the last one to close clears it.
 */
let processMetrics: { prom: Registry, users: number } | undefined

function acquireProcessMetrics (): Registry {
  if (processMetrics === undefined) {
    const prom = new Registry()
    collectDefaultMetrics({ register: prom })
    processMetrics = { prom, users: 0 }
  }
  processMetrics.users++
  return processMetrics.prom
}

/** How many apps hold the process metrics now (0: none collected). */
export function processMetricsHolders (): number {
  return processMetrics?.users ?? 0
}

function releaseProcessMetrics (): void {
  if (processMetrics === undefined || --processMetrics.users > 0) return
  processMetrics.prom.clear()
  processMetrics = undefined
}

/** One Prometheus registry per connection registry, so apps that share one report the same figures. */
const promRegistries = new WeakMap<ConnectionRegistry, Registry>()

function promRegistryFor (registry: ConnectionRegistry): Registry {
  let prom = promRegistries.get(registry)
  if (prom !== undefined) return prom
  prom = new Registry()

  // Figures are read from the registry at scrape time, so the message path never touches prom-client.
  const perEndpoint = (name: string, help: string, read: (ep: EndpointStats) => number, Type: typeof Gauge | typeof Counter) =>
    new Type({
      name,
      help,
      labelNames: ['endpoint'],
      registers: [prom!],
      collect (this: Gauge | Counter) {
        this.reset()
        for (const ep of registry.endpoints.values()) {
          if (this instanceof Gauge) this.set({ endpoint: ep.name }, read(ep))
          else this.inc({ endpoint: ep.name }, read(ep))
        }
      }
    })
  perEndpoint('echohub_connections', 'Open WebSocket connections', (ep) => ep.connections.current, Gauge)
  perEndpoint('echohub_connections_peak', 'Most WebSocket connections open at once', (ep) => ep.connections.peak, Gauge)
  perEndpoint('echohub_connections_total', 'WebSocket connections accepted', (ep) => ep.connections.total, Counter)
  perEndpoint('echohub_messages_received_total', 'Messages received from clients', (ep) => ep.messages.received, Counter)
  perEndpoint('echohub_messages_sent_total', 'Messages sent to clients', (ep) => ep.messages.sent, Counter)
  perEndpoint('echohub_bytes_received_total', 'Payload bytes received from clients', (ep) => ep.bytes.received, Counter)
  perEndpoint('echohub_bytes_sent_total', 'Payload bytes sent to clients', (ep) => ep.bytes.sent, Counter)
  // eslint-disable-next-line no-new -- prom-client registers a metric in its constructor
  new Counter({
    name: 'echohub_limit_hits_total',
    help: 'Times a limit was hit (refused upgrades, dropped messages, closed clients), by limit',
    labelNames: ['limit'],
    registers: [prom],
    collect () {
      this.reset()
      for (const [limit, hits] of Object.entries(registry.limitHits)) this.inc({ limit }, hits)
    }
  })
  promRegistries.set(registry, prom)
  return prom
}

export const metricsRoutes: FastifyPluginAsync = async (app) => {
  const prom = promRegistryFor(app.echohub)
  // Process metrics start with the first scrape: prom-client's GC histogram observes every
  // collection V8 makes (hundreds a second under echo load, a PerformanceEntry and a callback
  // each, about 1 % of a busy server's CPU), which a server nobody scrapes need not pay.
  let processProm: Registry | undefined
  app.addHook('onClose', async () => { if (processProm !== undefined) releaseProcessMetrics() })
  app.get('/metrics', async (_request, reply) => {
    processProm ??= acquireProcessMetrics()
    const text = await processProm.metrics() + await prom.metrics()
    return reply.type(prom.contentType).send(text)
  })
}
