// The soak's `/health` poller, in a process of its own (pinned beside the clients): what it times is
// echohub's answer, not the stalls of the process that runs the churn and the attackers. It polls
// until its stdin ends, then writes one JSON line with the worst answer per port.
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { HealthWatch } from './soak-attacks.js'

const { values } = parseArgs({ options: { ports: { type: 'string' }, 'slow-ms': { type: 'string' } } })
const ports = JSON.parse(values.ports ?? '{}') as Record<string, number>
// Its own stalls, reported beside the polls' times: a poll answered while this loop was busy is read late.
const ownLoop = monitorEventLoopDelay({ resolution: 10 })
ownLoop.enable()
const health = new HealthWatch(ports, Number(values['slow-ms']))

process.stdin.on('end', () => {
  health.stop()
  const figures = { worst_ms: health.worstMs, worst_connect_ms: health.worstConnectMs, poller_loop_max_ms: Math.round(ownLoop.max / 1e6), polls: health.polls, failures: health.failures, slow: health.slow }
  process.stdout.write(JSON.stringify({ event: 'health', ...figures }) + '\n', () => process.exit(0))
})
process.stdin.resume()
