// The CLI and its terminal: SIGHUP, and a terminal that goes away, end echohub as SIGTERM does
// (clients closed with 1001, exit 0), instead of leaving a process behind. A pseudo-terminal comes
// from test/helpers/pty.py, as Node has none of its own.
import t, { type Test } from 'tap'
import net from 'node:net'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { closed, connect } from './helpers/index.js'

const CLI = fileURLToPath(new URL('../dist/app/cli.js', import.meta.url))
if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first (npm test does)`)
const PTY = fileURLToPath(new URL('./helpers/pty.py', import.meta.url))
const ENV = { ...process.env, ECHO_PORT: '', DEBUG_PORT: '', CHAT_PORT: '', SERVERS: '', REDIS_URL: '', REDIS_PREFIX: '', LOG_FORMAT: '' }

const noPython = spawnSync('python3', ['-c', 'import pty, termios'], { stdio: 'ignore' }).status === 0 ? undefined : 'no python3 with pty and termios (for a pseudo-terminal)'
if (noPython !== undefined && process.env.CI) t.fail(`${noPython}: CI must run the terminal tests`)

async function freePort (): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as net.AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

function args (port: number): string[] {
  return ['--host', '127.0.0.1', '--only', 'echo', '--echo-port', String(port)]
}

t.test('SIGHUP shuts echohub down as SIGTERM does: clients get 1001, exit 0', async (t) => {
  const port = await freePort()
  const child = spawn(process.execPath, [CLI, ...args(port), '--log-format', 'json'], { stdio: ['ignore', 'pipe', 'inherit'], env: ENV })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
  for (let next = await lines.next(); next.done !== true; next = await lines.next()) if (next.value.includes('echohub listening')) break
  const ws = await connect(t, `ws://127.0.0.1:${port}/`)
  child.kill('SIGHUP')
  t.same(await closed(ws), { code: 1001, reason: 'server shutting down' })
  const [code] = await once(child, 'exit')
  t.equal(code, 0)
})

/** Runs the CLI on a pseudo-terminal, connects a client, hangs the terminal up; resolves with how the CLI ended and what the client got. */
async function hangUp (t: Test, mode: 'session' | 'plain') {
  const port = await freePort()
  const pty: ChildProcess = spawn('python3', [PTY, mode, 'Ctrl+C', '10', '--', process.execPath, CLI, ...args(port)], { stdio: ['pipe', 'pipe', 'inherit'], env: ENV })
  t.teardown(() => { if (pty.exitCode === null) pty.kill('SIGKILL') })
  const lines = createInterface({ input: pty.stdout! })[Symbol.asyncIterator]()
  const ready = await lines.next()
  t.equal(ready.value, 'ready', 'echohub started on the terminal, printing its banner there')
  const ws = await connect(t, `ws://127.0.0.1:${port}/`)
  const clientClosed = closed(ws)
  pty.stdin!.write('hangup\n')
  const ended = JSON.parse((await lines.next()).value as string) as { exit?: number, signal?: number, alive?: boolean }
  return { ended, client: await clientClosed }
}

t.test('closing its terminal (a hangup, SIGHUP from the kernel) shuts echohub down and it exits', { skip: noPython ?? false }, async (t) => {
  const { ended, client } = await hangUp(t, 'session')
  t.same(ended, { exit: 0 }, 'exited 0 within 10 s, instead of staying behind')
  t.same(client, { code: 1001, reason: 'server shutting down' }, 'its clients were closed as on SIGTERM')
})

t.test('a terminal that goes away without a SIGHUP reaching echohub: it notices and shuts down', { skip: noPython ?? false }, async (t) => {
  const { ended, client } = await hangUp(t, 'plain')
  t.same(ended, { exit: 0 }, 'exited 0 within 10 s')
  t.same(client, { code: 1001, reason: 'server shutting down' })
})
