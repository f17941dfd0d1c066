// Process figures from /proc: CPU time, time spent waiting for a core, RSS, open file descriptors,
// and the whole machine's busy time (to see when something else ran during a measurement).
import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'

export const CLK_TCK = (() => {
  const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })
  return Number(out.stdout) > 0 ? Number(out.stdout) : 100
})()

/** utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/PID/stat). */
export function cpuTicks (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ') // the name may hold spaces
  return Number(fields[11]) + Number(fields[12]) // fields[0] is field 3
}

/** All cores' busy ticks. */
export function machineBusyTicks (): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number)
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0)
  return total - f[3]! - f[4]! // minus idle and iowait
}

/** Nanoseconds the process was runnable but waiting for a core: time other processes took from it. */
export function waitNs (pid: number): number {
  return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1])
}

export function rssBytes (pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m === null ? NaN : Number(m[1]) * 1024
}

export function fdCount (pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length
}

/** The pid of a process by its exact command name (e.g. `redis-server`), or null. */
export function findProcess (name: string): number | null {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === name) return Number(entry)
    } catch {} // gone meanwhile
  }
  return null
}

/** One reading of a set of processes and the machine, for differences across a window. */
export interface Sample {
  cpu: number
  wait: number
  busy: number
  t: bigint
  rss: number
}

/** CPU and wait summed over `pids`, RSS summed too. Throws if one of them is gone. */
export function sample (pids: number[]): Sample {
  let cpu = 0
  let wait = 0
  let rss = 0
  for (const pid of pids) {
    cpu += cpuTicks(pid)
    wait += waitNs(pid)
    rss += rssBytes(pid)
  }
  return { cpu, wait, rss, busy: machineBusyTicks(), t: process.hrtime.bigint() }
}

/**
 * The kernel's count of connections dropped because a listen queue was full (TcpExt
 * ListenOverflows, machine-wide, from /proc/net/netstat); 0 where it cannot be read.
 */
export function listenOverflows (): number {
  try {
    const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n').filter((l) => l.startsWith('TcpExt:'))
    const names = lines[0]!.split(/\s+/)
    const values = lines[1]!.split(/\s+/)
    return Number(values[names.indexOf('ListenOverflows')] ?? 0)
  } catch {
    return 0
  }
}
