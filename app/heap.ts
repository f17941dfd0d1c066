// How the echohub process sizes V8's young generation, set before anything else is loaded.
//
// V8 grows the young generation (up to 16 MB a semi-space) as objects survive scavenges. A Fastify
// app survives many while it loads, so it starts at 8 MB where a hand-rolled `ws` server stays at
// 1 MB, and it grows to 16 MB under load. For a WebSocket server that is the wrong size: every
// socket read is an ArrayBuffer outside the heap, freed only when a scavenge sweeps it. With a large
// young generation, (1) each scavenge frees ten thousand of them in one pause, which becomes the
// p99 of small echoes (1 ms against 0.3 ms), and (2) tens of MB of 16 KiB messages pile up between
// scavenges; V8 counts that external memory against the old generation's limit and answers with
// back-to-back mark-compacts (`node --trace-gc`: 70-80 in 5 s), which halves a 16 KiB echo's
// throughput. Kept at its initial 1 MB, scavenges are frequent and short and the storm never starts.
// Messages are copied to the socket as buffers, so little lives long enough to need more.
import v8 from 'node:v8'

/** V8 flags that size the young generation: when given on the command line or in NODE_OPTIONS, they are the user's choice. */
const YOUNG_GENERATION_FLAGS = ['--max-semi-space-size', '--min-semi-space-size', '--semi-space-growth-factor']

/** Keeps the young generation at its initial size for this process, unless the user sized it. Returns whether it did. */
export function keepYoungGenerationSmall (execArgv = process.execArgv, nodeOptions = process.env.NODE_OPTIONS ?? ''): boolean {
  const given = [...execArgv, ...nodeOptions.split(/\s+/)].map((arg) => arg.replaceAll('_', '-')) // V8 takes either
  if (given.some((arg) => YOUNG_GENERATION_FLAGS.some((flag) => arg === flag || arg.startsWith(flag + '=')))) return false
  v8.setFlagsFromString('--semi-space-growth-factor=1')
  return true
}
