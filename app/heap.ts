// How the echohub process tunes V8's garbage collector, set before anything else is loaded.
//
// V8 grows the young generation (up to 16 MB a semi-space) as objects survive scavenges. A Fastify
// app survives many while it loads, so it starts at 8 MB where a hand-rolled `ws` server stays at
// 1 MB, and it grows to 16 MB under load. For a WebSocket server that is the wrong size: every
// socket read is an ArrayBuffer outside the heap, freed only when a scavenge sweeps it. With a large
// young generation, (1) each scavenge frees ten thousand of them in one pause, which becomes the
// p99 of small echoes (1 ms against 0.3 ms), and (2) tens of MB of 16 KiB messages pile up between
// scavenges; V8 counts that external memory against the old generation's limit and answers with
// back-to-back mark-compacts (`node --trace-gc`: 70-80 in 5 s), which halves a 16 KiB echo's
// throughput. Kept at its initial 1 MB, scavenges are frequent and short. The growth factor is set
// here, at run time, for a reason: given on node's command line, V8 raises a factor below 2 to 2
// while it configures the heap (the young generation then still grows to 8 MB under echo load).
//
// The old generation's limit after a full collection is its live size times a growing factor V8
// picks as it goes (in those storms the limit sat 1.4 to 2.3 times above the live heap). Fixed at
// 2 (`--heap-growing-percent=100`), a 10 s run of 16 KiB echoes after the other echo loads starts 2
// mark-compacts where it started 10-16, and runs faster (77k to 81k/s on /raw).
import v8 from 'node:v8'

interface Setting {
  /** The flag echohub sets. */
  flag: string
  /** Flags that, when the user gave any of them, leave this part of the heap to the user. */
  userFlags: string[]
}

const SETTINGS: readonly Setting[] = [
  { flag: '--semi-space-growth-factor=1', userFlags: ['--max-semi-space-size', '--min-semi-space-size', '--semi-space-growth-factor'] },
  { flag: '--heap-growing-percent=100', userFlags: ['--heap-growing-percent'] }
]

/**
 * Keeps the young generation at its initial size and fixes the old generation's growth factor at 2
 * for this process, each unless the user gave a flag for it (on the command line; NODE_OPTIONS
 * admits only --max-semi-space-size of them).
 * Returns the flags it set.
 */
export function tuneGarbageCollector (execArgv = process.execArgv, nodeOptions = process.env.NODE_OPTIONS ?? ''): string[] {
  const given = [...execArgv, ...nodeOptions.split(/\s+/)].map((arg) => arg.replaceAll('_', '-')) // V8 takes either
  const userSet = (flag: string): boolean => given.some((arg) => arg === flag || arg.startsWith(flag + '='))
  const set = SETTINGS.filter((setting) => !setting.userFlags.some(userSet)).map((setting) => setting.flag)
  for (const flag of set) v8.setFlagsFromString(flag)
  return set
}
