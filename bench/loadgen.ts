// The load generator, a process of its own that bench/run.ts pins to the other core. It stays lean
// so the server, not the generator, is the bottleneck: raw `net` sockets sharing one read buffer,
// frames masked once and reused, server frames counted by header only, all replies of one read
// answered in one write. Closed loop: each connection keeps `--inflight` messages outstanding.
//
// Modes (JSON lines on stdout for the parent):
//   echo       `--conns` connections to `--path`; {"event":"measure"} when the window opens,
//              then {"event":"result",...}
//   broadcast  `--receivers` chat clients (spread over `--ports`, all in `--room` if given) plus
//              one publisher on the first port; a message is done when the publisher receives its
//              own copy back; rate is deliveries/s. `--dialect` echohub or socketio. With
//              `--rooms N`, N rooms (`<room>-1`..) share the receivers, each with its own publisher.
//   idle       opens `--conns` connections, reports {"event":"open",...} and holds them until
//              stdin closes (or `--hold` seconds pass)
//   rooms      open loop, for many rooms at a low rate: `--rooms` rooms of `--members` (the
//              publisher is one of them), spread over `--instances` servers so that member j of room
//              r is on instance (r + j) mod I; this process opens the members of instance `--index`
//              on `--port` and publishes, for the rooms whose member 0 it holds, `--rate` messages
//              a second per room. Each message carries its publish time (the monotonic clock, the
//              same in every process of the machine), so every member's latency is measured. After
//              {"event":"ready",...}, stdin lines `measure NS` and `report NS` bound the window
//              (publish times on the parent's clock); the report lists each message's farthest
//              member, for the parent to merge across processes.
// `--sources 127.0.0.2,127.0.0.3`: source addresses, taken in turn (the whole of 127/8 is loopback).
// Transport: `--tls` speaks wss (every read is then a buffer of its own); `--deflate` negotiates
// permessage-deflate and sends messages of 1 KiB and more compressed, each deflated once up front;
// replies are still counted by header (compressed or not). `--payload random` sends incompressible
// data (random bytes to echo, random base64 text to the chat) instead of English text.
import { randomBytes } from 'node:crypto'
import { fstatSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { DIALECTS, type Dialect, type DialectName } from './dialects.js'
import { connectWs, deflateMessage, encodeFrame, FrameCounter, FrameReader, openMany, OP_BINARY, OP_CLOSE, OP_PING, OP_TEXT, type Conn } from './raw-ws.js'

const { values: opt } = parseArgs({
  options: {
    mode: { type: 'string', default: 'echo' },
    port: { type: 'string' },
    ports: { type: 'string' },
    path: { type: 'string' },
    dialect: { type: 'string', default: 'echohub' },
    room: { type: 'string' },
    rooms: { type: 'string', default: '1' },
    conns: { type: 'string', default: '100' },
    receivers: { type: 'string', default: '1000' },
    inflight: { type: 'string', default: '1' },
    size: { type: 'string', default: '64' },
    payload: { type: 'string', default: 'text' },
    tls: { type: 'boolean', default: false },
    deflate: { type: 'boolean', default: false },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    hold: { type: 'string', default: '120' },
    setup: { type: 'string', default: '120' },
    concurrency: { type: 'string', default: '100' },
    sources: { type: 'string' },
    members: { type: 'string', default: '100' },
    instances: { type: 'string', default: '1' },
    index: { type: 'string', default: '0' },
    rate: { type: 'string', default: '1' }
  }
})

function emit (obj: object): void {
  process.stdout.write(JSON.stringify(obj) + '\n') // pipes are synchronous on Linux: nothing is lost on exit
}

function fail (message: string): never {
  emit({ event: 'error', message })
  process.exit(1)
}

const ports = (opt.ports ?? opt.port ?? '').split(',').filter((p) => p !== '').map(Number)
const inflight = Number(opt.inflight)
const size = Number(opt.size)
const durationMs = Number(opt.duration) * 1000
const warmupMs = Number(opt.warmup) * 1000
const concurrency = Number(opt.concurrency)
const room = opt.room ?? null
const rooms = Number(opt.rooms)
if (!(opt.dialect in DIALECTS)) fail(`unknown --dialect ${opt.dialect}`)
const dialect: Dialect = DIALECTS[opt.dialect as DialectName]
const path = opt.path ?? (opt.mode === 'broadcast' || opt.mode === 'rooms' ? dialect.path : '/')
const CONNECT_TIMEOUT_MS = 15_000

if (ports.length === 0 || !ports.every((p) => Number.isInteger(p) && p > 0)) fail('--port or --ports is required')
if (!(inflight >= 1 && inflight <= 1024)) fail('--inflight must be 1..1024')
if (!(Number.isInteger(rooms) && rooms >= 1) || (rooms > 1 && room === null)) fail('--rooms must be a whole number >= 1, and needs --room')
if (opt.payload !== 'text' && opt.payload !== 'random') fail('--payload must be text or random')
const random = opt.payload === 'random'
const sources = (opt.sources ?? '').split(',').filter((a) => a !== '')
let nextSource = 0
const transport = { tls: opt.tls, deflate: opt.deflate }
/** Connection options: the transport, and the next source address if there are several. */
const connectOptions = () => sources.length === 0 ? transport : { ...transport, localAddress: sources[nextSource++ % sources.length] }
/** What a compressing client such as ws leaves uncompressed: messages below 1 KiB. */
const DEFLATE_FROM = 1024

// The parent holds our stdin pipe: when it goes away (even killed), so do we. A hard deadline
// backs it up. (Node's child_process pipes are sockets; a shell's are FIFOs; a terminal is neither.)
const stdin = fstatSync(0)
if (stdin.isFIFO() || stdin.isSocket()) {
  process.stdin.on('end', () => process.exit(0))
  process.stdin.resume()
}
// `--setup` seconds allow for opening the connections (thousands joining one room take a while:
// each join is news to every member).
const deadlineMs = (opt.mode === 'idle' ? Number(opt.hold) * 1000 : warmupMs + durationMs) + Number(opt.setup) * 1000
setTimeout(() => fail(`gave up after ${deadlineMs / 1000} s`), deadlineMs).unref()

const T0 = process.hrtime.bigint()
/** Nanoseconds since start, as a Number (exact for 104 days). */
const now = (): number => Number(process.hrtime.bigint() - T0)
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Round-trip times at 1 us resolution up to 1 s: every message is recorded, memory stays fixed. */
class Histogram {
  readonly counts: Uint32Array
  readonly max: number
  n = 0

  constructor (maxUs = 1_000_000) {
    this.counts = new Uint32Array(maxUs + 1)
    this.max = maxUs
  }

  record (ns: number): void {
    const us = Math.round(ns / 1000)
    this.counts[us > this.max ? this.max : us]!++
    this.n++
  }

  reset (): void {
    this.counts.fill(0)
    this.n = 0
  }

  percentileMs (p: number): number | null {
    if (this.n === 0) return null
    const rank = Math.max(1, Math.ceil(p * this.n))
    let seen = 0
    for (let us = 0; us <= this.max; us++) {
      seen += this.counts[us]!
      if (seen >= rank) return us / 1000
    }
    return this.max / 1000
  }
}

/**
 * `n` bytes of plain ASCII, so JSON escaping costs nothing extra on any server: English text, or
 * with `--payload random` base64 of random bytes (which compresses only to its 6 bits a byte).
 */
function text (n: number): string {
  if (random) return randomBytes(Math.ceil(n * 3 / 4)).toString('base64').slice(0, n)
  const unit = 'The quick brown fox jumps over the lazy dog. '
  return unit.repeat(Math.ceil(n / unit.length)).slice(0, n)
}

/** A client frame of one message, compressed when `--deflate` and large enough. */
function messageFrame (data: string | Buffer, opcode = OP_TEXT): Buffer {
  const size = typeof data === 'string' ? Buffer.byteLength(data) : data.length
  return transport.deflate && size >= DEFLATE_FROM
    ? encodeFrame(deflateMessage(data), opcode, true, true)
    : encodeFrame(data, opcode)
}

// One read buffer for every socket (net's `onread`): no allocation per read.
const readBuffer = Buffer.allocUnsafe(256 * 1024)
const hist = new Histogram()
const stats = { done: 0, received: 0, unexpected: 0, closed: 0 }
/** The codes of the close frames the server sent, with how many of each (`none`: an empty close). */
const closeCodes: Record<string, number> = {}
let measuring = false
let stopping = false

/** Pings and close frames, and the dialect's own short chatter (socket.io's ping `2`). */
function onShort (conn: Conn, opcode: number, payload: Buffer): void {
  if (opcode === OP_PING) {
    conn.pong(payload)
  } else if (opcode === OP_CLOSE) {
    const code = payload.length >= 2 ? String(payload.readUInt16BE(0)) : 'none'
    if (!stopping) closeCodes[code] = (closeCodes[code] ?? 0) + 1
    conn.socket.end()
  } else if (opcode < 8) {
    const answer = dialect.answerShort(payload.toString())
    if (answer !== null && !conn.closed) conn.socket.write(encodeFrame(answer))
  }
}

function watchClose (conn: Conn): void {
  conn.onClose = () => {
    if (!stopping) stats.closed++
  }
}

/**
 * Opens one connection and runs the dialect's setup on it (greetings, joining the room), parsing
 * whole frames; then hands every later byte, the rest of the last read included, to `onData`.
 */
async function open (port: number, withSetup: boolean, onData: (conn: Conn, chunk: Buffer) => void, inRoom = room): Promise<Conn> {
  const conn = await connectWs(port, path, { readBuffer, timeoutMs: CONNECT_TIMEOUT_MS, ...connectOptions() })
  watchClose(conn)
  const steps = withSetup ? dialect.setup(inRoom) : []
  let step = 0
  const send = () => { if (steps[step]?.send !== undefined) conn.socket.write(encodeFrame(steps[step]!.send!)) }
  await new Promise<void>((resolve, reject) => {
    let ready = steps.length === 0
    const timer = setTimeout(() => reject(new Error(`no ${steps[step]?.what} within ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS)
    const reader = new FrameReader((f) => {
      if (f.opcode >= 8 || f.payload.length <= dialect.shortLen) {
        if (f.opcode === OP_CLOSE) reject(new Error(`closed during setup, waiting for ${steps[step]?.what}`))
        onShort(conn, f.opcode, f.payload)
        return
      }
      if (!steps[step]!.until(f.payload.toString())) return
      step++
      if (step < steps.length) {
        send()
        return
      }
      ready = true
      reader.stop()
    })
    if (ready) {
      clearTimeout(timer)
      resolve()
    } else {
      send() // before start(): bytes that came with the 101 may complete a step at once
    }
    conn.start((chunk) => {
      if (ready) {
        onData(conn, chunk)
        return
      }
      reader.push(Buffer.from(chunk)) // kept across reads: copy out of the shared buffer
      if (ready) {
        clearTimeout(timer)
        resolve()
        const rest = reader.rest()
        if (rest.length > 0) onData(conn, rest)
      }
    })
  })
  return conn
}

async function openAll (n: number, portOf: (i: number) => number, withSetup: boolean, onData: (conn: Conn, chunk: Buffer) => void,
  roomOf: (i: number) => string | null = () => room): Promise<Conn[]> {
  let i = 0
  const { conns, errors } = await openMany(n, concurrency, () => {
    const k = i++
    return open(portOf(k), withSetup, onData, roomOf(k))
  })
  if (errors.length > 0) {
    for (const c of conns) c.socket.destroy()
    fail(`${errors.length} of ${n} connections to ${path} failed, first: ${errors[0]!.message}`)
  }
  return conns
}

/**
 * Drives one connection in a closed loop: `inflight` frames outstanding, each reply answered by
 * one more, all replies of a read answered in one write.
 */
function driver (frame: Buffer): { onData: (conn: Conn, chunk: Buffer) => void, begin: (conn: Conn) => void } {
  // slices[k] = k copies of the frame, prebuilt, so a reply to k messages is one write, no copy
  const batch = Buffer.concat(Array<Buffer>(inflight).fill(frame))
  const slices = Array.from({ length: inflight + 1 }, (_, k) => batch.subarray(0, k * frame.length))
  const loops = new Map<Conn, { sent: Float64Array, head: number, tail: number, outstanding: number, counter: FrameCounter }>()
  const loopOf = (conn: Conn) => {
    let loop = loops.get(conn)
    if (loop === undefined) {
      loop = { sent: new Float64Array(inflight), head: 0, tail: 0, outstanding: 0, counter: new FrameCounter((op, p) => onShort(conn, op, p), dialect.shortLen) }
      loops.set(conn, loop)
    }
    return loop
  }
  const send = (conn: Conn, k: number, t: number) => {
    const loop = loopOf(conn)
    for (let j = 0; j < k; j++) {
      loop.sent[loop.tail] = t
      loop.tail = loop.tail + 1 === inflight ? 0 : loop.tail + 1
    }
    loop.outstanding += k
    conn.socket.write(slices[k]!)
  }
  return {
    onData: (conn, chunk) => {
      const loop = loopOf(conn)
      let k = loop.counter.push(chunk)
      if (k === 0) return
      if (k > loop.outstanding) {
        stats.unexpected += k - loop.outstanding
        k = loop.outstanding
      }
      const t = now()
      for (let j = 0; j < k; j++) {
        if (measuring) hist.record(t - loop.sent[loop.head]!)
        loop.head = loop.head + 1 === inflight ? 0 : loop.head + 1
      }
      loop.outstanding -= k
      if (measuring) stats.done += k
      if (!stopping && k > 0) send(conn, k, t)
    },
    begin: (conn) => send(conn, inflight, now())
  }
}

interface Result {
  event: 'result'
  mode: string
  seconds: number
  messages: number
  rate: number
  p50_ms: number | null
  p99_ms: number | null
  unexpected: number
  closed: number
  gen_cpu_share: number
  units: number
}

/** Warm up, measure for the duration, report. */
async function window (extra: (r: Result) => object): Promise<void> {
  await sleep(warmupMs)
  hist.reset()
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
  const result: Result = {
    event: 'result',
    mode: opt.mode!,
    seconds,
    messages: stats.done,
    rate: stats.done / seconds,
    p50_ms: hist.percentileMs(0.5),
    p99_ms: hist.percentileMs(0.99),
    unexpected: stats.unexpected,
    closed: stats.closed,
    gen_cpu_share: (cpu.user + cpu.system) / 1e6 / seconds,
    units: stats.done // what server CPU is divided by: messages, or deliveries
  }
  emit({ ...result, ...extra(result) })
}

async function runEcho (): Promise<Conn[]> {
  const frame = random ? messageFrame(randomBytes(size), OP_BINARY) : messageFrame(text(size))
  const drive = driver(frame)
  const conns = await openAll(Number(opt.conns), () => ports[0]!, false, drive.onData)
  for (const conn of conns) drive.begin(conn)
  await window(() => ({ connections: conns.length, inflight, size, payload: opt.payload, ...transport }))
  return conns
}

async function runBroadcast (): Promise<Conn[]> {
  const receivers = Number(opt.receivers)
  // receivers only count what they get, once set up
  const counters = new Map<Conn, FrameCounter>()
  const count = (conn: Conn, chunk: Buffer) => {
    let counter = counters.get(conn)
    if (counter === undefined) {
      counter = new FrameCounter((op, p) => onShort(conn, op, p), dialect.shortLen)
      counters.set(conn, counter)
    }
    const k = counter.push(chunk)
    if (measuring) stats.received += k
  }
  const roomOf = (i: number) => rooms === 1 ? room : `${room}-${1 + (i % rooms)}`
  const conns = await openAll(receivers, (i) => ports[i % ports.length]!, true, count, roomOf)
  // The publishers connect last, so a server that loops over its clients in connection order
  // writes a publisher's copy last: its round trip then spans the whole broadcast.
  const publishers: Conn[] = []
  for (let k = 0; k < rooms; k++) {
    const inRoom = roomOf(k)
    const overhead = dialect.publish(inRoom, '').length
    const drive = driver(messageFrame(dialect.publish(inRoom, text(Math.max(1, size - overhead)))))
    const [publisher] = await openAll(1, () => ports[0]!, true, drive.onData, () => inRoom)
    publishers.push(publisher!)
    drive.begin(publisher!)
  }
  // every member of a message's room, its publisher included, gets it
  const members = receivers / rooms + 1
  await window((r) => ({
    receivers,
    rooms,
    inflight,
    size,
    payload: opt.payload,
    ...transport,
    units: r.messages * members,
    rate: (r.messages * members) / r.seconds,
    message_rate: r.rate,
    counted_deliveries: stats.received + r.messages
  }))
  return [...conns, ...publishers]
}

async function runIdle (): Promise<Conn[]> {
  const n = Number(opt.conns)
  // idle clients still answer pings (and read whatever else comes), or the server would drop them
  const counters = new Map<Conn, FrameCounter>()
  const { conns, errors } = await openMany(n, concurrency, () => open(ports[0]!, false, (conn, chunk) => {
    let counter = counters.get(conn)
    if (counter === undefined) {
      counter = new FrameCounter((op, p) => onShort(conn, op, p))
      counters.set(conn, counter)
    }
    counter.push(chunk)
  }))
  emit({ event: 'open', open: conns.length, failed: errors.length, error: errors[0]?.message, gen_cpu_s: process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6 })
  await sleep(Number(opt.hold) * 1000) // normally ended earlier by the parent closing stdin
  stopping = true
  return conns
}

const MARK = Buffer.from('~T')

/**
 * Whole server frames out of a stream of reads, handed over as views of the read (which may be the
 * shared read buffer: `onFrame` must not keep them); only a frame split across two reads is copied.
 */
class LeanFrames {
  private tail: Buffer | null = null
  private readonly onFrame: (opcode: number, payload: Buffer) => void

  constructor (onFrame: (opcode: number, payload: Buffer) => void) {
    this.onFrame = onFrame
  }

  push (chunk: Buffer): void {
    let buf = chunk
    if (this.tail !== null) {
      buf = Buffer.concat([this.tail, chunk])
      this.tail = null
    }
    const n = buf.length
    let i = 0
    while (i < n) {
      if (n - i < 2) break
      const b1 = buf[i + 1]!
      let len = b1 & 0x7f
      const size = (len === 126 ? 4 : len === 127 ? 10 : 2) + ((b1 & 0x80) !== 0 ? 4 : 0)
      if (n - i < size) break
      if (len === 126) len = buf.readUInt16BE(i + 2)
      else if (len === 127) len = Number(buf.readBigUInt64BE(i + 2))
      if (n - i < size + len) break
      this.onFrame(buf[i]! & 0x0f, buf.subarray(i + size, i + size + len))
      i += size + len
    }
    if (i < n) this.tail = Buffer.from(buf.subarray(i))
  }
}

/** How long a rooms report waits at most for the window's last deliveries. */
const SETTLE_MAX_MS = 60_000

/**
 * Many rooms, each publishing `--rate` messages a second whatever the replies (open loop): the
 * scale scenarios. Receivers parse every frame for the publish time the payload carries.
 */
async function runRooms (): Promise<Conn[]> {
  const totalRooms = Number(opt.rooms)
  const members = Number(opt.members)
  const instances = Number(opt.instances)
  const index = Number(opt.index)
  const rate = Number(opt.rate)
  if (!(members >= 1 && instances >= 1 && index >= 0 && index < instances && rate > 0) || room === null) fail('rooms: bad --members, --instances, --index, --rate or no --room')
  const mine: Array<{ r: number, publisher: boolean }> = []
  for (let r = 0; r < totalRooms; r++) {
    for (let j = 0; j < members; j++) if ((r + j) % instances === index) mine.push({ r, publisher: j === 0 })
  }
  const roomName = (r: number) => `${room}-${r}`
  // the window, on the parent's clock: publish times in [t0, t1) count
  let t0 = Infinity
  let t1 = Infinity
  const farthest = new Map<string, { max: number, n: number }>()
  const onFrame = (conn: Conn, opcode: number, payload: Buffer) => {
    if (opcode >= 8 || payload.length <= dialect.shortLen) {
      onShort(conn, opcode, payload)
      return
    }
    const at = payload.indexOf(MARK)
    if (at === -1) return // presence and other chatter
    const end = payload.indexOf(126, at + 2) // '~'
    const sent = Number(payload.toString('latin1', at + 2, end))
    if (!(sent >= t0 && sent < t1)) return
    const late = Number(process.hrtime.bigint()) - sent
    hist.record(late)
    stats.received++
    const key = payload.toString('latin1', at + 2, payload.indexOf(126, end + 1))
    const f = farthest.get(key)
    if (f === undefined) farthest.set(key, { max: late, n: 1 })
    else {
      f.n++
      if (late > f.max) f.max = late
    }
  }
  // tens of members hear of every join: the generator must keep up with that chatter (or it
  // answers the heartbeat's pings late and is cut off), so frames are read in place
  const readers = new Map<Conn, LeanFrames>()
  let k = 0
  const { conns, errors } = await openMany(mine.length, concurrency, async () => {
    const m = mine[k++]!
    const conn = await open(ports[0]!, true, (c, chunk) => {
      let reader = readers.get(c)
      if (reader === undefined) {
        reader = new LeanFrames((opcode, payload) => onFrame(c, opcode, payload))
        readers.set(c, reader)
      }
      reader.push(chunk)
    }, roomName(m.r))
    return { conn, ...m }
  })
  if (errors.length > 0) {
    for (const c of conns) c.conn.socket.destroy()
    fail(`${errors.length} of ${mine.length} connections to ${path} failed, first: ${errors[0]!.message}`)
  }
  const publishers = conns.filter((c) => c.publisher)
  emit({ event: 'ready', connections: conns.length, publishers: publishers.length, gen_cpu_s: (process.cpuUsage().user + process.cpuUsage().system) / 1e6 })
  // each publisher in turn, evenly spread over the second
  let published = 0
  let next = 0
  const pad = 'x'.repeat(size)
  const tick = () => {
    const p = publishers[next++ % publishers.length]!
    const sent = process.hrtime.bigint()
    const body = `~T${sent}~R${p.r}~`
    const frame = encodeFrame(dialect.publish(roomName(p.r), body + pad.slice(0, Math.max(0, size - body.length))))
    if (p.conn.closed) return // counted by its close
    p.conn.socket.write(frame)
    const ns = Number(sent)
    if (ns >= t0 && ns < t1) published++
  }
  // a timer fires late on a busy machine: each one sends what is due by the clock, so the rate holds
  const start = now()
  let sent = 0
  const timer = publishers.length === 0
    ? null
    : setInterval(() => {
      const due = Math.floor((now() - start) / 1e9 * rate * publishers.length)
      for (; sent < due; sent++) tick()
    }, Math.max(1, Math.min(10, 1000 / (rate * publishers.length))))
  const cpu0 = { v: process.cpuUsage(), t: now() }
  // commands from the parent, one a line
  const lines = createInterface({ input: process.stdin })
  await new Promise<void>((resolve) => {
    lines.on('line', (line) => {
      const [cmd, arg] = line.trim().split(' ')
      if (cmd === 'measure') {
        t0 = Number(arg)
        hist.reset()
        stats.received = 0
        published = 0
        farthest.clear()
        cpu0.v = process.cpuUsage()
        cpu0.t = now()
      } else if (cmd === 'report') {
        t1 = Number(arg)
        const cpu = process.cpuUsage(cpu0.v)
        const seconds = (now() - cpu0.t) / 1e9
        // the last messages of the window are still on their way (seconds behind on a saturated
        // machine): report once none of them has arrived for a second, or after SETTLE_MAX_MS
        let seen = stats.received
        let quietSince = now()
        const settle = setInterval(() => {
          if (stats.received !== seen) {
            seen = stats.received
            quietSince = now()
          }
          const t = now()
          if (t - quietSince < 1e9 && Number(process.hrtime.bigint()) - t1 < SETTLE_MAX_MS * 1e6) return
          clearInterval(settle)
          if (timer !== null) clearInterval(timer)
          stopping = true
          const hgram: Array<[number, number]> = []
          hist.counts.forEach((c, us) => { if (c > 0) hgram.push([us, c]) })
          emit({
            event: 'report',
            published,
            received: stats.received,
            closed: stats.closed,
            close_codes: closeCodes,
            gen_cpu_share: (cpu.user + cpu.system) / 1e6 / seconds,
            hist: hgram,
            farthest: [...farthest].map(([key, f]) => [key, Math.round(f.max / 1000), f.n])
          })
          resolve()
        }, 100)
      }
    })
  })
  // hold the connections until the parent closes stdin (the report may still be on its way to it)
  return await new Promise<never>(() => {})
}

const modes: Record<string, () => Promise<Conn[]>> = { echo: runEcho, broadcast: runBroadcast, idle: runIdle, rooms: runRooms }
if (!(opt.mode! in modes)) fail(`unknown --mode ${opt.mode}`)
try {
  const conns = await modes[opt.mode!]!()
  for (const conn of conns) conn.socket.destroy()
  process.exit(0)
} catch (err) {
  fail((err as Error).stack ?? String(err))
}
