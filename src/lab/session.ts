// What the device lab's controls do to one echo connection: replies late, repeated, fragmented or
// not at all, a close or a drop after N replies, pushes, a burst and a heartbeat of its own. Only
// connections that asked for a control get a LabSession; every other one keeps the plain echo.
import type { WebSocket } from 'ws'
import type { Connection, ConnectionRegistry } from '../registry.js'
import { isoNow } from '../format.js'
import { DEFAULT_BURST_SIZE, type Controls } from './controls.js'

export interface LabLogger {
  warn: (obj: object, msg: string) => void
}

export interface LabSessionOptions {
  socket: WebSocket
  conn: Connection
  registry: ConnectionRegistry
  controls: Controls
  /** `/raw`: pushes are the text `push n` instead of JSON. */
  raw: boolean
  /** Unsent (or held back) bytes past which the connection stops reading from its client. */
  highWater: number
  log: LabLogger
}

interface Pending {
  due: number
  data: Buffer
  isBinary: boolean
}

const OPEN = 1 // WebSocket.OPEN
/** A burst writes until this many bytes wait unsent, then waits for them to go out. */
const BURST_WINDOW = 256 * 1024
/** Frames a burst writes in one turn of the event loop, so other clients get their turn. */
const BURST_BATCH = 1024

const sessions = new WeakMap<object, LabSession>()

/** The controls in force on a socket, if it has any. */
export function controlsOf (socket: object): Controls | undefined {
  return sessions.get(socket)?.controls
}

export class LabSession {
  static #live = 0
  /** Sessions started and not yet stopped, process-wide: 0 once every lab connection has closed. */
  static get live (): number {
    return LabSession.#live
  }

  readonly controls: Controls
  readonly #socket: WebSocket
  readonly #conn: Connection
  readonly #registry: ConnectionRegistry
  readonly #raw: boolean
  readonly #highWater: number
  readonly #log: LabLogger
  readonly #delay: number
  readonly #jitter: number
  readonly #repeat: number
  /** Replies waiting for their time, in the order they will be sent. */
  #queue: Pending[] = []
  #queuedBytes = 0
  #lastDue = 0
  #replyTimer: NodeJS.Timeout | undefined
  #replies = 0
  /** A close or drop has begun: nothing more is sent. */
  #ending = false
  #stopped = false
  /** Reading is paused until the frame that crossed the high-water mark is written. */
  #awaitingDrain = false
  #pushTimer: NodeJS.Timeout | undefined
  #pushSeq = 0
  #burstLeft = 0
  #burstFrame: Buffer | undefined
  #burstImmediate: NodeJS.Immediate | undefined
  #pingTimer: NodeJS.Timeout | undefined
  #awaitingPong = false

  constructor (options: LabSessionOptions) {
    this.controls = options.controls
    this.#socket = options.socket
    this.#conn = options.conn
    this.#registry = options.registry
    this.#raw = options.raw
    this.#highWater = options.highWater
    this.#log = options.log
    this.#delay = this.controls.delay ?? 0
    this.#jitter = this.controls.jitter ?? 0
    this.#repeat = this.controls.repeat ?? 1
    sessions.set(options.socket, this)
  }

  /** Starts what runs without being asked: pushes, the burst, the connection's own heartbeat. */
  start (): void {
    LabSession.#live++
    const { push, burst, ping } = this.controls
    if (push !== undefined) {
      this.#pushTimer = setInterval(() => this.#push(), push)
      this.#pushTimer.unref()
    }
    if (ping !== undefined) this.#conn.ownHeartbeat = true
    if (ping !== undefined && ping > 0) {
      this.#socket.on('pong', () => { this.#awaitingPong = false })
      this.#pingTimer = setInterval(() => this.#heartbeat(), ping)
      this.#pingTimer.unref()
    }
    if (burst !== undefined) {
      this.#burstLeft = burst
      this.#burstFrame = burstPayload(this.controls.burst_size ?? DEFAULT_BURST_SIZE, this.controls.burst_binary === 1)
      this.#burstStep()
    }
  }

  /** Clears every timer; called when the connection closes. */
  stop (): void {
    if (this.#stopped) return
    LabSession.#live--
    this.#stopped = true
    this.#ending = true
    clearTimeout(this.#replyTimer)
    clearInterval(this.#pushTimer)
    clearInterval(this.#pingTimer)
    if (this.#burstImmediate !== undefined) clearImmediate(this.#burstImmediate)
    this.#replyTimer = this.#pushTimer = this.#pingTimer = this.#burstImmediate = undefined
    this.#queue = []
    this.#queuedBytes = 0
    this.#burstFrame = undefined
  }

  /** Timers still armed: none once stopped. */
  get activeTimers (): number {
    return [this.#replyTimer, this.#pushTimer, this.#pingTimer, this.#burstImmediate].filter((x) => x !== undefined).length
  }

  /** The reply to one received message: sent now, or at its time, or never (`silent`). */
  reply (data: Buffer, isBinary: boolean): void {
    if (this.#ending || this.controls.silent === 1) return
    if (this.#delay === 0 && this.#jitter === 0) {
      this.#deliver(data, isBinary)
      return
    }
    const drawn = this.#jitter === 0 ? 0 : Math.floor(Math.random() * (this.#jitter + 1))
    // Never before the reply ahead of it: jitter spreads replies out but never reorders them.
    const due = Math.max(Date.now() + this.#delay + drawn, this.#lastDue)
    this.#lastDue = due
    this.#queue.push({ due, data, isBinary })
    this.#queuedBytes += data.length
    // Replies held back count like unsent ones: a client that keeps sending is not read meanwhile.
    if (this.#queuedBytes > this.#highWater && !this.#socket.isPaused) {
      this.#registry.hit('echo_backpressure')
      this.#socket.pause()
    }
    if (this.#queue.length === 1) this.#arm()
  }

  #arm (): void {
    const head = this.#queue[0]
    if (head === undefined || this.#stopped) return
    this.#replyTimer = setTimeout(() => this.#due(), Math.max(0, head.due - Date.now()))
    this.#replyTimer.unref()
  }

  #due (): void {
    this.#replyTimer = undefined
    const now = Date.now()
    let sent = 0
    while (sent < this.#queue.length && this.#queue[sent]!.due <= now && !this.#ending) {
      const next = this.#queue[sent++]!
      this.#queuedBytes -= next.data.length
      this.#deliver(next.data, next.isBinary)
    }
    if (this.#ending) return
    this.#queue = sent === this.#queue.length ? [] : this.#queue.slice(sent)
    this.#maybeResume()
    this.#arm()
  }

  /** Sends one reply (`repeat` copies), then closes or drops the connection if its count is reached. */
  #deliver (data: Buffer, isBinary: boolean): void {
    if (this.#socket.readyState !== OPEN) return
    const replies = ++this.#replies
    const { close_after: closeAfter, drop_after: dropAfter } = this.controls
    const closing = closeAfter !== undefined && replies >= closeAfter
    const dropping = !closing && dropAfter !== undefined && replies >= dropAfter
    for (let i = 1; i <= this.#repeat; i++) {
      // A drop cuts TCP once the last reply is on its way, not before: the client gets every reply.
      this.#sendMessage(data, isBinary, dropping && i === this.#repeat ? () => this.#socket.terminate() : undefined)
    }
    if (closing) {
      this.#end()
      this.#socket.close(this.controls.close_code ?? 1000, this.controls.close_reason ?? '')
    } else if (dropping) {
      this.#end()
    }
  }

  #end (): void {
    this.#ending = true
    clearTimeout(this.#replyTimer)
    this.#replyTimer = undefined
    this.#queue = []
    this.#queuedBytes = 0
  }

  /** One message, in frames of at most `fragment` payload bytes when asked (continuation frames). */
  #sendMessage (data: Buffer, isBinary: boolean, done?: () => void): void {
    const socket = this.#socket
    this.#conn.sent(data.length)
    const pause = socket.bufferedAmount + data.length > this.#highWater && !socket.isPaused
    const cb = pause || done !== undefined
      ? (err?: Error) => {
          if (pause) {
            this.#awaitingDrain = false
            this.#maybeResume()
          }
          if (err === undefined || err === null) done?.()
        }
      : undefined
    if (pause) {
      this.#awaitingDrain = true
      socket.pause()
      this.#registry.hit('echo_backpressure')
      this.#log.warn({ client: this.#conn.peer, buffered: socket.bufferedAmount }, 'client is not reading its echoes; paused reading from it until they drain')
    }
    const size = this.controls.fragment
    if (size === undefined || data.length <= size) {
      socket.send(data, { binary: isBinary, fin: true }, cb)
      return
    }
    for (let offset = 0; offset < data.length; offset += size) {
      const end = Math.min(offset + size, data.length)
      const fin = end === data.length
      socket.send(data.subarray(offset, end), { binary: isBinary, fin }, fin ? cb : undefined)
    }
  }

  #maybeResume (): void {
    const socket = this.#socket
    if (socket.isPaused && !this.#awaitingDrain && this.#queuedBytes <= this.#highWater && socket.readyState === OPEN) socket.resume()
  }

  #push (): void {
    const socket = this.#socket
    if (socket.readyState !== OPEN || this.#ending) return
    // A client that does not read is not pushed more: its unsent frames would grow without end.
    if (socket.bufferedAmount > this.#highWater) return
    const seq = ++this.#pushSeq
    const text = this.#raw ? `push ${seq}` : `{"type":"push","seq":${seq},"timestamp":"${isoNow()}"}`
    this.#conn.sent(Buffer.byteLength(text))
    socket.send(text)
  }

  /** Writes the burst as the client reads it: at most a window of unsent bytes at any time. */
  #burstStep (): void {
    this.#burstImmediate = undefined
    const socket = this.#socket
    const frame = this.#burstFrame
    if (frame === undefined || this.#ending) return
    const options = { binary: this.controls.burst_binary === 1, fin: true }
    const window = Math.max(BURST_WINDOW, frame.length)
    for (let batch = 0; batch < BURST_BATCH; batch++) {
      if (this.#burstLeft === 0 || socket.readyState !== OPEN || this.#ending) {
        this.#burstFrame = undefined
        return
      }
      this.#burstLeft--
      this.#conn.sent(frame.length)
      if (socket.bufferedAmount + frame.length >= window) {
        // Continue once this frame, and so everything before it, has been written out.
        socket.send(frame, options, (err?: Error) => { if (err === undefined || err === null) this.#burstStep() })
        return
      }
      socket.send(frame, options)
    }
    this.#burstImmediate = setImmediate(() => this.#burstStep())
  }

  /** The connection's own heartbeat: `ping` in place of the server-wide interval. */
  #heartbeat (): void {
    const socket = this.#socket
    if (socket.readyState !== OPEN) return
    if (this.#awaitingPong) {
      this.#registry.hit('heartbeat_timeout')
      this.#log.warn({ client: this.#conn.peer, interval_ms: this.controls.ping }, 'client missed a heartbeat ping; connection terminated')
      socket.terminate()
      return
    }
    this.#awaitingPong = true
    this.#conn.ping()
  }
}

/** `size` bytes of `x`, or bytes counting 0-255 over and over: shared by every frame of a burst. */
export function burstPayload (size: number, binary: boolean): Buffer {
  if (!binary) return Buffer.alloc(size, 'x')
  const bytes = Buffer.allocUnsafe(size)
  for (let i = 0; i < size; i++) bytes[i] = i & 0xff
  return bytes
}
