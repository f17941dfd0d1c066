// `npm run bench`: runs echohub beside the hand-rolled `ws` baseline (baseline.ts) and socket.io
// (socketio-server.ts), drives each with loadgen.ts in turn (A B A B), and prints throughput,
// latency, server CPU per message or delivery and RSS, with the ratios against echohub's targets.
// Servers are pinned to core 0 and the generator to core 1, so the two sides do not fight.
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { CLK_TCK } from './procfs.js'
import { fmt, summarize, table, type Row } from './report.js'
import { FULL, QUICK, runFresh, runIdle, runLoad, SCENARIOS, type RunResult, type Scale, type ServerName } from './scenarios.js'
import { runScale, sizeCheck } from './scale.js'
import { exited, pinning, probe, serverNodeFlags, startBaseline, startEchohub, startEchohubGroup, startEchohubPair, startSocketio, startUws, stopAll, stopServer, type Server } from './servers.js'

const HELP = `usage: npm run bench -- [options]
  --duration SECONDS   measured seconds per run (default 10; 1 with --quick)
  --warmup SECONDS     unmeasured seconds before each run (default 2; 0.3 with --quick)
  --rounds N           A B rounds per scenario; medians are reported (default 2; 1 with --quick)
  --scenarios a,b      run only these (default: all; see the list below)
  --quick              smoke run: 10 connections, 100 receivers, 200 idle, ~1 s per run,
                       and the scale scenarios scaled down (60-300 connections)
  --json               also print the results as JSON
  --profile DIR        run the servers under node --cpu-prof, profiles written to DIR
                       (summarize one with node dist-bench/profile.js FILE)
scenarios: ${SCENARIOS.filter((s) => s.optIn !== true).map((s) => s.name).join(', ')}
scale scenarios (only when named, or scaled down with --quick; one round each, fresh servers):
  ${SCENARIOS.filter((s) => s.optIn === true).map((s) => s.name).join(', ')}`

function usage (message: string): never {
  console.error(`bench: ${message}\n${HELP}`)
  process.exit(2)
}

let opt: { duration?: string, warmup?: string, rounds?: string, scenarios?: string, profile?: string, quick: boolean, json: boolean, help: boolean }
try {
  opt = parseArgs({
    options: {
      duration: { type: 'string' },
      warmup: { type: 'string' },
      rounds: { type: 'string' },
      scenarios: { type: 'string' },
      quick: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      profile: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false }
    }
  }).values as typeof opt
} catch (err) {
  usage((err as Error).message)
}
if (opt.help) {
  console.log(HELP)
  process.exit(0)
}

if (opt.profile !== undefined) serverNodeFlags.push('--cpu-prof', '--cpu-prof-dir', path.resolve(opt.profile))

const base = opt.quick ? QUICK : FULL
const scale: Scale = {
  ...base,
  duration: Number(opt.duration ?? base.duration),
  warmup: Number(opt.warmup ?? base.warmup),
  rounds: Number(opt.rounds ?? base.rounds)
}
if (!(scale.duration > 0) || !(scale.warmup >= 0) || !(Number.isInteger(scale.rounds) && scale.rounds >= 1)) usage('bad --duration, --warmup or --rounds')
const selected = opt.scenarios === undefined
  ? SCENARIOS.filter((s) => s.optIn !== true || opt.quick)
  : opt.scenarios.split(',').map((name) => SCENARIOS.find((s) => s.name === name.trim()) ?? usage(`unknown scenario ${name}`))

let interrupted: string | null = null
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted !== null) return
    interrupted = signal
    console.error(`\nbench: ${signal}, stopping everything it started`)
    void stopAll().finally(() => process.exit(130))
  })
}

const LAUNCH: Record<ServerName, () => Promise<Server>> = {
  echohub: () => startEchohub(scale),
  baseline: () => startBaseline(),
  'baseline gc-tuned': () => startBaseline(true),
  'socket.io': () => startSocketio(1),
  'echohub x2': () => startEchohubPair(scale),
  'socket.io x2': () => startSocketio(2),
  'echohub deflate': () => startEchohub(scale, { tls: false, deflate: true }),
  'echohub tls': () => startEchohub(scale, { tls: true, deflate: false }),
  'echohub no-suite': () => startEchohub(scale, { tls: false, deflate: false }, { name: 'echohub no-suite', args: ['--no-conformance'] }),
  uWS: () => startUws(),
  'echohub x6': () => startEchohubGroup(scale, 6, 'echohub x6')
}

/**
 * The scale scenarios' groups: as many processes as the spec asks (fewer with --quick). Their
 * heartbeat pings every 120 s instead of 30: twelve processes opening 100,000 connections (each
 * join news to up to 99 members) on a 2-core machine busy with other work left the generators more
 * than 30 s behind on their reads, and the heartbeat rightly cut them off. For the same reason
 * their Redis heartbeat may lapse for 60 s before the others take a process for dead.
 */
function launchFor (name: ServerName, instances: number): () => Promise<Server> {
  return name === 'echohub x6'
    ? () => startEchohubGroup(scale, instances, 'echohub x6', ['--heartbeat-interval', '120000', '--redis-heartbeat-ttl', '60000'])
    : LAUNCH[name]
}

async function main (): Promise<void> {
  const started = Date.now()
  const load = os.loadavg()[0]!
  console.log(`echohub bench: ${scale.rounds} round(s) x ${scale.duration} s (+${scale.warmup} s warm-up) per scenario, ` +
    `${scale.conns} echo connections, ${scale.receivers} chat receivers, ${scale.idle} idle; ` +
    `node ${process.version}, CLK_TCK ${CLK_TCK}`)
  console.log(pinning.ok
    ? 'pinned: servers on core 0, load generator on core 1'
    : `NOT pinned (${pinning.why}): servers and generator share the cores, figures swing more`)
  if (load > 0.5) console.log(`note: load average ${load.toFixed(2)} before the bench; other work on this machine makes the figures noisier`)

  // Servers start on first use and run until the end (the idle scenario starts fresh ones).
  const servers = new Map<ServerName, Server>()
  const serverFor = async (name: ServerName): Promise<Server> => {
    let server = servers.get(name)
    if (server === undefined) {
      server = await LAUNCH[name]()
      servers.set(name, server)
      console.log(server.missing !== undefined ? `${name} not measured: ${server.missing}` : `${name} pid ${server.pids.join(',')}: ${server.command ?? ''}`)
    }
    return server
  }

  const results: Row[] = []
  const warnings: string[] = []
  for (const scenario of selected) {
    if (interrupted !== null) return
    const skip: Partial<Record<ServerName, string | null>> = {}
    const spec = scenario.spec === undefined ? undefined : opt.quick ? scenario.spec.quick : scenario.spec.full
    const tooBig = spec === undefined ? null : sizeCheck(scenario.name, spec)
    if (tooBig !== null) console.log(`  ${tooBig}`)
    for (const name of scenario.servers) {
      // scale scenarios start fresh servers; uWS is only checked to be there
      if (tooBig !== null || scenario.kind === 'idle') skip[name] = tooBig
      else if (scenario.kind !== 'scale') skip[name] = await probe(await serverFor(name), scenario)
      else skip[name] = name === 'uWS' ? (await serverFor(name)).missing ?? null : null
      if (skip[name] !== null && tooBig === null) console.log(`  ${scenario.name} ${name} skipped: ${skip[name]}`)
    }
    const rounds = scenario.kind === 'scale' ? 1 : scale.rounds
    for (let round = 1; round <= rounds; round++) {
      for (const name of scenario.servers) {
        if (interrupted !== null) return
        const row = { scenario: scenario.name, server: name, round, notes: [] }
        const why = skip[name]
        if (why !== null && why !== undefined) {
          results.push({ ...row, skipped: why })
          continue
        }
        process.stdout.write(`  ${scenario.name} ${name} round ${round}... `)
        let r: RunResult
        try {
          if (scenario.kind === 'scale') {
            r = await runScale(launchFor(name, spec!.instances), scenario, spec!, opt.quick ? 0.5 : 5)
          } else if (scenario.kind === 'idle') {
            r = await runIdle(LAUNCH[name], scenario, scale)
          } else if (scenario.fresh === true) {
            r = await runFresh(LAUNCH[name], (server) => runLoad(server, scenario, scale))
          } else {
            const server = await serverFor(name)
            const dead = server.children.find(exited)
            r = dead !== undefined
              ? { error: `server exited: ${server.tail.slice(-2).join(' | ')}`, notes: [] }
              : await runLoad(server, scenario, scale)
          }
        } catch (err) { // e.g. /proc/PID gone: the server died under load
          r = { error: (err as Error).message, notes: [] }
        }
        results.push({ ...row, ...r })
        if (r.error !== undefined) {
          console.log(`error: ${r.error}${r.notes.length > 0 ? ` (${r.notes.join('; ')})` : ''}`)
          continue
        }
        console.log(scenario.kind === 'idle' || spec?.type === 'idle'
          ? `${fmt(r.rss! / 2 ** 20, 1)} MB RSS, ${fmt(r.rssPerConn! / 1024, 2)} KB/conn` +
            (r.idleShare !== undefined ? `, idle CPU ${fmt(100 * r.idleShare, 2)}% of a core, opened in ${fmt(r.openSeconds, 1)} s` : '')
          : `${fmt(r.rate, 0)}/s, p99 ${fmt(r.p99)} ms, server ${fmt(r.cpuShare)} core, elsewhere ${fmt(r.otherShare)} core` +
            (r.rssPerConn !== undefined ? `, ${fmt(r.rssPerConn / 1024, 1)} KB/conn` : ''))
        // a smoke run's 10 connections saturate nothing; idle runs use no CPU to speak of
        if (opt.quick || scenario.kind === 'idle' || scenario.kind === 'scale') continue
        const tag = `${scenario.name} ${name} round ${round}`
        if (r.waitShare! > 0.05) {
          warnings.push(`${tag}: other processes kept the server off its core ${fmt(100 * r.waitShare!, 0)}% of the time ` +
            `(they used ${fmt(r.otherShare)} core): its msg/s and latency are unreliable, CPU per message less so`)
        } else if (Number(r.cpuShare!.toFixed(2)) < 0.95 && !(scenario.kind === 'broadcast' && scenario.inflight === 1)) {
          const why = r.genWaitShare! > 0.05
            ? `other processes kept the load generator off its core ${fmt(100 * r.genWaitShare!, 0)}% of the time`
            : r.genShare! >= 0.9
              ? `the load generator (${fmt(r.genShare)} core) was the limit`
              : `the generator used ${fmt(r.genShare)} core, so the two waited on each other`
          warnings.push(`${tag}: the server used ${fmt(r.cpuShare)} core (< 0.95), so it was not the bottleneck: ${why}`)
        }
      }
    }
  }

  if (interrupted !== null) return
  const { rows, ratioRows, summary } = summarize(results, selected, scale.rounds)
  console.log(`\n${table(rows)}\n`)
  console.log('CPU ms/1k: server CPU milliseconds per 1000 messages (per 1000 deliveries for broadcast and rooms; ' +
    'all server processes together for x2 and x6); core: CPU share during the measured window; wait: share of it the server waited for its core\n' +
    'broadcast-1 and room-1 are one message at a time (the publisher waits for its own copy), so no side is saturated by design: ' +
    'compare their CPU per delivery\n')
  console.log(`${table(ratioRows)}\n`)
  if (opt.quick) console.log('--quick is a smoke run: its figures say little; run without it to measure')
  for (const w of warnings) console.log(`warning: ${w}`)
  for (const server of servers.values()) {
    if (server.warnings > 0) console.log(`${server.name} logged ${server.warnings} warn/error lines, first: ${server.firstWarning}`)
  }
  for (const server of servers.values()) await stopServer(server)
  console.log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`)
  if (opt.json) {
    console.log(JSON.stringify({ options: { ...scale, quick: opt.quick, pinned: pinning.ok }, summary, runs: results }))
  }
}

// Exit explicitly: the timeouts raced against each step would otherwise hold the process open.
// After a signal, the handler stops everything and exits 130.
try {
  await main()
  if (interrupted === null) {
    await stopAll()
    process.exit(0)
  }
} catch (err) {
  if (interrupted === null) {
    console.error(`bench failed: ${(err as Error).stack ?? String(err)}`)
    await stopAll()
    process.exit(1)
  }
}
