// `npm run soak`: echohub under connection churn for a bounded time (default 10 minutes). echohub
// runs in this process (so it can watch its collections), pinned to core 0; the clients
// (soak-clients.ts) run pinned to core 1: steady clients check every reply on every endpoint while
// churn opens and closes connections without pause. Every 10 s: RSS, the heap left by the last full
// collection (none is forced while clients run: a forced one stalls the loop that /health is timed
// against), active handles, the registry's connections, event-loop delay. At the end, a verdict:
// no lost or wrong reply, the registry back to 0, RSS and heap within 10% of their level after
// warm-up, and no growth trend, `/health` answered within 200 ms on every port (a poller of its own polls
// it every 250 ms). With `--attack`, hostile clients run beside the churn (soak-attacks.ts: a lab
// freeze, a history flood, inspector sockets, slow headers, huge bursts, foreign admin reads, ping
// floods), each in rounds bounded in count and time; the same checks judge the process, and what
// each attack met is printed. Exit code 0 when every check passed, 1 otherwise.
import { spawnSync, type ChildProcess } from 'node:child_process'
import http from 'node:http'
import { constants as perfConstants, monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks'
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { tuneGarbageCollector } from '../dist/app/heap.js'
import { fmt, table } from './report.js'
import { listenOverflows } from './procfs.js'
import { pinning, readJsonLines, startPinned, stopAll, waitExit, exited } from './servers.js'

// `npm run soak -- --delivery`: the exactly-once delivery soak (soak-delivery.ts) instead.
if (process.argv.includes('--delivery')) {
  const { runDeliverySoak } = await import('./soak-delivery.js')
  process.exit(await runDeliverySoak(process.argv.slice(2).filter((a) => a !== '--delivery')))
}

const { values: opt } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    warmup: { type: 'string' },
    churn: { type: 'string', default: '16' },
    attack: { type: 'boolean', default: false },
    attacks: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false }
  }
})
if (opt.help) {
  console.log(`usage: npm run soak -- [--minutes 10] [--warmup SECONDS] [--churn 16]
  --minutes    how long the churn runs (default 10)
  --warmup     seconds before the reference reading (default: 60, or a fifth of a shorter run)
  --churn      concurrent churn loops (default 16)
  --attack     hostile clients beside the churn: all seven attacks
  --attacks    only these attacks, comma-separated: freeze, history, inspectors, slow-headers,
               bursts, foreign-admin, ping-flood`)
  process.exit(0)
}
const minutes = Number(opt.minutes)
const runMs = minutes * 60_000
const warmupMs = opt.warmup !== undefined ? Number(opt.warmup) * 1000 : Math.min(60_000, runMs / 5)
if (!(minutes > 0) || !(warmupMs >= 0 && warmupMs < runMs)) {
  console.error('soak: --minutes must be > 0 and --warmup shorter than the run')
  process.exit(2)
}
const SAMPLE_MS = 10_000
const gc = (globalThis as { gc?: () => void }).gc

if (pinning.ok) spawnSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' })

// echohub runs here as `npm start` runs it: V8's garbage collector tuned first (app/heap.ts), then loaded.
tuneGarbageCollector()
const { startEchohub } = await import('../dist/app/server.js')
const { parseConfig } = await import('../dist/src/config.js')
const { pino } = await import('pino')

const parsed = parseConfig(['--host', '127.0.0.1', '--echo-port', '0', '--debug-port', '0', '--chat-port', '0',
  '--log-level', 'warn', '--max-connections-per-ip', '20000', '--rate-limit', '1000000', '--rate-burst', '1000000'])
if (parsed.help) throw new Error('unreachable')
const logger = pino({ level: 'warn' })
const hub = await startEchohub(parsed.config, { logger })
const port = (name: string) => hub.servers.find((s) => s.name === name)!.port

function stats (): Promise<{ connections: { current: number } }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: port('echo'), path: '/stats' }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (c: string) => { body += c }).on('end', () => {
        try {
          resolve(JSON.parse(body) as { connections: { current: number } })
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)))
        }
      })
    }).on('error', reject)
  })
}

interface Reading {
  t: number
  rss: number
  heap: number
  /** RSS in two parts: anonymous memory (the heap, buffers, the allocator) and pages mapped from files (node's own code, paged in as it runs). */
  anon: number
  file: number
  handles: number
  registry: number
  loopP99: number
  loopMax: number
  opened: number
  checked: number
  problems: number
}

interface AttackCounts { rounds: number, opened: number, refused: Record<string, number>, closes: Record<string, number>, errors: number, notes: Record<string, number> }
/** What the poller (soak-health.ts) reports when it stops. */
interface HealthFigures { worst_ms: Record<string, number>, worst_connect_ms: Record<string, number>, poller_loop_max_ms: number, polls: Record<string, number>, failures: Record<string, number>, slow: Record<string, number> }
interface ClientCounts {
  opened: number
  checked: number
  wrong: number
  lost: number
  churnErrors: number
  byKind: Record<string, number>
  problems?: string[]
  attacks?: Record<string, AttackCounts>
}
const attack = opt.attacks ?? (opt.attack ? 'all' : '')
/** The slowest /health answer the soak accepts, on any port. */
const HEALTH_MS = 200

const loop = monitorEventLoopDelay({ resolution: 10 })
loop.enable()
const readings: Reading[] = []
let latest: ClientCounts = { opened: 0, checked: 0, wrong: 0, lost: 0, churnErrors: 0, byKind: {} }
const t0 = Date.now()
const overflowsAtStart = listenOverflows()

/**
 * RSS once the collection's freed pages have left it: V8 returns them to the system from a
 * background thread, within tens of ms (read at once, RSS swung by a third from one reading to the
 * next). Sampled every 25 ms until it stops falling; the churn goes on meanwhile and raises it again.
 */
async function settledRss (): Promise<number> {
  let last = process.memoryUsage.rss()
  for (let i = 0; i < 40; i++) {
    await new Promise((resolve) => setTimeout(resolve, 25))
    const now = process.memoryUsage.rss()
    if (now >= last) return last
    last = now
  }
  return last
}

/** RssAnon and RssFile from /proc (Linux); zeros elsewhere. */
function rssParts (): { anon: number, file: number } {
  try {
    const status = readFileSync('/proc/self/status', 'utf8')
    const kB = (key: string) => 1024 * Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0)
    return { anon: kB('RssAnon'), file: kB('RssFile') }
  } catch {
    return { anon: 0, file: 0 }
  }
}

/** The heap used right after the last full (mark-compact) collection: what survives. */
let heapAfterFull: number | undefined
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    if (((entry as { detail?: { kind?: number } }).detail)?.kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR) heapAfterFull = process.memoryUsage().heapUsed
  }
}).observe({ entryTypes: ['gc'] })

/** A reading; `collect` forces a full collection first (only once the clients are gone). */
async function read (collect = false): Promise<Reading> {
  if (collect) {
    // Twice: the second collection starts by finishing the first one's sweeping.
    gc?.()
    gc?.()
  }
  const heap = collect || heapAfterFull === undefined ? process.memoryUsage().heapUsed : heapAfterFull
  const rss = await settledRss()
  const reading = {
    t: (Date.now() - t0) / 1000,
    rss,
    heap,
    ...rssParts(),
    handles: process.getActiveResourcesInfo().length,
    registry: (await stats()).connections.current,
    loopP99: loop.percentile(99) / 1e6,
    loopMax: loop.max / 1e6,
    opened: latest.opened,
    checked: latest.checked,
    problems: latest.wrong + latest.lost
  }
  loop.reset()
  return reading
}

const MB = 2 ** 20
function line (r: Reading): string {
  return `${fmt(r.t, 0).padStart(5)} s  rss ${fmt(r.rss / MB, 1)} MB  (anon ${fmt(r.anon / MB, 1)}, file ${fmt(r.file / MB, 1)})  heap ${fmt(r.heap / MB, 1)} MB  handles ${r.handles}  ` +
    `registry ${r.registry}  loop p99 ${fmt(r.loopP99, 1)} ms (max ${fmt(r.loopMax, 0)})  opened ${r.opened}  checked ${r.checked}  problems ${r.problems}`
}

console.log(`echohub soak: ${minutes} min of churn (${opt.churn} loops), warm-up ${warmupMs / 1000} s, a reading every ${SAMPLE_MS / 1000} s; ` +
  `node ${process.version}; ${pinning.ok ? 'echohub on core 0, clients on core 1' : `NOT pinned (${pinning.why})`}` +
  `${gc === undefined ? '; WARNING: no --expose-gc, the reading after the clients left is taken without a forced GC' : ''}`)
console.log(`ports: echo ${port('echo')}, echo-debug ${port('echo-debug')}, chat ${port('chat')}`)
if (attack !== '') console.log(`attackers on: ${attack}`)

const poller: ChildProcess = startPinned(1, 'soak-health.js', ['--ports', JSON.stringify({ echo: port('echo'), 'echo-debug': port('echo-debug'), chat: port('chat') }), '--slow-ms', String(HEALTH_MS)],
  { stdio: ['pipe', 'pipe', 'inherit'] })
const polled = new Promise<HealthFigures | null>((resolve) => {
  readJsonLines(poller.stdout!, (msg) => { if (msg.event === 'health') resolve(msg as unknown as HealthFigures) })
  poller.on('exit', () => resolve(null))
})
const child: ChildProcess = startPinned(1, 'soak-clients.js', ['--echo-port', String(port('echo')), '--debug-port', String(port('echo-debug')),
  '--chat-port', String(port('chat')), '--churn', String(opt.churn), ...(attack === '' ? [] : ['--attack', attack])], { stdio: ['pipe', 'pipe', 'inherit'] })
const done = new Promise<ClientCounts | null>((resolve) => {
  readJsonLines(child.stdout!, (msg) => {
    if (msg.event === 'tick') latest = msg as unknown as ClientCounts
    else if (msg.event === 'done') resolve(msg as unknown as ClientCounts)
  })
  child.on('exit', () => resolve(null))
})

let interrupted = false
process.on('SIGINT', () => { interrupted = true })
for (let at = SAMPLE_MS; at <= runMs && !interrupted && !exited(child); at += SAMPLE_MS) {
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, at - (Date.now() - t0))))
  const r = await read()
  readings.push(r)
  console.log(line(r))
}

// Stop the churn; the steady clients close properly and report.
child.stdin!.end()
poller.stdin!.end()
const final = await Promise.race([done, new Promise<null>((resolve) => setTimeout(() => resolve(null), 60_000))])
await waitExit(child, 5000)
const health = await Promise.race([polled, new Promise<null>((resolve) => setTimeout(() => resolve(null), 10_000))])
await waitExit(poller, 5000)
let registry = -1
for (const deadline = Date.now() + 15_000; Date.now() < deadline;) {
  registry = (await stats()).connections.current
  if (registry === 0) break
  await new Promise((resolve) => setTimeout(resolve, 200))
}
const after = await read(true)
console.log(`after the clients left: ${line(after)}`)

// The verdict.
const warm = readings.find((r) => r.t * 1000 >= warmupMs) ?? readings[0]
const steadyPart = readings.filter((r) => r.t * 1000 >= warmupMs)
const last = readings.at(-1)
/** Growth over the measured part by a least-squares line through the readings, as a share of the warm-up level. */
function trend (key: 'rss' | 'heap'): number {
  if (steadyPart.length < 3 || warm === undefined) return NaN
  const n = steadyPart.length
  const mt = steadyPart.reduce((a, r) => a + r.t, 0) / n
  const mv = steadyPart.reduce((a, r) => a + r[key], 0) / n
  const slope = steadyPart.reduce((a, r) => a + (r.t - mt) * (r[key] - mv), 0) / steadyPart.reduce((a, r) => a + (r.t - mt) ** 2, 0)
  return slope * (steadyPart.at(-1)!.t - steadyPart[0]!.t) / warm[key]
}
const checks: Array<[string, boolean | null, string]> = []
if (final === null) {
  checks.push(['the clients finished and reported', false, 'no final report from the clients'])
} else {
  checks.push(['no lost or wrong reply', final.lost + final.wrong === 0,
    `${final.checked} replies checked, ${final.lost} lost, ${final.wrong} wrong${final.problems?.length ? `; first: ${final.problems[0]}` : ''}`])
}
console.log(`listen queue overflows during the run (the kernel's TcpExt ListenOverflows, machine-wide): ${listenOverflows() - overflowsAtStart}`)
checks.push(['registry back to 0', registry === 0, `${registry} connections registered 15 s after the clients stopped`])
/**
 * Under attack, memory rises and falls with the attackers' rounds, so one reading against another
 * says more about the phase they fell in than about growth: the highest reading of the measured
 * part's first fifth is compared with the highest of its last fifth, each spanning whole rounds in
 * a long run. Without attackers, the warm-up reading and the last one, as always.
 */
function ends (key: 'rss' | 'heap'): { from: Reading, to: Reading } | undefined {
  if (warm === undefined || last === undefined || last === warm) return undefined
  if (attack === '') return { from: warm, to: last }
  const fifth = Math.max(1, Math.floor(steadyPart.length / 5))
  const highest = (rs: Reading[]) => rs.reduce((a, r) => (r[key] > a[key] ? r : a))
  return { from: highest(steadyPart.slice(0, fifth)), to: highest(steadyPart.slice(-fifth)) }
}
for (const key of ['rss', 'heap'] as const) {
  const pair = ends(key)
  const what = attack === '' ? `${key} within 10% of warm-up` : `${key} peaks within 10% (first fifth against last)`
  if (pair === undefined) {
    checks.push([what, null, 'the run is too short to compare'])
    continue
  }
  const { from: warm, to: last } = pair
  const growth = last[key] / warm[key] - 1
  checks.push([what, growth <= 0.10, `${fmt(warm[key] / MB, 1)} MB at ${fmt(warm.t, 0)} s, ${fmt(last[key] / MB, 1)} MB at ${fmt(last.t, 0)} s (${growth >= 0 ? '+' : ''}${fmt(100 * growth, 1)}%)`])
  const tr = trend(key)
  checks.push([`no ${key} growth trend`, Number.isFinite(tr) ? tr <= 0.05 : null,
    Number.isFinite(tr) ? `fitted line over ${steadyPart.length} readings: ${tr >= 0 ? '+' : ''}${fmt(100 * tr, 1)}% across the run (limit +5%)` : 'too few readings'])
}
if (health === null || Object.keys(health.polls).length === 0) {
  checks.push([`/health within ${HEALTH_MS} ms on every port`, null, 'no polls reported'])
} else {
  const worst = Math.max(...Object.values(health.worst_ms))
  const failures = Object.values(health.failures).reduce((a, b) => a + b, 0)
  checks.push([`/health within ${HEALTH_MS} ms on every port`, worst <= HEALTH_MS && failures === 0,
    `worst ${Object.entries(health.worst_ms).map(([name, ms]) => `${name} ${fmt(ms, 1)} ms (connect ${fmt(health.worst_connect_ms[name] ?? NaN, 1)})`).join(', ')} over ${Object.values(health.polls).reduce((a, b) => a + b, 0)} polls, ${Object.values(health.slow).reduce((a, b) => a + b, 0)} over ${HEALTH_MS} ms; ${failures} failed; the poller itself stalled at most ${fmt(health.poller_loop_max_ms, 0)} ms`])
}
const opened = final?.opened ?? latest.opened
console.log(`\n${minutes} min: ${opened} connections by the clients (${Object.entries((final ?? latest).byKind).map(([k, v]) => `${k}: ${v}`).join(', ')}; ` +
  `${(final ?? latest).churnErrors} churn errors), ${(final ?? latest).checked} replies checked`)
if (!gc) console.log('warning: run with node --expose-gc (npm run soak does) for a reading after a forced GC once the clients left')
const attacks = (final ?? latest).attacks
if (attacks !== undefined) {
  const kv = (o: Record<string, number>) => Object.entries(o).map(([k, v]) => `${k}: ${v}`).join(', ') || '-'
  console.log('\nwhat the attackers met (rounds; sockets opened; HTTP refusals by status; closes by code; errors; figures):')
  console.log(table([['attack', 'rounds', 'opened', 'refused', 'closes', 'errors', 'figures'],
    ...Object.entries(attacks).map(([name, a]) => [name, String(a.rounds), String(a.opened), kv(a.refused), kv(a.closes), String(a.errors), kv(a.notes)])]))
}
if (warm !== undefined && last !== undefined) {
  console.log(`memory: rss ${fmt(warm.rss / MB, 1)} -> ${fmt(last.rss / MB, 1)} MB (peak ${fmt(Math.max(...readings.map((r) => r.rss)) / MB, 1)}), ` +
    `heap ${fmt(warm.heap / MB, 1)} -> ${fmt(last.heap / MB, 1)} MB (peak ${fmt(Math.max(...readings.map((r) => r.heap)) / MB, 1)}), from ${fmt(warm.t, 0)} s to ${fmt(last.t, 0)} s`)
}
console.log(table([['check', 'verdict', 'detail'], ...checks.map(([name, pass, detail]) => [name, pass === null ? 'n/a' : pass ? 'ok' : 'FAILED', detail])]))
const failed = checks.some(([, pass]) => pass === false)
console.log(failed ? 'soak: FAILED' : 'soak: passed')

loop.disable()
await hub.close()
await stopAll()
process.exit(failed ? 1 : 0)
