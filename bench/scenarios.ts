// The scenarios, their targets, and how one run of a scenario against one server is measured: the
// load generator signals its measured window, and the servers' CPU is read from /proc at its edges.
import type { ChildProcess } from 'node:child_process'
import { CLK_TCK, fdCount, findProcess, rssBytes, sample, waitNs, type Sample } from './procfs.js'
import { exited, readJsonLines, ROOM, sleep, startPinned, stopServer, waitExit, type Server } from './servers.js'

export type ServerName = 'echohub' | 'baseline' | 'baseline gc-tuned' | 'socket.io' | 'echohub x2' | 'socket.io x2' | 'echohub deflate' | 'echohub tls' |
  'uWS' | 'echohub x6' | 'echohub no-suite'
export type Metric = 'rate' | 'p50' | 'p99' | 'cpuPer1k' | 'perCpu' | 'rss' | 'rssPerConn' | 'idleShare'

export const METRIC_NAMES: Record<Metric, string> = {
  rate: 'throughput',
  p50: 'p50 latency',
  p99: 'p99 latency',
  cpuPer1k: 'server CPU per delivery',
  perCpu: 'messages per server CPU second',
  rss: 'RSS after the run',
  rssPerConn: 'RSS per connection',
  idleShare: 'server CPU share while idle'
}

/**
 * `of` in this scenario over `versus` in `versusScenario` (this one if absent); without `versus`,
 * `of`'s own figure against `value` (an absolute target, in the metric's unit: bytes, a share of a
 * core). No `op`: shown only.
 */
export interface Ratio {
  metric: Metric
  of: ServerName
  versus?: ServerName
  versusScenario?: string
  op?: '<=' | '>='
  value?: number
}

/** The scale scenarios: many connections, sized by the descriptor limit (scale.ts). */
export interface ScaleSpec {
  /** idle: connections held, nothing sent; rooms: `rooms` of `members`, one message a second each. */
  type: 'idle' | 'rooms'
  conns: number
  rooms: number
  members: number
  /** Server processes (on Redis when more than one), each with a load generator process of its own. */
  instances: number
  /** Measured seconds (idle: the CPU window, two heartbeat periods). */
  seconds: number
}

export interface Scenario {
  name: string
  kind: 'echo' | 'broadcast' | 'idle' | 'scale'
  /** kind 'scale': the full size, and the size of a --quick run. */
  spec?: { full: ScaleSpec, quick: ScaleSpec }
  /** Left out of a run without --scenarios (minutes of setup, gigabytes of memory). */
  optIn?: boolean
  /** Echo and idle: the WebSocket path. */
  path: string
  size: number
  /** What messages hold: English text (default), or random data that does not compress. */
  payload?: 'text' | 'random'
  inflight: number
  /** Broadcast: every client joins one room and messages go to it. */
  room: boolean
  /** Broadcast in rooms: this many rooms of `receivers` each, a publisher in each (default 1). */
  rooms?: number
  /** Each run on a fresh server process, which gives RSS per connection. */
  fresh?: boolean
  servers: ServerName[]
  ratios: Ratio[]
}

export interface Scale {
  conns: number
  receivers: number
  idle: number
  duration: number
  warmup: number
  rounds: number
}

export const QUICK: Scale = { conns: 10, receivers: 100, idle: 200, duration: 1, warmup: 0.3, rounds: 1 }
export const FULL: Scale = { conns: 100, receivers: 1000, idle: 10_000, duration: 10, warmup: 2, rounds: 2 }

function echo (name: string, path: string, size: number, rate: number): Scenario {
  return {
    name,
    kind: 'echo',
    path,
    size,
    inflight: 1,
    room: false,
    servers: ['echohub', 'baseline', 'baseline gc-tuned', 'uWS'],
    ratios: [
      // the native ceiling: messages per server CPU second, echohub's over uWS's
      { metric: 'perCpu', of: 'echohub', versus: 'uWS', op: '>=', value: path === '/raw' ? 0.9 : 0.95 },
      { metric: 'p99', of: 'echohub', versus: 'uWS' },
      { metric: 'rate', of: 'echohub', versus: 'baseline', op: '>=', value: rate },
      { metric: 'p99', of: 'echohub', versus: 'baseline', op: '<=', value: 1.2 },
      { metric: 'cpuPer1k', of: 'echohub', versus: 'baseline' },
      // echohub's CLI tunes V8's garbage collector; the baseline given the same flags shows
      // what of the ratios above is those flags and what is echohub's own message path
      { metric: 'rate', of: 'echohub', versus: 'baseline gc-tuned' },
      { metric: 'p99', of: 'echohub', versus: 'baseline gc-tuned' },
      { metric: 'cpuPer1k', of: 'echohub', versus: 'baseline gc-tuned' }
    ]
  }
}

/** What socket.io comparisons show: the targets, then the other figures for information. */
function versusSocketio (of: ServerName, versus: ServerName): Ratio[] {
  return [
    { metric: 'cpuPer1k', of, versus, op: '<=', value: 0.5 },
    { metric: 'p99', of, versus, op: '<=', value: 1.0 },
    { metric: 'p50', of, versus },
    { metric: 'rate', of, versus },
    { metric: 'rss', of, versus }
  ]
}

function fanout (inflight: number): Scenario[] {
  const base = { kind: 'broadcast' as const, path: '', size: 64, inflight }
  return [
    {
      ...base,
      name: `broadcast-${inflight}`,
      room: false,
      servers: ['echohub', 'baseline', 'socket.io', 'uWS'],
      ratios: [
        { metric: 'cpuPer1k', of: 'echohub', versus: 'uWS', op: '<=', value: 1.1 },
        { metric: 'p99', of: 'echohub', versus: 'uWS', op: '<=', value: 1.1 },
        { metric: 'cpuPer1k', of: 'echohub', versus: 'baseline', op: '<=', value: 1 / 3 },
        { metric: 'p99', of: 'echohub', versus: 'baseline', op: '<=', value: 1.2 },
        ...versusSocketio('echohub', 'socket.io')
      ]
    },
    {
      ...base,
      name: `room-${inflight}`,
      room: true,
      servers: ['echohub', 'socket.io', 'uWS'],
      ratios: [
        { metric: 'cpuPer1k', of: 'echohub', versus: 'uWS' },
        { metric: 'p99', of: 'echohub', versus: 'uWS' },
        ...versusSocketio('echohub', 'socket.io'),
        { metric: 'cpuPer1k', of: 'echohub', versus: 'echohub', versusScenario: `broadcast-${inflight}`, op: '<=', value: 1.1 }
      ]
    },
    {
      ...base,
      name: `redis-room-${inflight}`,
      room: true,
      servers: ['echohub x2', 'socket.io x2'],
      ratios: [
        ...versusSocketio('echohub x2', 'socket.io x2'),
        { metric: 'cpuPer1k', of: 'echohub x2', versus: 'echohub', versusScenario: `room-${inflight}`, op: '<=', value: 1.5 },
        { metric: 'p99', of: 'echohub x2', versus: 'echohub', versusScenario: `room-${inflight}`, op: '<=', value: 2 }
      ]
    }
  ]
}

/**
 * What `--compression` and TLS cost, beside echohub's plain figures: the same echo or broadcast with
 * the transport on; and what the conformance suite costs when nobody runs it: the same echo on a
 * server started with `--no-conformance`. Shown, not targets.
 */
const VARIANTS = { deflate: 'echohub deflate', tls: 'echohub tls', 'no-suite': 'echohub no-suite' } as const
function transport (kind: keyof typeof VARIANTS, scenario: Omit<Scenario, 'servers' | 'ratios' | 'room' | 'path'> & { path?: string }): Scenario {
  const of: ServerName = VARIANTS[kind]
  return {
    path: '',
    room: false,
    ...scenario,
    servers: ['echohub', of],
    ratios: (['cpuPer1k', 'rate', 'p99'] as const).map((metric) => ({ metric, of, versus: 'echohub' as const }))
  }
}

export const SCENARIOS: Scenario[] = [
  echo('echo-json-64B', '/', 64, 0.95),
  echo('echo-json-16KiB', '/', 16_384, 0.95),
  echo('echo-raw-64B', '/raw', 64, 1.0),
  echo('echo-raw-16KiB', '/raw', 16_384, 1.0),
  ...fanout(1),
  ...fanout(8),
  {
    // many connections held on the chat, every room busy: what a connection costs, and latency
    name: 'rooms-10k',
    kind: 'broadcast',
    path: '',
    size: 64,
    inflight: 1,
    room: true,
    rooms: 10,
    fresh: true,
    servers: ['echohub', 'socket.io'],
    ratios: (['rssPerConn', 'cpuPer1k', 'p99', 'p50', 'rate'] as const).map((metric) => ({ metric, of: 'echohub' as const, versus: 'socket.io' as const }))
  },
  transport('deflate', { name: 'deflate-echo-raw-16KiB-text', kind: 'echo', path: '/raw', size: 16_384, inflight: 1 }),
  transport('deflate', { name: 'deflate-echo-raw-16KiB-random', kind: 'echo', path: '/raw', size: 16_384, payload: 'random', inflight: 1 }),
  transport('deflate', { name: 'deflate-broadcast-8-4KiB-text', kind: 'broadcast', size: 4096, inflight: 8 }),
  transport('deflate', { name: 'deflate-broadcast-8-4KiB-random', kind: 'broadcast', size: 4096, payload: 'random', inflight: 8 }),
  transport('tls', { name: 'tls-echo-raw-64B', kind: 'echo', path: '/raw', size: 64, inflight: 1 }),
  transport('tls', { name: 'tls-echo-raw-16KiB', kind: 'echo', path: '/raw', size: 16_384, inflight: 1 }),
  transport('tls', { name: 'tls-broadcast-8', kind: 'broadcast', size: 64, inflight: 8 }),
  transport('no-suite', { name: 'no-suite-echo-raw-64B', kind: 'echo', path: '/raw', size: 64, inflight: 1 }),
  transport('no-suite', { name: 'no-suite-echo-json-64B', kind: 'echo', path: '/', size: 64, inflight: 1 }),
  {
    // 18,000 idle connections on one process, the heartbeat on at its default period
    name: 'idle-18k',
    kind: 'scale',
    spec: {
      full: { type: 'idle', conns: 18_000, rooms: 0, members: 0, instances: 1, seconds: 65 },
      quick: { type: 'idle', conns: 300, rooms: 0, members: 0, instances: 1, seconds: 2 }
    },
    optIn: true,
    path: '/',
    size: 0,
    inflight: 0,
    room: false,
    servers: ['echohub'],
    ratios: [
      { metric: 'rssPerConn', of: 'echohub', op: '<=', value: 3 * 1024 },
      { metric: 'idleShare', of: 'echohub', op: '<=', value: 0.02 }
    ]
  },
  {
    // 180 rooms of 100 on one process, each room one 64 B message a second
    name: 'rooms-18k',
    kind: 'scale',
    spec: {
      full: { type: 'rooms', conns: 18_000, rooms: 180, members: 100, instances: 1, seconds: 30 },
      quick: { type: 'rooms', conns: 60, rooms: 6, members: 10, instances: 1, seconds: 2 }
    },
    optIn: true,
    path: '',
    size: 64,
    inflight: 1,
    room: true,
    servers: ['echohub', 'socket.io', 'uWS'],
    ratios: (['cpuPer1k', 'p99', 'p50', 'rssPerConn'] as const).flatMap((metric) => [
      { metric, of: 'echohub' as const, versus: 'uWS' as const },
      { metric, of: 'echohub' as const, versus: 'socket.io' as const }
    ])
  },
  {
    // 1,000 rooms of 100 over six processes on one Redis, most rooms on every instance
    name: 'rooms-100k',
    kind: 'scale',
    spec: {
      full: { type: 'rooms', conns: 100_000, rooms: 1000, members: 100, instances: 6, seconds: 30 },
      quick: { type: 'rooms', conns: 60, rooms: 6, members: 10, instances: 2, seconds: 2 }
    },
    optIn: true,
    path: '',
    size: 64,
    inflight: 1,
    room: true,
    servers: ['echohub x6'],
    ratios: [{ metric: 'cpuPer1k', of: 'echohub x6', versus: 'echohub', versusScenario: 'rooms-18k' }]
  },
  {
    name: 'idle',
    kind: 'idle',
    path: '/',
    size: 0,
    inflight: 0,
    room: false,
    servers: ['echohub', 'baseline'],
    ratios: [{ metric: 'rssPerConn', of: 'echohub', versus: 'baseline', op: '<=', value: 1.2 }]
  }
]

/** The figures of one run of one scenario on one server. */
export interface RunResult {
  rate?: number
  p50?: number
  p99?: number
  cpuShare?: number
  cpuPer1k?: number
  /** Messages (or deliveries) per server CPU second. */
  perCpu?: number
  /** Idle scenarios: the server's CPU share while it holds the connections. */
  idleShare?: number
  rss?: number
  rssPerConn?: number
  genShare?: number
  waitShare?: number
  genWaitShare?: number
  otherShare?: number
  redisShare?: number
  open?: number
  openSeconds?: number
  notes: string[]
  error?: string
}

export function startLoadgen (args: string[]): ChildProcess {
  return startPinned(1, 'loadgen.js', args, { stdio: ['pipe', 'pipe', 'inherit'] })
}

interface LoadgenResult {
  units: number
  rate: number
  p50_ms: number | null
  p99_ms: number | null
  closed: number
  unexpected: number
  gen_cpu_share: number
  counted_deliveries?: number
}

/**
 * Seconds the generator may take to open `connections` before it gives up: 10,000 members joining
 * ten rooms make 5 million presence events, about two minutes on a slow 2-core machine.
 */
function setupSeconds (connections: number): number {
  return 60 + Math.ceil(connections / 40)
}

/** Echo and broadcast: the generator signals the measured window; server CPU is read at its edges. */
export async function runLoad (server: Server, scenario: Scenario, scale: Scale): Promise<RunResult> {
  const args = ['--mode', scenario.kind, '--size', String(scenario.size), '--inflight', String(scenario.inflight),
    '--duration', String(scale.duration), '--warmup', String(scale.warmup), '--payload', scenario.payload ?? 'text']
  if (server.transport.tls) args.push('--tls')
  if (server.transport.deflate) args.push('--deflate')
  if (scenario.kind === 'echo') {
    args.push('--port', String(server.echoPort), '--path', scenario.path, '--conns', String(scale.conns))
  } else {
    const rooms = scenario.rooms ?? 1
    args.push('--ports', server.chatPorts.join(','), '--dialect', server.dialect, '--receivers', String(scale.receivers * rooms))
    if (scenario.room) args.push('--room', ROOM, '--rooms', String(rooms))
  }
  const connections = scenario.kind === 'echo' ? scale.conns : scale.receivers * (scenario.rooms ?? 1) + (scenario.rooms ?? 1)
  const setup = setupSeconds(connections)
  args.push('--setup', String(setup))
  const rss0 = sample(server.pids).rss
  // a shared Redis: its CPU is shown beside the servers', not in their figure (others use it too)
  const redisPid = server.name.endsWith('x2') ? findProcess('redis-server') : null
  const child = startLoadgen(args)
  let start: { s: Sample, gen: number, redis: number } | null = null
  const outcome = new Promise<{ msg: LoadgenResult, s: Sample, e: Sample, gen: [number, number], redis: [number, number] } | { error: string }>((resolve) => {
    // /proc/PID is gone if a server died: that ends the run with an error, not the runner
    const read = () => {
      try {
        return { s: sample(server.pids), gen: waitNs(child.pid!), redis: redisPid === null ? 0 : sample([redisPid]).cpu }
      } catch {
        resolve({ error: `a server exited during the run: ${server.tail.slice(-2).join(' | ')}` })
        return null
      }
    }
    readJsonLines(child.stdout!, (msg) => {
      if (msg.event === 'measure') {
        start = read()
      } else if (msg.event === 'result' && start !== null) {
        const end = read()
        if (end !== null) resolve({ msg: msg as unknown as LoadgenResult, s: start.s, e: end.s, gen: [start.gen, end.gen], redis: [start.redis, end.redis] })
      } else if (msg.event === 'error') {
        resolve({ error: String(msg.message) })
      }
    })
    child.on('exit', (code) => resolve({ error: `load generator exited with ${code} before reporting` }))
  })
  const limit = (scale.warmup + scale.duration + setup + 30) * 1000 // the generator gives up first
  const got = await Promise.race([outcome, sleep(limit).then(() => ({ error: `no result within ${limit / 1000} s` }))])
  child.stdin!.end()
  await waitExit(child, 5000)
  if (!exited(child)) child.kill('SIGKILL')
  if ('error' in got) return { error: got.error, notes: [] }

  const { msg, s, e } = got
  const wall = Number(e.t - s.t) / 1e9
  const serverCpu = (e.cpu - s.cpu) / CLK_TCK
  const cpuShare = serverCpu / wall
  const notes: string[] = []
  if (msg.closed > 0) notes.push(`${msg.closed} connections closed by the server`)
  if (msg.unexpected > 0) notes.push(`${msg.unexpected} unexpected frames`)
  if (scenario.kind === 'broadcast' && msg.counted_deliveries !== undefined) {
    const slack = scale.receivers * scenario.inflight * 2
    if (Math.abs(msg.counted_deliveries - msg.units) > slack) notes.push(`receivers counted ${msg.counted_deliveries} of ${msg.units} deliveries`)
  }
  const redisShare = redisPid === null ? undefined : (got.redis[1] - got.redis[0]) / CLK_TCK / wall
  return {
    rate: msg.rate,
    p50: msg.p50_ms ?? undefined,
    p99: msg.p99_ms ?? undefined,
    cpuShare,
    cpuPer1k: msg.units > 0 ? (serverCpu * 1000) / (msg.units / 1000) : NaN,
    perCpu: serverCpu > 0 ? msg.units / serverCpu : NaN,
    rss: e.rss,
    // only a fresh server's growth is the connections' (a long-lived one has grown before)
    rssPerConn: scenario.fresh === true ? (e.rss - rss0) / connections : undefined,
    genShare: msg.gen_cpu_share,
    waitShare: (e.wait - s.wait) / 1e9 / wall,
    genWaitShare: (got.gen[1] - got.gen[0]) / 1e9 / wall,
    // whatever else ran on the machine: its time was not ours, and the figures are noisier for it
    otherShare: Math.max(0, (e.busy - s.busy) / CLK_TCK / wall - cpuShare - msg.gen_cpu_share - (redisShare ?? 0)),
    redisShare,
    notes
  }
}

/**
 * Idle: open N connections from generator processes of <= 5000 each, then read the server's RSS.
 * Each run gets a fresh server process: a heap that already grew once would hide the growth.
 */
export async function runFresh (launch: () => Promise<Server>, run: (server: Server) => Promise<RunResult>): Promise<RunResult> {
  const server = await launch()
  if (server.missing !== undefined) return { error: `could not start a fresh ${server.name}: ${server.missing}`, notes: [] }
  try {
    return await run(server)
  } finally {
    await stopServer(server)
  }
}

export function runIdle (launch: () => Promise<Server>, scenario: Scenario, scale: Scale): Promise<RunResult> {
  return runFresh(launch, (server) => measureIdle(server, scenario, scale))
}

async function measureIdle (server: Server, scenario: Scenario, scale: Scale): Promise<RunResult> {
  const pid = server.pids[0]!
  const total = scale.idle
  const perProcess = 5000 // fds are capped at 20000 per process; stay well under
  const rss0 = rssBytes(pid)
  const fd0 = fdCount(pid)
  const gens: Array<{ child: ChildProcess, opened: Promise<{ open: number, failed: number, error?: string }> }> = []
  for (let left = total; left > 0; left -= perProcess) {
    const n = Math.min(perProcess, left)
    const child = startLoadgen(['--mode', 'idle', '--port', String(server.echoPort), '--path', scenario.path,
      '--conns', String(n), '--hold', '300'])
    const opened = new Promise<{ open: number, failed: number, error?: string }>((resolve) => {
      readJsonLines(child.stdout!, (msg) => {
        if (msg.event === 'open') resolve({ open: Number(msg.open), failed: Number(msg.failed), error: msg.error as string | undefined })
        else if (msg.event === 'error') resolve({ open: 0, failed: n, error: String(msg.message) })
      })
      child.on('exit', () => resolve({ open: 0, failed: n, error: 'load generator exited early' }))
    })
    gens.push({ child, opened })
  }
  const notes: string[] = []
  const t0 = Date.now()
  try {
    const reports = await Promise.race([
      Promise.all(gens.map((g) => g.opened)),
      sleep(180_000).then(() => null)
    ])
    if (reports === null) return { error: 'idle connections not all open within 180 s', notes }
    const open = reports.reduce((a, r) => a + r.open, 0)
    const failed = reports.reduce((a, r) => a + r.failed, 0)
    if (failed > 0) notes.push(`${failed} of ${total} failed: ${reports.find((r) => r.error)?.error}`)
    const openSeconds = (Date.now() - t0) / 1000
    // the server may still be accepting the last ones; wait until it holds the sockets
    const deadline = Date.now() + 10_000
    while (fdCount(pid) - fd0 < open && Date.now() < deadline) await sleep(50)
    await sleep(total < 1000 ? 200 : 1000) // let allocation settle before reading RSS
    const fds = fdCount(pid) - fd0
    const rss = rssBytes(pid)
    if (fds < open * 0.99) notes.push(`server holds ${fds} new fds for ${open} connections`)
    return { rss, rssPerConn: (rss - rss0) / open, notes, open, openSeconds }
  } finally {
    for (const g of gens) g.child.stdin!.end()
    await Promise.all(gens.map((g) => waitExit(g.child, 10_000)))
    for (const g of gens) if (!exited(g.child)) g.child.kill('SIGKILL')
  }
}
