// GET /metrics: the registry's figures in Prometheus text format, plus Node's process metrics.
import type { FastifyPluginAsync } from 'fastify'
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import type { ConnectionRegistry, EndpointStats } from '../src/registry.js'

/** One Prometheus registry per connection registry, so apps that share one report the same figures. */
const promRegistries = new WeakMap<ConnectionRegistry, Registry>()

function promRegistryFor (registry: ConnectionRegistry): Registry {
  let prom = promRegistries.get(registry)
  if (prom !== undefined) return prom
  prom = new Registry()
  collectDefaultMetrics({ register: prom })

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
  app.get('/metrics', async (_request, reply) => {
    const text = await prom.metrics()
    return reply.type(prom.contentType).send(text)
  })
}
