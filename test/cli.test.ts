// The entry point as a user runs it: a real process, real ports, real signals.
import t, { type Test } from 'tap'
import net from 'node:net'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { SETTINGS } from '../src/config.js'
import { closed, connect, nextJson } from './helpers/index.js'
import { closeCode, isUpgraded, rawUpgrade } from './helpers/raw.js'

const CLI = fileURLToPath(new URL('../dist/src/cli.js', import.meta.url))
if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first (npm test does)`)

function run (t: Test, args: string[]): ChildProcess {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ECHO_PORT: '', DEBUG_PORT: '', CHAT_PORT: '0', SERVERS: '' } })
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
    const line = JSON.parse(next.value) as Record<string, any>
    if (match(line)) return line
  }
  throw new Error('the process ended before the expected log line')
}

async function output (stream: NodeJS.ReadableStream): Promise<string> {
  let text = ''
  for await (const chunk of stream) text += String(chunk)
  return text
}

t.test('starts both echo servers, logs connections as JSON lines, exits 0 on SIGTERM', async (t) => {
  const child = run(t, ['--host', '127.0.0.1', '--echo-port', '0', '--debug-port', '0', '--log-format', 'json'])
  const listening = await logLine(child, (l) => l.msg === 'echo listening')
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
  const listening = await logLine(child, (l) => l.msg === 'echo listening')
  const stubborn = await rawUpgrade(t, Number(listening.port))
  if (!isUpgraded(stubborn)) throw new Error('not upgraded')
  const gotClose = closeCode(stubborn) // never answered, so the first shutdown would wait ten minutes
  child.kill('SIGTERM')
  t.equal(await gotClose, 1001)
  child.kill('SIGTERM')
  const [code] = await once(child, 'exit')
  t.equal(code, 1, 'ended by the second signal, not by the graceful path (which exits 0)')
})

t.test('with --auth-token, the token never reaches the logs', async (t) => {
  const child = run(t, ['--host', '127.0.0.1', '--echo-port', '0', '--only', 'echo', '--log-format', 'json', '--auth-token', 's3cret'])
  const lines: string[] = []
  const listening = await logLine(child, (l) => { lines.push(JSON.stringify(l)); return l.msg === 'echo listening' })
  const ws = await connect(t, `ws://127.0.0.1:${String(listening.port)}/?token=s3cret`)
  ws.send('x')
  await nextJson(ws)
  await fetch(`http://127.0.0.1:${String(listening.port)}/stats?token=s3cret`)
  await logLine(child, (l) => { lines.push(JSON.stringify(l)); return l.msg === 'request completed' && l.res?.statusCode === 200 })
  t.ok(lines.some((l) => l.includes('/stats?token=[redacted]')), 'Fastify\'s request line shows the URL without the token')
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

  const help = run(t, ['--help'])
  const [stdout, [helpCode]] = await Promise.all([output(help.stdout!), once(help, 'exit')])
  t.equal(helpCode, 0)
  for (const s of SETTINGS) t.match(stdout, `--${s.flag}`)
})

t.test('pretty mode prints where clients connect', async (t) => {
  const child = run(t, ['--host', '127.0.0.1', '--echo-port', '0', '--debug-port', '0', '--log-format', 'pretty'])
  let text = ''
  for await (const chunk of child.stdout!) {
    text += String(chunk)
    if (text.includes('Press Ctrl+C')) break
  }
  t.match(text, /echo\s+ws:\/\/127\.0\.0\.1:\d+\/\n\s+ws:\/\/127\.0\.0\.1:\d+\/raw/)
  t.match(text, /echo-debug\s+ws:\/\/127\.0\.0\.1:\d+\//)
  child.kill('SIGINT')
  const [code] = await once(child, 'exit')
  t.equal(code, 0)
})
