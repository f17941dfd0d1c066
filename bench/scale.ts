// The scale scenarios: many connections, more than one load generator process can hold, on a
// fresh server (or six). `idle-18k` holds idle connections and measures what they cost at rest;
// `rooms-18k` and `rooms-100k` hold rooms of 100 in which one member publishes a message a second,
// and measure CPU per delivery, the latency to the farthest member, and RSS per connection.
// Each process may open at most as many descriptors as `ulimit -n` allows (here 20,000, hard): a
// scenario is sized to it, or refused with the reason.
import type { ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { CLK_TCK, fdCount, findProcess, machineBusyTicks, rssBytes, sample, waitNs } from './procfs.js'
import { startLoadgen, type RunResult, type ScaleSpec, type Scenario } from './scenarios.js'
import { exited, readJsonLines, ROOM, sleep, stopServer, waitExit, type Server } from './servers.js'

/** The soft limit on open descriptors of this process (children inherit it): /proc/self/limits. */
export function descriptorLimit (): number {
  const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'))
  const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0]
  return soft === undefined || soft === 'unlimited' ? Infinity : Number(soft)
}

/** Descriptors a process needs besides its connections (listening sockets, pipes, Redis, node's own). */
const SPARE_FDS = 200
/** Connections one generator process opens at most for idle connections. */
const IDLE_PER_GENERATOR = 4500

/** Null if the scenario fits the descriptor limit, else the line that says why it is not run. */
export function sizeCheck (name: string, spec: ScaleSpec): string | null {
  const limit = descriptorLimit()
  const perServer = Math.ceil(spec.conns / spec.instances) + SPARE_FDS
  if (perServer > limit) {
    return `${name} needs ${perServer} descriptors in each server process, and this machine allows ${limit} (ulimit -n): not run`
  }
  return null
}

/** Source addresses for generator `g`: two of its own, 127.0.0.2 and up. */
const sourcesOf = (g: number) => [`127.0.0.${2 + 2 * g}`, `127.0.0.${3 + 2 * g}`]

function wholeMachine (): { busy: number, t: bigint } {
  return { busy: machineBusyTicks(), t: process.hrtime.bigint() }
}

interface Gen { child: ChildProcess, lines: Array<Record<string, unknown>>, waiters: Array<() => void> }

function generator (args: string[]): Gen {
  const child = startLoadgen(args)
  const gen: Gen = { child, lines: [], waiters: [] }
  readJsonLines(child.stdout!, (msg) => {
    gen.lines.push(msg)
    for (const w of gen.waiters.splice(0)) w()
  })
  child.on('exit', () => { for (const w of gen.waiters.splice(0)) w() })
  return gen
}

/** The first line of `event` (or an error line) from a generator, or an error if it exits or times out. */
async function lineOf (gen: Gen, event: string, ms: number): Promise<Record<string, unknown>> {
  const deadline = Date.now() + ms
  for (;;) {
    const line = gen.lines.find((l) => l.event === event || l.event === 'error')
    if (line !== undefined) {
      if (line.event === 'error') throw new Error(String(line.message))
      return line
    }
    if (exited(gen.child)) {
      await sleep(500) // its last lines may still be in the pipe
      if (gen.lines.some((l) => l.event === event || l.event === 'error')) continue
      throw new Error(`load generator exited with ${gen.child.exitCode} before "${event}"`)
    }
    if (Date.now() > deadline) throw new Error(`no "${event}" from the load generator within ${ms / 1000} s`)
    await Promise.race([new Promise<void>((resolve) => gen.waiters.push(resolve)), sleep(1000)])
  }
}

async function stopGenerators (gens: Gen[]): Promise<void> {
  for (const g of gens) g.child.stdin!.end()
  await Promise.all(gens.map((g) => waitExit(g.child, 10_000)))
  for (const g of gens) if (!exited(g.child)) g.child.kill('SIGKILL')
}

/** Seconds to open `n` connections before giving up (each join is news to every member already in, and a busy machine is slower). */
const setupSeconds = (n: number) => 120 + Math.ceil(n / 6)

/**
 * idle: `spec.conns` connections from generator processes of at most 4,500 each (each from source
 * addresses of its own), then RSS per connection, and the server's CPU over `spec.seconds` while
 * they stay idle (the heartbeat's cost: two of its default 30 s periods).
 */
export async function measureIdleScale (server: Server, scenario: Scenario, spec: ScaleSpec): Promise<RunResult> {
  const pid = server.pids[0]!
  const rss0 = rssBytes(pid)
  const fd0 = fdCount(pid)
  const gens: Gen[] = []
  const notes: string[] = []
  const t0 = Date.now()
  try {
    for (let left = spec.conns, g = 0; left > 0; left -= IDLE_PER_GENERATOR, g++) {
      const n = Math.min(IDLE_PER_GENERATOR, left)
      gens.push(generator(['--mode', 'idle', '--port', String(server.echoPort), '--path', scenario.path, '--conns', String(n),
        '--hold', String(spec.seconds + 600), '--setup', String(setupSeconds(n)), '--sources', sourcesOf(g).join(',')]))
    }
    const reports = await Promise.all(gens.map((g) => lineOf(g, 'open', setupSeconds(IDLE_PER_GENERATOR) * 1000)))
    const open = reports.reduce((a, r) => a + Number(r.open), 0)
    const failed = reports.reduce((a, r) => a + Number(r.failed), 0)
    if (failed > 0) notes.push(`${failed} of ${spec.conns} failed: ${String(reports.find((r) => r.error !== undefined)?.error)}`)
    const openSeconds = (Date.now() - t0) / 1000
    const deadline = Date.now() + 10_000
    while (fdCount(pid) - fd0 < open && Date.now() < deadline) await sleep(100)
    await sleep(spec.conns < 1000 ? 200 : 2000) // let allocation settle
    const rss = rssBytes(pid)
    const fds = fdCount(pid) - fd0
    if (fds < open * 0.99) notes.push(`server holds ${fds} new fds for ${open} connections`)
    // CPU while idle: the server's, and the whole machine's to show how quiet it was
    const s = sample(server.pids)
    const m0 = wholeMachine()
    await sleep(spec.seconds * 1000)
    const e = sample(server.pids)
    const m1 = wholeMachine()
    const wall = Number(e.t - s.t) / 1e9
    const idleShare = (e.cpu - s.cpu) / CLK_TCK / wall
    const machine = (m1.busy - m0.busy) / CLK_TCK / (Number(m1.t - m0.t) / 1e9)
    notes.push(`${open} open in ${openSeconds.toFixed(1)} s; whole machine busy ${machine.toFixed(2)} core meanwhile`)
    if (fdCount(pid) - fd0 < open * 0.99) notes.push(`the server dropped connections while idle: ${fdCount(pid) - fd0} of ${open} left`)
    return {
      rss: e.rss,
      rssPerConn: (rss - rss0) / open,
      idleShare,
      cpuShare: idleShare,
      otherShare: Math.max(0, machine - idleShare),
      open,
      openSeconds,
      notes
    }
  } finally {
    await stopGenerators(gens)
  }
}

/** Merged latency figures: p50 and p99 of all deliveries and of each message's farthest member. */
function mergeLatency (reports: Array<Record<string, unknown>>): { p50: number, p99: number, farP50: number, farP99: number, messages: number, short: number } {
  const hist = new Map<number, number>()
  for (const r of reports) for (const [us, c] of r.hist as Array<[number, number]>) hist.set(us, (hist.get(us) ?? 0) + c)
  const far = new Map<string, { max: number, n: number }>()
  for (const r of reports) {
    for (const [key, max, n] of r.farthest as Array<[string, number, number]>) {
      const f = far.get(key)
      if (f === undefined) far.set(key, { max, n })
      else {
        f.n += n
        if (max > f.max) f.max = max
      }
    }
  }
  const sorted = [...hist].sort((a, b) => a[0] - b[0])
  const total = sorted.reduce((a, [, c]) => a + c, 0)
  const pct = (p: number) => {
    let seen = 0
    for (const [us, c] of sorted) {
      seen += c
      if (seen >= Math.ceil(p * total)) return us / 1000
    }
    return NaN
  }
  const maxes = [...far.values()].map((f) => f.max).sort((a, b) => a - b)
  const farPct = (p: number) => maxes.length === 0 ? NaN : maxes[Math.min(maxes.length - 1, Math.ceil(p * maxes.length) - 1)]! / 1000
  return { p50: pct(0.5), p99: pct(0.99), farP50: farPct(0.5), farP99: farPct(0.99), messages: far.size, short: 0 }
}

/**
 * rooms: `spec.rooms` rooms of `spec.members` over the server's processes, one generator process
 * per server process (it opens that process's members), one message a second per room; the window
 * is `spec.seconds` after a warm-up.
 */
export async function measureRoomsScale (server: Server, spec: ScaleSpec, warmup: number): Promise<RunResult> {
  const instances = server.chatPorts.length
  const perGen = Math.ceil(spec.conns / instances)
  const rss0 = sample(server.pids).rss
  const redisPid = instances > 1 ? findProcess('redis-server') : null
  const gens: Gen[] = []
  const notes: string[] = []
  const t0 = Date.now()
  try {
    for (let g = 0; g < instances; g++) {
      gens.push(generator(['--mode', 'rooms', '--port', String(server.chatPorts[g]), '--dialect', server.dialect, '--room', `${ROOM}-${process.pid}`,
        '--rooms', String(spec.rooms), '--members', String(spec.members), '--instances', String(instances), '--index', String(g),
        '--size', '64', '--rate', '1', '--sources', sourcesOf(g).join(','), '--setup', String(setupSeconds(perGen)),
        // on Redis, fewer joins at once: a process whose Redis heartbeat lapses puts every member back
        '--concurrency', instances > 1 ? '20' : '100',
        '--warmup', String(warmup + 5), '--duration', String(spec.seconds + 120)]))
    }
    const ready = await Promise.all(gens.map((g) => lineOf(g, 'ready', setupSeconds(perGen) * 1000)))
    const openSeconds = (Date.now() - t0) / 1000
    const conns = ready.reduce((a, r) => a + Number(r.connections), 0)
    await sleep(warmup * 1000)
    const rss = sample(server.pids).rss
    const s = sample(server.pids)
    const r0 = redisPid === null ? 0 : sample([redisPid]).cpu
    const genWait0 = gens.reduce((a, g) => a + waitNs(g.child.pid!), 0)
    const h0 = process.hrtime.bigint()
    for (const g of gens) g.child.stdin!.write(`measure ${h0}\n`)
    await sleep(spec.seconds * 1000)
    const e = sample(server.pids)
    const genWait1 = gens.reduce((a, g) => a + waitNs(g.child.pid!), 0)
    const r1 = redisPid === null ? 0 : sample([redisPid]).cpu
    const h1 = process.hrtime.bigint()
    for (const g of gens) g.child.stdin!.write(`report ${h1}\n`)
    const reports = await Promise.all(gens.map((g) => lineOf(g, 'report', 90_000)))
    const wall = Number(e.t - s.t) / 1e9
    const serverCpu = (e.cpu - s.cpu) / CLK_TCK
    const published = reports.reduce((a, r) => a + Number(r.published), 0)
    const received = reports.reduce((a, r) => a + Number(r.received), 0)
    const closed = reports.reduce((a, r) => a + Number(r.closed), 0)
    const genShare = reports.reduce((a, r) => a + Number(r.gen_cpu_share), 0)
    const lat = mergeLatency(reports)
    const expected = published * spec.members
    if (received < expected) notes.push(`${expected - received} of ${expected} deliveries missing`)
    if (closed > 0) {
      const codes: Record<string, number> = {}
      for (const r of reports) for (const [code, n] of Object.entries(r.close_codes as Record<string, number> ?? {})) codes[code] = (codes[code] ?? 0) + n
      notes.push(`${closed} connections closed by the server (close frames: ${Object.entries(codes).map(([c, n]) => `${c} x${n}`).join(', ') || 'none'})`)
    }
    const redisShare = redisPid === null ? undefined : (r1 - r0) / CLK_TCK / wall
    if (redisShare !== undefined && received > 0) notes.push(`Redis ${fmtUs(((r1 - r0) / CLK_TCK) * 1e6 / received)} µs per delivery`)
    const genWait = (genWait1 - genWait0) / 1e9 / wall / gens.length
    if (genWait > 0.05) notes.push(`other processes kept the load generators off a core ${(100 * genWait).toFixed(0)}% of the time: latency is theirs as much as the server's`)
    notes.push(`${conns} connections (${published} messages) opened and joined in ${openSeconds.toFixed(0)} s; ` +
      `p99 of every delivery ${lat.p99.toFixed(2)} ms, p50 ${lat.p50.toFixed(2)} ms; p50/p99 columns: the farthest member`)
    const busy = (e.busy - s.busy) / CLK_TCK / wall
    return {
      rate: received / wall,
      p50: lat.farP50,
      p99: lat.farP99,
      cpuShare: serverCpu / wall,
      cpuPer1k: received > 0 ? serverCpu * 1e6 / received : NaN,
      perCpu: serverCpu > 0 ? received / serverCpu : NaN,
      rss: e.rss,
      rssPerConn: (rss - rss0) / conns,
      genShare,
      waitShare: (e.wait - s.wait) / 1e9 / wall / server.pids.length,
      genWaitShare: (genWait1 - genWait0) / 1e9 / wall / gens.length,
      redisShare,
      otherShare: Math.max(0, busy - serverCpu / wall - genShare - (redisShare ?? 0)),
      open: conns,
      openSeconds,
      notes
    }
  } finally {
    await stopGenerators(gens)
  }
}

const fmtUs = (x: number) => x.toFixed(2)

/** A fresh server (or group) for one run, stopped after it. */
export async function runScale (launch: () => Promise<Server>, scenario: Scenario, spec: ScaleSpec, warmup: number): Promise<RunResult> {
  const server = await launch()
  if (server.missing !== undefined) return { error: `could not start ${server.name}: ${server.missing}`, notes: [] }
  const warned = (r: RunResult): RunResult => {
    if (server.warnings > 0) r.notes.push(`the server logged ${server.warnings} warn/error lines, first: ${server.firstWarning}`)
    return r
  }
  try {
    return warned(spec.type === 'idle' ? await measureIdleScale(server, scenario, spec) : await measureRoomsScale(server, spec, warmup))
  } catch (err) {
    return warned({ error: (err as Error).message, notes: [] })
  } finally {
    await stopServer(server)
  }
}
