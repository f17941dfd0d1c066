// The entry point as a user runs it: a real process, real ports, real signals.
import t, { type Test } from 'tap'
import net from 'node:net'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { SETTINGS } from '../src/config.js'
import pkg from '../package.json' with { type: 'json' }
import { closed, connect, nextJson } from './helpers/index.js'
import { closeCode, isUpgraded, rawUpgrade } from './helpers/raw.js'

const CLI = fileURLToPath(new URL('../dist/app/cli.js', import.meta.url))
if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first (npm test does)`)

function run (t: Test, args: string[]): ChildProcess {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ECHO_PORT: '', DEBUG_PORT: '', CHAT_PORT: '0', SERVERS: '', REDIS_URL: '', REDIS_PREFIX: '' } })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  return child
}

const readers = new WeakMap<ChildProcess, AsyncIterator<string>>()

/** Reads the child's JSON log lines until one matches, returning it; later calls read on from there. */
async function logLine (child: ChildProcess, match: (line: Record<string, any>) => boolean): Promise<Record<string, any>> {
  let lines = readers.get(child)
  if (lines === undefined) {
    lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
    readers.set(child, lines)
  }
  for (let next = await lines.next(); next.done !== true; next = await lines.next()) {
    if (!next.value.startsWith('{')) continue // npm's own lines, under npm start
    const line = JSON.parse(next.value) as Record<string, any>
    if (match(line)) return line
  }
  throw new Error('the process ended before the expected log line')
}

/** The JSON banner's entry for one server. */
async function banner (child: ChildProcess, name = 'echo'): Promise<{ port: number, urls: string[] }> {
  const line = await logLine(child, (l) => l.msg === 'echohub listening')
  return line.servers.find((s: { name: string }) => s.name === name)
}

async function output (stream: NodeJS.ReadableStream): Promise<string> {
  let text = ''
  for await (const chunk of stream) text += String(chunk)
  return text
}

t.test('starts both echo servers, logs connections as JSON lines, exits 0 on SIGTERM', async (t) => {
  const child = run(t, ['--host', '127.0.0.1', '--echo-port', '0', '--debug-port', '0', '--log-format', 'json'])
  const lines: Array<Record<string, any>> = []
  const started = await logLine(child, (l) => { lines.push(l); return l.msg === 'echohub listening' })
  t.same(started.servers.map((s: { name: string }) => s.name), ['echo', 'echo-debug', 'chat'], 'one structured line names every server')
  t.equal(started.version, pkg.version)
  t.same(lines, [started], 'and it is the first line: no "Server listening at" lines from Fastify')
  const listening = started.servers[0]
  t.match(listening.urls[0], /^ws:\/\/127\.0\.0\.1:\d+\/$/)
  const ws = await connect(t, listening.urls[0])
  ws.send('from a real client')
  t.equal((await nextJson(ws)).original_message, 'from a real client')
  const received = await logLine(child, (l) => l.msg === 'message received')
  t.equal(received.text, 'from a real client', 'each received message is logged')
  t.equal(received.n, 1)
  const closing = closed(ws)
  child.kill('SIGTERM')
  const [code] = await once(child, 'exit')
  t.equal(code, 0, 'graceful exit')
  t.equal((await closing).code, 1001, 'the client got 1001')
})

t.test('a second signal while draining exits at once', async (t) => {
  const child = run(t, ['--host', '127.0.0.1', '--echo-port', '0', '--only', 'echo', '--log-format', 'json', '--shutdown-timeout', '600000'])
  const stderr = output(child.stderr!)
  const listening = await banner(child)
  const stubborn = await rawUpgrade(t, Number(listening.port))
  if (!isUpgraded(stubborn)) throw new Error('not upgraded')
  const gotClose = closeCode(stubborn) // never answered, so the first shutdown would wait ten minutes
  child.kill('SIGTERM')
  t.equal(await gotClose, 1001)
  await logLine(child, (l) => l.msg === 'shutting down: closing clients')
  child.kill('SIGTERM')
  const second = await logLine(child, (l) => l.level >= 40)
  t.same([second.msg, second.signal], ['second signal: exiting without waiting for clients', 'SIGTERM'], 'said as a JSON log line')
  const [code] = await once(child, 'exit')
  t.equal(code, 1, 'ended by the second signal, not by the graceful path (which exits 0)')
  t.equal(await stderr, '', 'nothing in plain text')
})

t.test('with --auth-token, the token never reaches the logs', async (t) => {
  const child = run(t, ['--host', '127.0.0.1', '--echo-port', '0', '--only', 'echo', '--log-format', 'json', '--auth-token', 's3cret', '--log-level', 'debug'])
  const lines: string[] = []
  const listening = (await logLine(child, (l) => { lines.push(JSON.stringify(l)); return l.msg === 'echohub listening' })).servers[0]
  const ws = await connect(t, `ws://127.0.0.1:${String(listening.port)}/?token=s3cret`)
  ws.send('x')
  await nextJson(ws)
  await fetch(`http://127.0.0.1:${String(listening.port)}/stats?token=s3cret`)
  await logLine(child, (l) => { lines.push(JSON.stringify(l)); return typeof l.msg === 'string' && l.msg.startsWith('GET /stats') })
  t.ok(lines.some((l) => l.includes('"GET /stats?token=[redacted] 200"')), 'the request line shows the URL without the token')
  t.notOk(lines.some((l) => l.includes('s3cret')), 'no line holds the token')
})

t.test('a port in use exits 1 with one line naming the port and the flag', async (t) => {
  const blocker = net.createServer()
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
  t.teardown(() => blocker.close())
  const port = (blocker.address() as net.AddressInfo).port
  const child = run(t, ['--host', '127.0.0.1', '--echo-port', String(port), '--debug-port', '0', '--log-format', 'json'])
  const [stderr, [code]] = await Promise.all([output(child.stderr!), once(child, 'exit')])
  t.equal(code, 1)
  t.equal(stderr.trim().split('\n').length, 1, 'one line, no stack trace')
  t.match(stderr, `port ${port} (echo server) is already in use`)
  t.match(stderr, '--echo-port')
})

t.test('a bad flag exits 1 naming it; --help lists every flag', async (t) => {
  const bad = run(t, ['--echo-port', 'eighty'])
  const [stderr, [code]] = await Promise.all([output(bad.stderr!), once(bad, 'exit')])
  t.equal(code, 1)
  t.match(stderr, /--echo-port must be a port number/)

  const unknown = run(t, ['--foo'])
  const [unknownErr, [unknownCode]] = await Promise.all([output(unknown.stderr!), once(unknown, 'exit')])
  t.equal(unknownCode, 1)
  t.equal(unknownErr, 'echohub: unknown option --foo (see --help)\n', 'one plain line')

  const negative = run(t, ['--heartbeat-interval', '-5'])
  const [negativeErr] = await Promise.all([output(negative.stderr!), once(negative, 'exit')])
  t.equal(negativeErr, 'echohub: --heartbeat-interval must be a whole number from 0 up (ms; 0 turns it off), got "-5"\n', 'says what is allowed')

  for (const flag of ['--help', '-h']) {
    const help = run(t, [flag])
    const [stdout, [helpCode]] = await Promise.all([output(help.stdout!), once(help, 'exit')])
    t.equal(helpCode, 0, flag)
    for (const s of SETTINGS) t.match(stdout, `--${s.flag}`)
  }

  const version = run(t, ['--version'])
  const [versionOut, [versionCode]] = await Promise.all([output(version.stdout!), once(version, 'exit')])
  t.equal(versionCode, 0)
  t.equal(versionOut, `echohub ${pkg.version}\n`)
})

t.test('pretty mode prints where clients connect, then one line per event', async (t) => {
  const child = run(t, ['--host', '127.0.0.1', '--echo-port', '0', '--debug-port', '0', '--log-format', 'pretty'])
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
  const nextLine = async () => (await lines.next()).value as string
  let text = ''
  while (!text.includes('Press Ctrl+C')) text += await nextLine() + '\n'
  t.notMatch(text, 'Server listening at', 'no Fastify listening lines')
  t.match(text, /echo\s+ws:\/\/127\.0\.0\.1:\d+\/\n\s+ws:\/\/127\.0\.0\.1:\d+\/raw/)
  t.match(text, /echo-debug\s+ws:\/\/127\.0\.0\.1:\d+\//)
  const port = /echo\s+ws:\/\/127\.0\.0\.1:(\d+)\//.exec(text)![1]
  const ws = await connect(t, `ws://127.0.0.1:${port}/`)
  ws.send('hello')
  await nextJson(ws)
  ws.close()
  const exchange = [await nextLine(), await nextLine(), await nextLine(), await nextLine()]
  t.match(exchange[0], /INFO: echo: client connected \{"client":"127\.0\.0\.1:\d+","connections":1,"path":"\/"\}$/)
  t.match(exchange[1], /INFO: echo: message received \{.*"text":"hello"\}$/)
  t.match(exchange[2], /INFO: echo: echo sent \{.*"message_id":1\}$/)
  t.match(exchange[3], /INFO: echo: client disconnected \{.*\}$/, 'one echo exchange: four lines')
  child.kill('SIGINT')
  t.match(await nextLine(), /INFO: shutting down: closing clients \{"signal":"SIGINT"\}$/)
  const [code] = await once(child, 'exit')
  t.equal(code, 0)
})

t.test('--log-level silent prints nothing; warn keeps only problems', async (t) => {
  for (const level of ['silent', 'warn']) {
    // Nothing is printed to learn a port from, so the port is chosen here.
    const port = await freePort()
    const child = run(t, ['--host', '127.0.0.1', '--echo-port', String(port), '--only', 'echo', '--log-format', 'json', '--log-level', level, '--echo-max-payload', '10'])
    const stdout = output(child.stdout!)
    const ws = await connectWhenUp(t, `ws://127.0.0.1:${port}/`)
    ws.send('x')
    await nextJson(ws)
    t.equal((await fetch(`http://127.0.0.1:${port}/nope`)).status, 426, 'an info line at most')
    ws.send('more than ten bytes')
    t.equal((await closed(ws)).code, 1009)
    child.kill('SIGTERM')
    const [code] = await once(child, 'exit')
    t.equal(code, 0)
    const printed = (await stdout).trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>)
    if (level === 'silent') {
      t.same(printed, [], '--log-level silent: no line at all (banner, connections, shutdown are info)')
    } else {
      t.same(printed.map((l) => [l.level, l.msg]), [[40, 'message of 19 bytes over the 10-byte limit; connection closed with 1009']], '--log-level warn: only the problem')
    }
  }
})

async function freePort (): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as net.AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** Connects once the child listens: each refused attempt is retried after the next one fails. */
async function connectWhenUp (t: Test, url: string): Promise<Awaited<ReturnType<typeof connect>>> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await connect(t, url)
    } catch (err) {
      if (attempt > 100 || (err as NodeJS.ErrnoException).code !== 'ECONNREFUSED') throw err
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
}

t.test('SIGTERM to `npm start` (what a process manager sends) stops echohub gracefully', async (t) => {
  // npm passes the signal to the shell it runs the script in, which does not pass it on.
  const npm = process.env.npm_execpath?.endsWith('.js') === true ? [process.execPath, process.env.npm_execpath] : ['npm']
  const root = fileURLToPath(new URL('..', import.meta.url))
  const child = spawn(npm[0]!, [...npm.slice(1), 'start', '--silent', '--ignore-scripts', '--', '--host', '127.0.0.1', '--only', 'echo', '--echo-port', '0', '--log-format', 'json'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ECHO_PORT: '', SERVERS: '' }
  })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const started = await logLine(child, (l) => l.msg === 'echohub listening')
  t.teardown(() => { try { process.kill(started.pid, 'SIGKILL') } catch {} })
  const port = started.servers[0].port as number
  const ws = await connect(t, `ws://127.0.0.1:${port}/`)
  child.kill('SIGTERM')
  await once(child, 'exit')
  const gone = new Promise<string>((resolve) => setTimeout(resolve, 10_000, 'still open').unref())
  t.same(await Promise.race([closed(ws), gone]), { code: 1001, reason: 'server shutting down' }, 'the client was closed with 1001')
  const stopped = await logLine(child, (l) => l.msg === 'stopped')
  t.equal(stopped.level, 30, 'and echohub said it stopped')
  await t.rejects(connect(t, `ws://127.0.0.1:${port}/`), { code: 'ECONNREFUSED' }, 'the port is free again')
})
