// The load generator, a process of its own that bench/run.js pins to the other core. It stays lean
// so the server, not the generator, is the bottleneck: raw `net` sockets sharing one read buffer,
// frames masked once and reused, server frames parsed by header only, all replies of one read
// answered in one write. Closed loop: each connection keeps `--inflight` messages outstanding.
//
// Modes (JSON lines on stdout for the parent):
//   echo       `--conns` connections to `--path`; {"event":"measure"} when the window opens,
//              then {"event":"result",...}
//   broadcast  `--receivers` connections plus one publisher; a message is done when the
//              publisher receives its own broadcast back; rate is deliveries/s
//   idle       opens `--conns` connections, reports {"event":"open",...} and holds them until
//              stdin closes (or `--hold` seconds pass)
import { fstatSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { connectWs, encodeClientFrame, FrameCounter, openMany, OP_CLOSE, OP_PING } from './frames.js'

const { values: opt } = parseArgs({
  options: {
    mode: { type: 'string', default: 'echo' },
    port: { type: 'string' },
    path: { type: 'string', default: '/' },
    conns: { type: 'string', default: '100' },
    receivers: { type: 'string', default: '1000' },
    inflight: { type: 'string', default: '1' },
    size: { type: 'string', default: '64' },
    binary: { type: 'boolean', default: false },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    hold: { type: 'string', default: '120' },
    concurrency: { type: 'string', default: '100' }
  }
})

const port = Number(opt.port)
const inflight = Number(opt.inflight)
const size = Number(opt.size)
const durationMs = Number(opt.duration) * 1000
const warmupMs = Number(opt.warmup) * 1000
const concurrency = Number(opt.concurrency)
const CONNECT_TIMEOUT_MS = 15_000

function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n') // pipes are synchronous on Linux: nothing is lost on exit
}

function fail (message) {
  emit({ event: 'error', message })
  process.exit(1)
}

if (!Number.isInteger(port) || port <= 0) fail('--port is required')
if (!(inflight >= 1 && inflight <= 1024)) fail('--inflight must be 1..1024')

// The parent holds our stdin pipe: when it goes away (even killed), so do we. A hard deadline
// backs it up. (Node's child_process pipes are sockets; a shell's are FIFOs; a terminal is neither.)
const stdin = fstatSync(0)
if (stdin.isFIFO() || stdin.isSocket()) {
  process.stdin.on('end', () => process.exit(0))
  process.stdin.resume()
}
const deadlineMs = opt.mode === 'idle'
  ? Number(opt.hold) * 1000 + 120_000
  : warmupMs + durationMs + 120_000
setTimeout(() => fail(`gave up after ${deadlineMs / 1000} s`), deadlineMs).unref()

const T0 = process.hrtime.bigint()
/** Nanoseconds since start, as a Number (exact for 104 days). */
const now = () => Number(process.hrtime.bigint() - T0)
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Round-trip times at 1 us resolution up to 1 s: every message is recorded, memory stays fixed. */
class Histogram {
  constructor (maxUs = 1_000_000) {
    this.counts = new Uint32Array(maxUs + 1)
    this.max = maxUs
    this.n = 0
  }

  record (ns) {
    const us = Math.round(ns / 1000)
    this.counts[us > this.max ? this.max : us]++
    this.n++
  }

  percentileMs (p) {
    if (this.n === 0) return null
    const rank = Math.max(1, Math.ceil(p * this.n))
    let seen = 0
    for (let us = 0; us <= this.max; us++) {
      seen += this.counts[us]
      if (seen >= rank) return us / 1000
    }
    return this.max / 1000
  }
}

/** `size` bytes of plain ASCII text, so JSON escaping costs nothing extra on either server. */
function text (n) {
  const unit = 'The quick brown fox jumps over the lazy dog. '
  return unit.repeat(Math.ceil(n / unit.length)).slice(0, n)
}

// One read buffer for every socket (net's `onread`): no allocation per read.
const readBuffer = Buffer.allocUnsafe(256 * 1024)
const hist = new Histogram()
const stats = { done: 0, received: 0, unexpected: 0, closed: 0 }
let measuring = false
let stopping = false

function open (path) {
  return connectWs(port, path, { readBuffer, timeoutMs: CONNECT_TIMEOUT_MS })
}

function onControl (conn, opcode, payload) {
  if (opcode === OP_PING) conn.pong(payload)
  else if (opcode === OP_CLOSE) conn.socket.end()
}

function watchClose (conn) {
  conn.onClose = () => {
    if (!stopping) stats.closed++
  }
}

/**
 * Drives one connection in a closed loop: `inflight` frames outstanding, each reply answered by
 * one more, all replies of a read answered in one write. `skipFirst` drops a greeting frame
 * (the chat welcome) and calls `onGreeting`.
 */
function drive (conn, frame, { skipFirst = false, onGreeting } = {}) {
  // slices[k] = k copies of the frame, prebuilt, so a reply to k messages is one write, no copy
  const batch = Buffer.concat(Array(inflight).fill(frame))
  const slices = Array.from({ length: inflight + 1 }, (_, k) => batch.subarray(0, k * frame.length))
  const sent = new Float64Array(inflight) // ring of send times
  let head = 0
  let tail = 0
  let outstanding = 0
  let greeted = !skipFirst
  const counter = new FrameCounter((op, p) => onControl(conn, op, p))
  watchClose(conn)

  const send = (k, t) => {
    for (let j = 0; j < k; j++) {
      sent[tail] = t
      tail = tail + 1 === inflight ? 0 : tail + 1
    }
    outstanding += k
    conn.socket.write(slices[k])
  }

  conn.start((chunk) => {
    let k = counter.push(chunk)
    if (k === 0) return
    if (!greeted) {
      greeted = true
      k--
      onGreeting()
      if (k === 0) return
    }
    if (k > outstanding) {
      stats.unexpected += k - outstanding
      k = outstanding
    }
    const t = now()
    for (let j = 0; j < k; j++) {
      if (measuring) hist.record(t - sent[head])
      head = head + 1 === inflight ? 0 : head + 1
    }
    outstanding -= k
    if (measuring) stats.done += k
    if (!stopping && k > 0) send(k, t)
  })
  return { begin: () => send(inflight, now()) }
}

/** Warm up, measure for the duration, report, close. */
async function window (extra) {
  await sleep(warmupMs)
  hist.counts.fill(0)
  hist.n = 0
  stats.done = 0
  stats.received = 0
  const cpu0 = process.cpuUsage()
  const t0 = now()
  measuring = true
  emit({ event: 'measure' })
  await sleep(durationMs)
  measuring = false
  const seconds = (now() - t0) / 1e9
  const cpu = process.cpuUsage(cpu0)
  stopping = true
  const result = {
    event: 'result',
    mode: opt.mode,
    seconds,
    messages: stats.done,
    rate: stats.done / seconds,
    p50_ms: hist.percentileMs(0.5),
    p99_ms: hist.percentileMs(0.99),
    unexpected: stats.unexpected,
    closed: stats.closed,
    gen_cpu_share: (cpu.user + cpu.system) / 1e6 / seconds
  }
  result.units = result.messages // what server CPU is divided by: messages, or deliveries
  emit({ ...result, ...extra(result) })
}

async function openAll (n, path) {
  const { conns, errors } = await openMany(n, concurrency, () => open(path))
  if (errors.length > 0) {
    for (const c of conns) c.socket.destroy()
    fail(`${errors.length} of ${n} connections to ${opt.path} failed, first: ${errors[0].message}`)
  }
  return conns
}

async function runEcho () {
  const frame = encodeClientFrame(Buffer.from(text(size)), opt.binary ? 2 : 1)
  const conns = await openAll(Number(opt.conns), opt.path)
  for (const conn of conns) drive(conn, frame).begin()
  await window(() => ({ connections: conns.length, inflight, size }))
  return conns
}

async function runBroadcast () {
  const receivers = Number(opt.receivers)
  let welcomed = 0
  let allWelcomed
  const welcomes = new Promise((resolve) => { allWelcomed = resolve })
  const greet = () => {
    if (++welcomed === receivers + 1) allWelcomed()
  }
  const conns = await openAll(receivers, opt.path)
  for (const conn of conns) {
    // receivers only count what they get; the first frame is the welcome
    let greeted = false
    const counter = new FrameCounter((op, p) => onControl(conn, op, p))
    watchClose(conn)
    conn.start((chunk) => {
      let k = counter.push(chunk)
      if (k === 0) return
      if (!greeted) {
        greeted = true
        k--
        greet()
      }
      if (measuring) stats.received += k
    })
  }
  // The publisher connects last, so a server that loops over its clients in connection order
  // writes the publisher's copy last: its round trip then spans the whole broadcast.
  const overhead = '{"type":"message","payload":""}'.length
  const frame = encodeClientFrame(`{"type":"message","payload":"${text(Math.max(1, size - overhead))}"}`)
  const [publisher] = await openAll(1, opt.path)
  const pub = drive(publisher, frame, { skipFirst: true, onGreeting: greet })
  const timeout = sleep(CONNECT_TIMEOUT_MS).then(() => 'timeout')
  if (await Promise.race([welcomes, timeout]) === 'timeout') {
    fail(`only ${welcomed} of ${receivers + 1} chat clients got a welcome`)
  }
  pub.begin()
  const clients = receivers + 1
  await window((r) => ({
    receivers,
    inflight,
    size,
    // every client, the publisher included, gets each message
    units: r.messages * clients,
    rate: (r.messages * clients) / r.seconds,
    message_rate: r.rate,
    counted_deliveries: stats.received + r.messages
  }))
  return [...conns, publisher]
}

async function runIdle () {
  const n = Number(opt.conns)
  const { conns, errors } = await openMany(n, concurrency, () => open(opt.path))
  for (const conn of conns) {
    const counter = new FrameCounter((op, p) => onControl(conn, op, p))
    watchClose(conn)
    conn.start((chunk) => { counter.push(chunk) })
  }
  emit({ event: 'open', open: conns.length, failed: errors.length, error: errors[0]?.message })
  await sleep(Number(opt.hold) * 1000) // normally ended earlier by the parent closing stdin
  stopping = true
  return conns
}

const modes = { echo: runEcho, broadcast: runBroadcast, idle: runIdle }
if (!(opt.mode in modes)) fail(`unknown --mode ${opt.mode}`)
try {
  const conns = await modes[opt.mode]()
  for (const conn of conns) conn.socket.destroy()
  process.exit(0)
} catch (err) {
  fail(err.stack ?? String(err))
}
