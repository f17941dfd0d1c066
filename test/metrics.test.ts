// /metrics: Node's process metrics are collected from an app's first scrape, once per process
// however many apps serve them, and released when the last of those apps closes.
import t, { type Test } from 'tap'
import Fastify from 'fastify'
import { stats } from '../index.js'
import { processMetricsHolders } from '../routes/metrics.js'

const count = (text: string, pattern: RegExp) => text.match(pattern)?.length ?? 0

/** Two apps serving /metrics, closed in teardown. */
async function twoApps (t: Test) {
  const apps = [Fastify(), Fastify()] as const
  t.teardown(async () => { for (const app of apps) await app.close() })
  for (const app of apps) await app.register(stats)
  return apps
}

t.test('process metrics: started by the first scrape, one collection shared by every app, released by the last to close', async (t) => {
  t.equal(processMetricsHolders(), 0, 'nothing collected before an app serves /metrics')
  const [a, b] = await twoApps(t)
  await a.ready()
  await b.ready()
  t.equal(processMetricsHolders(), 0, 'serving /metrics collects nothing (no GC observer) until it is scraped')
  for (const [i, app] of [a, b].entries()) {
    const body = (await app.inject('/metrics')).body
    t.equal(processMetricsHolders(), i + 1, 'each app joins the one collection at its first scrape')
    t.equal(count(body, /^process_cpu_user_seconds_total /gm), 1, 'each /metrics shows the process metrics once')
    t.equal(count(body, /^# TYPE nodejs_gc_duration_seconds histogram$/gm), 1, 'GC durations among them')
    t.equal(count(body, /^# TYPE echohub_connections gauge$/gm), 1, 'next to its own figures')
  }
  await a.inject('/metrics')
  t.equal(processMetricsHolders(), 2, 'a second scrape joins nothing more')
  await a.close()
  t.equal(processMetricsHolders(), 1)
  t.match((await b.inject('/metrics')).body, /^nodejs_heap_size_used_bytes \d/m, 'the other app still shows them')
  await b.close()
  t.equal(processMetricsHolders(), 0, 'released once the last app closed')
})

t.test('process metrics: an app closed before any scrape holds nothing to release', async (t) => {
  const [a, b] = await twoApps(t)
  await b.ready()
  await b.inject('/metrics')
  await a.ready()
  await a.close()
  t.equal(processMetricsHolders(), 1, 'the scraped app keeps its collection')
  t.match((await b.inject('/metrics')).body, /^process_cpu_user_seconds_total \d/m)
  await b.close()
  t.equal(processMetricsHolders(), 0)
})
