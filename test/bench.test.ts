// The benchmark in its --quick smoke form: it must start echohub and the hand-rolled baseline, run
// every scenario against both and print the table. Figures are not asserted: on a shared 2-core
// machine they say nothing about correctness.
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const CLI = fileURLToPath(new URL('../dist/src/cli.js', import.meta.url))
const SCENARIOS = ['echo-json-64B', 'echo-json-16KiB', 'echo-raw-64B', 'echo-raw-16KiB', 'broadcast-1', 'broadcast-8', 'idle']
const SERVERS = ['echohub', 'baseline']

t.setTimeout(170_000)

// npm test runs after npm install, whose `prepare` builds dist/; build here if that did not happen.
if (!existsSync(CLI)) {
  const tsc = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'],
    { cwd: ROOT, encoding: 'utf8', timeout: 120_000 })
  if (tsc.status !== 0 || !existsSync(CLI)) {
    throw new Error(`dist/src/cli.js is missing and "tsc -p tsconfig.build.json" failed; run "npm run build":\n${tsc.stdout}${tsc.stderr}`)
  }
}

t.test('bench --quick runs every scenario against echohub and the baseline and prints the table', async (t) => {
  const child = spawn(process.execPath, ['bench/run.js', '--quick'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    // Coverage off in the bench's processes: a load tool says nothing about what the tests cover,
    // and precise coverage would slow the servers it measures. (So run alone, this file produces no
    // coverage: `npx tap --allow-empty-coverage test/bench.test.ts`.)
    env: { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0' }
  })
  // SIGTERM, not SIGKILL: the runner then stops the servers and generators it started
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM') })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)))

  t.equal(code, 0, 'exits 0', { stdout: stdout.slice(-3000), stderr: stderr.slice(-3000) })
  t.match(stdout, /^scenario\s+server\s+msg\/s\s+p50 ms\s+p99 ms\s+CPU ms\/1k/m, 'prints the table header')
  for (const scenario of SCENARIOS) {
    for (const server of SERVERS) {
      t.match(stdout, new RegExp(`^${scenario}\\s+${server}\\s`, 'm'), `a row for ${scenario} on ${server}`)
    }
  }
})
