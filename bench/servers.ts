// The servers the bench measures, each started as pinned child processes: echohub (one process, and
// two on Redis, and one with --compression or over TLS), the hand-rolled `ws` baseline, and
// socket.io (one process, and two on Redis).
// Everything started is tracked and killed on exit; `probe` checks that a server answers a scenario
// before it is loaded, so a scenario a build cannot serve is skipped with the reason.
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { existsSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import net, { type AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { createInterface } from 'node:readline'
import type { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { DIALECTS, type DialectName } from './dialects.js'
import { connectWs, encodeFrame, MessageQueue, type Conn } from './raw-ws.js'
import type { Scale, Scenario, ServerName } from './scenarios.js'

export const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url)) // the compiled bench
export const ROOT = path.resolve(BENCH_DIR, '..')
// ECHOHUB_CLI: another build's cli.js, to compare two builds against the same yardsticks
const CLI = process.env.ECHOHUB_CLI ?? path.join(ROOT, 'dist/app/cli.js')
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
export const ROOM = 'bench-room'

/** How clients reach a server: over TLS (wss), with permessage-deflate. */
export interface Transport {
  tls: boolean
  deflate: boolean
}

export interface Server {
  name: ServerName
  dialect: DialectName
  transport: Transport
  children: ChildProcess[]
  /** Every server process: CPU and RSS are summed over them. */
  pids: number[]
  echoPort?: number
  /** Chat ports, one per process; receivers are spread over them, the publisher uses the first. */
  chatPorts: number[]
  /** Set when the server could not be started: its scenarios are skipped with this reason. */
  missing?: string
  command?: string
  tail: string[]
  warnings: number
  firstWarning: string | null
}

// ---------------------------------------------------------------------------------------------
// Child processes

const children = new Set<ChildProcess>()
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function track (child: ChildProcess): ChildProcess {
  children.add(child)
  child.on('exit', () => children.delete(child))
  child.on('error', () => children.delete(child))
  return child
}

export async function stopAll (): Promise<void> {
  for (const child of children) child.kill('SIGTERM')
  const deadline = Date.now() + 3000
  while (children.size > 0 && Date.now() < deadline) await sleep(50)
  for (const child of children) child.kill('SIGKILL')
}

process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL')
})

export function exited (child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null
}

export function waitExit (child: ChildProcess, ms: number): Promise<void> {
  if (exited(child)) return Promise.resolve()
  return Promise.race([new Promise<void>((resolve) => child.once('exit', () => resolve())), sleep(ms)])
}

/** taskset pins a process to one core; without it (or with one core) the run is unpinned. */
export const pinning: { ok: boolean, why?: string } = (() => {
  if (os.availableParallelism() < 2) return { ok: false, why: 'only one CPU core' }
  const probe = spawnSync('taskset', ['-c', '1', 'true'], { stdio: 'ignore' })
  return probe.status === 0 ? { ok: true } : { ok: false, why: 'taskset is not available' }
})()

/** Node flags for the server processes, e.g. `--cpu-prof` (`npm run bench -- --profile DIR`). */
export const serverNodeFlags: string[] = []

/** Starts `node script args` pinned to `core`; `script` is relative to the compiled bench. */
export function startPinned (core: number | null, script: string, args: string[], options: SpawnOptions, nodeFlags: string[] = []): ChildProcess {
  const file = path.isAbsolute(script) ? script : path.join(BENCH_DIR, script)
  const [cmd, argv] = pinning.ok && core !== null
    ? ['taskset', ['-c', String(core), process.execPath, ...nodeFlags, file, ...args]]
    : [process.execPath, [...nodeFlags, file, ...args]]
  // A server runs on Redis only when its arguments say so: REDIS_URL from the environment (CI sets
  // it) would quietly turn every single-instance echohub into a Redis one.
  const env = { ...(options.env ?? process.env) }
  delete env.REDIS_URL
  return track(spawn(cmd, argv, { cwd: ROOT, ...options, env })) // taskset execs node: the pid is node's
}

/** Calls `onLine` with each JSON object a child prints; other lines go to `onText`. */
export function readJsonLines (stream: Readable, onLine: (obj: Record<string, unknown>) => void, onText: (line: string) => void = () => {}): void {
  createInterface({ input: stream }).on('line', (line) => {
    let obj: unknown
    try {
      obj = JSON.parse(line)
    } catch {
      onText(line)
      return
    }
    if (obj !== null && typeof obj === 'object') onLine(obj as Record<string, unknown>)
    else onText(line)
  })
}

function newServer (name: ServerName, dialect: DialectName, transport: Transport = { tls: false, deflate: false }): Server {
  return { name, dialect, transport, children: [], pids: [], chatPorts: [], tail: [], warnings: 0, firstWarning: null }
}

/** Keeps the last lines a server printed, for error messages, and counts its warnings. */
function collectOutput (child: ChildProcess, server: Server): void {
  const keep = (line: string) => {
    server.tail.push(line)
    if (server.tail.length > 20) server.tail.shift()
  }
  readJsonLines(child.stdout!, (obj) => {
    keep(JSON.stringify(obj))
    if (typeof obj.level === 'number' && obj.level >= 40) { // pino: 40 warn, 50 error
      server.warnings++
      server.firstWarning ??= typeof obj.msg === 'string' ? obj.msg : JSON.stringify(obj)
    }
  }, keep)
  createInterface({ input: child.stderr! }).on('line', keep)
}

export function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo
      srv.close(() => resolve(port))
    })
  })
}

function healthStatus (port: number, tls: boolean): Promise<number> {
  return new Promise((resolve) => {
    const options = { host: '127.0.0.1', port, path: '/health', timeout: 1000, rejectUnauthorized: false }
    const req = (tls ? https : http).get(options, (res) => {
      res.resume()
      resolve(res.statusCode ?? 0)
    })
    req.on('error', () => resolve(0))
    req.on('timeout', () => req.destroy())
  })
}

/** Waits for `/health` to answer 200 on `port`; null, or why not. */
async function healthy (child: ChildProcess, server: Server, port: number, ms = 60_000): Promise<string | null> {
  const deadline = Date.now() + ms
  while (!exited(child) && Date.now() < deadline) {
    if (await healthStatus(port, server.transport.tls) === 200) return null
    await sleep(100)
  }
  const last = server.tail.slice(-3).join(' | ')
  if (!exited(child)) {
    child.kill('SIGKILL')
    return `no 200 from /health within ${ms / 1000} s: ${last}`
  }
  return `exited with ${child.exitCode ?? child.signalCode}: ${last}`
}

// ---------------------------------------------------------------------------------------------
// echohub

/** echohub with every feature on, logging at warn, limits raised past what the bench opens. */
function echohubArgs (scale: Scale): string[] {
  const connections = String(2 * Math.max(scale.idle, 10_000))
  return [
    '--host', '127.0.0.1',
    '--log-level', 'warn',
    '--log-format', 'json',
    '--max-connections', connections, // the idle scenario plus probes exceed the 10k default
    '--max-connections-per-ip', connections, // every bench client is 127.0.0.1
    '--rate-limit', '1000000', // the publisher sends far more than 20 messages/s
    '--rate-burst', '1000000'
  ]
}

async function startEchohubProcess (server: Server, args: string[], healthPorts: number[], core: number | null = 0): Promise<string | null> {
  const child = startPinned(core, CLI, args, { stdio: ['ignore', 'pipe', 'pipe'] }, serverNodeFlags)
  collectOutput(child, server)
  for (const port of healthPorts) { // the servers of one process come up one after another
    const why = await healthy(child, server, port)
    if (why !== null) return why
  }
  server.children.push(child)
  server.pids.push(child.pid!)
  return null
}

/**
 * One echohub process with the echo and chat servers; `--compression`, or TLS with a certificate
 * made for the run (`--tls-self-signed`, kept in the project's .echohub/), when `transport` says so.
 * `variant` names a server started with extra flags (`echohub no-suite`: `--no-conformance`).
 */
export async function startEchohub (scale: Scale, transport: Transport = { tls: false, deflate: false }, variant?: { name: ServerName, args: string[] }): Promise<Server> {
  const name = variant?.name ?? (transport.tls ? 'echohub tls' : transport.deflate ? 'echohub deflate' : 'echohub')
  const server = newServer(name, 'echohub', transport)
  if (!existsSync(CLI)) return { ...server, missing: 'dist/app/cli.js not found (run npm run build)' }
  const echoPort = await freePort()
  const chatPort = await freePort()
  const args = [...echohubArgs(scale), '--only', 'echo,chat', '--echo-port', String(echoPort), '--chat-port', String(chatPort)]
  if (transport.deflate) args.push('--compression')
  if (transport.tls) args.push('--tls-self-signed')
  if (variant) args.push(...variant.args)
  server.command = `echohub ${args.join(' ')}`
  const why = await startEchohubProcess(server, args, [echoPort, chatPort])
  if (why !== null) return { ...server, missing: why }
  return Object.assign(server, { echoPort, chatPorts: [chatPort] })
}

/** Two echohub chat processes on one Redis, under a key prefix of this run's own. */
export function startEchohubPair (scale: Scale): Promise<Server> {
  return startEchohubGroup(scale, 2, 'echohub x2')
}

let groups = 0

/**
 * `n` echohub chat processes on one Redis, under a key prefix of their own. Two share core 0; more
 * (the 100,000-connection scenario) are left to the scheduler, as their load generators are.
 */
export async function startEchohubGroup (scale: Scale, n: number, name: ServerName, extra: string[] = []): Promise<Server> {
  const server = newServer(name, 'echohub')
  if (!existsSync(CLI)) return { ...server, missing: 'dist/app/cli.js not found (run npm run build)' }
  const prefix = `echohub-bench-${process.pid}-${++groups}:`
  for (let i = 0; i < n; i++) {
    const chatPort = await freePort()
    const args = [...echohubArgs(scale), '--only', 'chat', '--chat-port', String(chatPort), '--redis', REDIS_URL, '--redis-prefix', prefix, ...extra]
    server.command = `echohub ${args.join(' ')} (x${n})`
    const why = await startEchohubProcess(server, args, [chatPort], n <= 2 ? 0 : null)
    if (why !== null) {
      for (const child of server.children) child.kill('SIGTERM')
      return { ...server, missing: `echohub --redis: ${why}` }
    }
    server.chatPorts.push(chatPort)
  }
  return server
}

// ---------------------------------------------------------------------------------------------
// The baseline and socket.io

async function startReadyLine (server: Server, script: string, args: string[]): Promise<Record<string, unknown> | null> {
  const child = startPinned(0, script, args, { stdio: ['ignore', 'pipe', 'pipe'] }, serverNodeFlags)
  const ready = new Promise<Record<string, unknown> | null>((resolve) => {
    // {"ready":false,"missing":"..."}: the server cannot run here, and says why
    readJsonLines(child.stdout!, (obj) => {
      if (obj.ready === true) resolve(obj)
      else if (obj.ready === false) resolve(obj)
    })
    child.on('exit', () => resolve(null))
  })
  collectOutput(child, server)
  const info = await Promise.race([ready, sleep(30_000).then(() => null)])
  if (info === null || info.ready !== true) {
    if (info !== null) server.tail.push(String(info.missing))
    child.kill('SIGKILL')
    return null
  }
  server.children.push(child)
  server.pids.push(child.pid!)
  return info
}

/**
 * The baseline; `tuned` has it set the garbage-collector flags echohub's CLI sets, the same way (at
 * run time, app/heap.ts: on node's command line V8 raises a semi-space growth factor below 2 to 2),
 * so the echo rows can tell echohub's own path from those settings.
 */
export async function startBaseline (tuned = false): Promise<Server> {
  const server = newServer(tuned ? 'baseline gc-tuned' : 'baseline', 'echohub')
  const info = await startReadyLine(server, 'baseline.js', ['--echo-port', '0', '--chat-port', '0', ...(tuned ? ['--gc-tuned'] : [])])
  if (info === null) return { ...server, missing: `the baseline did not start within 30 s: ${server.tail.slice(-2).join(' | ')}` }
  return Object.assign(server, { echoPort: Number(info.echoPort), chatPorts: [Number(info.chatPort)] })
}

/**
 * uWebSockets.js speaking the baseline's protocol (uws-server.ts): the native ceiling. Missing (its
 * rows skipped with the reason) when the package is not installed or its binary does not load here.
 */
export async function startUws (): Promise<Server> {
  const server = newServer('uWS', 'echohub')
  const info = await startReadyLine(server, 'uws-server.js', ['--echo-port', '0', '--chat-port', '0'])
  if (info === null) return { ...server, missing: `uWS did not start: ${server.tail.slice(-1).join(' | ')}` }
  server.command = 'node dist-bench/uws-server.js (native uWebSockets.js)'
  return Object.assign(server, { echoPort: Number(info.echoPort), chatPorts: [Number(info.chatPort)] })
}

export async function startSocketio (instances: 1 | 2): Promise<Server> {
  const server = newServer(instances === 1 ? 'socket.io' : 'socket.io x2', 'socketio')
  const redis = instances === 1 ? [] : ['--redis', REDIS_URL, '--key', `echohub-bench-socketio-${process.pid}`]
  for (let i = 0; i < instances; i++) {
    const info = await startReadyLine(server, 'socketio-server.js', ['--port', '0', ...redis])
    if (info === null) {
      for (const child of server.children) child.kill('SIGTERM')
      return { ...server, missing: `socket.io did not start within 30 s: ${server.tail.slice(-2).join(' | ')}` }
    }
    server.chatPorts.push(Number(info.port))
  }
  server.command = `node dist-bench/socketio-server.js --port 0 ${redis.join(' ')}${instances === 2 ? ' (x2)' : ''}`
  return server
}

export async function stopServer (server: Server): Promise<void> {
  for (const child of server.children) child.kill('SIGTERM')
  await Promise.all(server.children.map((c) => waitExit(c, 5000)))
  for (const child of server.children) if (!exited(child)) child.kill('SIGKILL')
}

// ---------------------------------------------------------------------------------------------
// Probes: does this server answer this scenario at all? A scenario it does not answer is skipped.

interface ChatClient {
  conn: Conn
  messages: MessageQueue
}

/** A chat client through the dialect's setup, as the load generator does it, with whole frames. */
async function chatClient (server: Server, port: number, room: string | null): Promise<ChatClient> {
  const dialect = DIALECTS[server.dialect]
  const conn = await connectWs(port, dialect.path, { timeoutMs: 3000, ...server.transport })
  const messages = new MessageQueue(conn)
  for (const step of dialect.setup(room)) {
    if (step.send !== undefined) conn.socket.write(encodeFrame(step.send))
    let last = 'none'
    for (let seen = 0; ; seen++) {
      const text = await messages.next().then((m) => m.data.toString(), (err: Error) => {
        throw new Error(`no ${step.what} (${err.message}; last frame: ${last.slice(0, 100)})`)
      })
      if (step.until(text)) break
      last = text
      if (seen > 10) throw new Error(`no ${step.what}; last frame: ${text.slice(0, 100)}`)
    }
  }
  return { conn, messages }
}

/** Reads until a frame carries `payload` (chatter such as presence events is passed over). */
async function expectDelivery (server: Server, client: ChatClient, payload: string, what: string): Promise<void> {
  const dialect = DIALECTS[server.dialect]
  for (let seen = 0; seen < 10; seen++) {
    if (dialect.carries((await client.messages.next()).data.toString(), payload)) return
  }
  throw new Error(`${what} did not get the message`)
}

async function exchange (server: Server, urlPath: string, send: string): Promise<string> {
  const conn = await connectWs(server.echoPort!, urlPath, { timeoutMs: 3000, ...server.transport })
  try {
    const messages = new MessageQueue(conn)
    conn.socket.write(encodeFrame(send))
    return (await messages.next()).data.toString()
  } finally {
    conn.socket.destroy()
  }
}

/** Long enough that a server with --compression sends it back compressed, which the probe inflates. */
const PROBE_TEXT = 'probe '.repeat(200)

export async function probe (server: Server, scenario: Scenario): Promise<string | null> {
  if (server.missing !== undefined) return server.missing
  const opened: ChatClient[] = []
  try {
    if (scenario.kind === 'broadcast') {
      if (server.chatPorts.length === 0) return 'no chat server'
      const room = scenario.room ? ROOM : null
      // one client per process, the last one sends: it reaches every process or the probe fails
      for (const port of server.chatPorts) opened.push(await chatClient(server, port, room))
      const dialect = DIALECTS[server.dialect]
      opened.at(-1)!.conn.socket.write(encodeFrame(dialect.publish(room, PROBE_TEXT)))
      for (const [i, conn] of opened.entries()) await expectDelivery(server, conn, PROBE_TEXT, `a client on process ${i + 1}`)
    } else if (scenario.kind === 'idle') {
      const conn = await connectWs(server.echoPort!, scenario.path, { timeoutMs: 3000, ...server.transport })
      conn.socket.destroy()
    } else if (scenario.path === '/raw') {
      const reply = await exchange(server, '/raw', PROBE_TEXT)
      if (reply !== PROBE_TEXT) return `/raw answered ${reply.slice(0, 80)}`
    } else {
      const reply = JSON.parse(await exchange(server, scenario.path, PROBE_TEXT)) as { type?: unknown, original_message?: unknown }
      if (reply.type !== 'echo' || reply.original_message !== PROBE_TEXT) return `${scenario.path} answered ${JSON.stringify(reply).slice(0, 80)}`
    }
    return null
  } catch (err) {
    return `no answer on ${scenario.kind === 'broadcast' ? `the chat${scenario.room ? ' (rooms)' : ''}` : scenario.path}: ${(err as Error).message}`
  } finally {
    for (const client of opened) client.conn.socket.destroy()
  }
}
