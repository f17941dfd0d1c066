// /metrics: Node's process metrics are collected once per process however many apps serve them,
// and released when the last of those apps closes.
import t from 'tap'
import Fastify from 'fastify'
import { stats } from '../index.js'
import { processMetricsHolders } from '../routes/metrics.js'

const count = (text: string, pattern: RegExp) => text.match(pattern)?.length ?? 0

t.test('process metrics: one collection shared by every app, released by the last to close', async (t) => {
  t.equal(processMetricsHolders(), 0, 'nothing collected before an app serves /metrics')
  const a = Fastify()
  const b = Fastify()
  t.teardown(async () => { await a.close(); await b.close() })
  await a.register(stats)
  await b.register(stats)
  await a.ready()
  await b.ready()
  t.equal(processMetricsHolders(), 2, 'both apps hold the one collection')
  for (const app of [a, b]) {
    const body = (await app.inject('/metrics')).body
    t.equal(count(body, /^process_cpu_user_seconds_total /gm), 1, 'each /metrics shows the process metrics once')
    t.equal(count(body, /^# TYPE echohub_connections gauge$/gm), 1, 'next to its own figures')
  }
  await a.close()
  t.equal(processMetricsHolders(), 1)
  t.match((await b.inject('/metrics')).body, /^nodejs_heap_size_used_bytes \d/m, 'the other app still shows them')
  await b.close()
  t.equal(processMetricsHolders(), 0, 'released once the last app closed')
})
