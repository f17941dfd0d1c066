// What the device lab's controls do to one echo connection: replies late, repeated, fragmented or
// not at all, a close or a drop after N replies, pushes, a burst and a heartbeat of its own. Only
// connections that asked for a control get a LabSession; every other one keeps the plain echo.
//
// Everything a session sends goes through one output queue, written as the socket drains: a batch
// of about OUTPUT_WINDOW bytes (at most BATCH_FRAMES frames) at a time, the next batch only once
// the last one has been handed to the kernel. Batches of all sessions run from one scheduler, at
// most TURN_MS of them per turn of the event loop, so no control, however large its product
// (`fragment=1&repeat=100` on a 1 MiB message, a burst of a million frames), and no number of
// such connections queues more than a window ahead of a client or holds the event loop.
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
  /** Held-back bytes (delayed replies) past which the connection stops reading from its client. */
  highWater: number
  /** The most one received message's replies may put on the wire (copies and frame headers); past it: close 1008. */
  maxOutput: number
  /**
   * The TCP socket under the WebSocket, corked for each batch so its frames leave in one write
   * rather than one system call each (a batch of 1-byte fragments is a thousand frames).
   */
  tcp?: { cork: () => void, uncork: () => void } | undefined
  log: LabLogger
}

interface Pending {
  due: number
  data: Buffer
  isBinary: boolean
}

/** One message waiting in the output queue (a reply with its copies, a push, an operator's send). */
interface Outgoing {
  data: Buffer
  isBinary: boolean
  /** Copies still to send after the one in progress (`repeat`). */
  copiesLeft: number
  /** Payload bytes of the copy in progress already written (its next fragment starts here). */
  offset: number
  /** A reply: its wire bytes count against the output budget. */
  reply: boolean
  /** Counted in the connection's figures as it goes out (an operator's send is counted by its caller). */
  count: boolean
  /** Wire bytes of this message's copies written so far. */
  spent: number
  /** What follows once the message is on its way: close (the lab's close_after) or drop (drop_after). */
  then: 'close' | 'drop' | undefined
}

const OPEN = 1 // WebSocket.OPEN
/** Bytes a session writes in one batch: about what it keeps queued ahead of its client. */
export const OUTPUT_WINDOW = 64 * 1024
/** What a frame costs in a batch beyond its payload: its header and the write it takes. */
const FRAME_COST = 64
/** Frames in one batch at most, so a batch of tiny fragments stays short too. */
const BATCH_FRAMES = 256
/**
 * The time all sessions' batches may take in one turn of the event loop; the rest wait for the
 * next. Short, since a turn is also what new connections wait on: libuv accepts one connection per
 * turn, so under load the turns' length sets how long a connect (a `/health` poll) waits.
 */
const TURN_MS = 1

/** Close code and reason when one message's replies reach the output budget. */
export const LAB_OUTPUT_CODE = 1008
export const LAB_OUTPUT_REASON = 'lab output budget spent'

const sessions = new WeakMap<object, LabSession>()

/** The controls in force on a socket, if it has any. */
export function controlsOf (socket: object): Controls | undefined {
  return sessions.get(socket)?.controls
}

/**
 * Sends one whole message on a socket from outside the echo (an operator's send): through the
 * socket's lab session when it has one, so it never lands between the frames of a fragmented reply.
 */
export function sendMessage (socket: WebSocket, data: Buffer | string, isBinary: boolean): void {
  const session = sessions.get(socket)
  if (session === undefined) socket.send(data, { binary: isBinary })
  else session.send(typeof data === 'string' ? Buffer.from(data) : data, isBinary)
}

/** Bytes a server frame with this payload takes on the wire (unmasked header plus payload). */
function wireBytes (payload: number): number {
  return payload + (payload < 126 ? 2 : payload < 65536 ? 4 : 10)
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
  readonly #maxOutput: number
  readonly #log: LabLogger
  readonly #tcp: { cork: () => void, uncork: () => void } | undefined
  readonly #delay: number
  readonly #jitter: number
  readonly #repeat: number
  readonly #fragment: number
  /** Replies waiting for their time, in the order they will be sent. */
  #queue: Pending[] = []
  #queuedBytes = 0
  #lastDue = 0
  #replyTimer: NodeJS.Timeout | undefined
  #replies = 0
  /** A close or drop is decided: no further reply is taken. */
  #ending = false
  #stopped = false
  /** Messages waiting to be written, oldest first, from `#head` on. */
  #out: Outgoing[] = []
  #head = 0
  /** A batch is on its way to the kernel; the next waits for it. */
  #writing = false
  /** Waiting for its turn in the scheduler. */
  #queued = false
  /** Reading is paused because output is waiting. */
  #outputPaused = false
  /** This pause has been counted and logged as a client not reading. */
  #slowCounted = false
  #pushTimer: NodeJS.Timeout | undefined
  #pushSeq = 0
  /** A push waiting in the output queue: the next one is skipped rather than queued behind it. */
  #lastPush: Outgoing | undefined
  #burstLeft = 0
  #burstFrame: Buffer | undefined
  #pingTimer: NodeJS.Timeout | undefined
  #awaitingPong = false
  readonly #afterBatch = (err?: Error | null): void => {
    this.#writing = false
    if (this.#stopped || (err !== undefined && err !== null)) return
    // The next batch in a later turn of the event loop, after other sockets' I/O.
    this.#schedule()
  }

  constructor (options: LabSessionOptions) {
    this.controls = options.controls
    this.#socket = options.socket
    this.#conn = options.conn
    this.#registry = options.registry
    this.#raw = options.raw
    this.#highWater = options.highWater
    this.#maxOutput = options.maxOutput
    this.#tcp = options.tcp
    this.#log = options.log
    this.#delay = this.controls.delay ?? 0
    this.#jitter = this.controls.jitter ?? 0
    this.#repeat = this.controls.repeat ?? 1
    this.#fragment = this.controls.fragment ?? Number.POSITIVE_INFINITY
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
      this.#kick()
    }
  }

  /** Clears every timer and drops what waits; called when the connection closes. */
  stop (): void {
    if (this.#stopped) return
    LabSession.#live--
    this.#stopped = true
    this.#ending = true
    clearTimeout(this.#replyTimer)
    clearInterval(this.#pushTimer)
    clearInterval(this.#pingTimer)
    this.#queued = false
    this.#replyTimer = this.#pushTimer = this.#pingTimer = undefined
    this.#queue = []
    this.#queuedBytes = 0
    this.#out = []
    this.#head = 0
    this.#burstFrame = undefined
  }

  /** Timers still armed: none once stopped. */
  get activeTimers (): number {
    return [this.#replyTimer, this.#pushTimer, this.#pingTimer].filter((x) => x !== undefined).length + (this.#queued ? 1 : 0)
  }

  /** Messages waiting in the output queue (not yet handed to the socket). */
  get waiting (): number {
    return this.#out.length - this.#head
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

  /** One whole message from outside the echo (an operator's send), queued after what waits. */
  send (data: Buffer, isBinary: boolean): void {
    if (this.#stopped) return
    this.#enqueue({ data, isBinary, copiesLeft: 0, offset: 0, reply: false, count: false, spent: 0, then: undefined })
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

  /** Queues one reply (`repeat` copies), then the close or drop its count calls for. */
  #deliver (data: Buffer, isBinary: boolean): void {
    if (this.#socket.readyState !== OPEN) return
    const replies = ++this.#replies
    const { close_after: closeAfter, drop_after: dropAfter } = this.controls
    const closing = closeAfter !== undefined && replies >= closeAfter
    const dropping = !closing && dropAfter !== undefined && replies >= dropAfter
    if (closing || dropping) this.#end()
    this.#enqueue({ data, isBinary, copiesLeft: this.#repeat - 1, offset: 0, reply: true, count: true, spent: 0, then: closing ? 'close' : dropping ? 'drop' : undefined })
  }

  /** No reply is taken any more; replies already queued for output still go out. */
  #end (): void {
    this.#ending = true
    clearTimeout(this.#replyTimer)
    this.#replyTimer = undefined
    this.#queue = []
    this.#queuedBytes = 0
  }

  #enqueue (message: Outgoing): void {
    this.#out.push(message)
    if (this.#writing) this.#pausedWhileWaiting(0)
    else this.#kick()
  }

  /** Writes now unless a batch is on its way or already scheduled. */
  #kick (): void {
    if (!this.#writing) this.#schedule()
  }

  static #ready: LabSession[] = []
  static #turn: NodeJS.Immediate | undefined

  /** Asks for a batch in the scheduler's next turn. */
  #schedule (): void {
    if (this.#queued || this.#stopped) return
    this.#queued = true
    LabSession.#ready.push(this)
    LabSession.#turn ??= setImmediate(LabSession.#runTurn)
  }

  /** One turn: batches of the sessions waiting, in order, until TURN_MS is spent; the rest go next turn. */
  static #runTurn (): void {
    LabSession.#turn = undefined
    const ready = LabSession.#ready
    const deadline = performance.now() + TURN_MS
    let i = 0
    while (i < ready.length && performance.now() < deadline) {
      const session = ready[i++]!
      if (!session.#queued) continue
      session.#queued = false
      session.#pump()
    }
    LabSession.#ready = ready.slice(i)
    if (LabSession.#ready.length > 0) LabSession.#turn = setImmediate(LabSession.#runTurn)
  }

  /**
   * Writes one batch: whole messages and fragments, up to OUTPUT_WINDOW bytes, the last frame with
   * a callback that schedules the next batch. Burst frames go out only while no message waits, and
   * never between the frames of a fragmented one. While output waits, the client is not read.
   */
  #pump (): void {
    if (this.#stopped || this.#writing) return
    const tcp = this.#tcp
    tcp?.cork()
    try {
      this.#batch()
    } finally {
      tcp?.uncork()
    }
  }

  #batch (): void {
    const socket = this.#socket
    let room = OUTPUT_WINDOW
    let frames = BATCH_FRAMES
    let written = 0
    for (;;) {
      if (socket.readyState !== OPEN) return
      const message = this.#out[this.#head]
      let data: Buffer
      let options: { binary: boolean, fin: boolean }
      let done = false
      if (message !== undefined) {
        const { offset } = message
        const size = message.data.length
        // Only replies are fragmented: a push or an operator's send goes whole, as without the lab.
        const end = message.reply ? Math.min(offset + this.#fragment, size) : size
        const fin = end === size
        data = offset === 0 && fin ? message.data : message.data.subarray(offset, end)
        if (message.reply) {
          const wire = wireBytes(data.length)
          if (message.spent + wire > this.#maxOutput) {
            this.#overBudget(message.spent + wire)
            return
          }
          message.spent += wire
        }
        if (offset === 0 && message.count) this.#conn.sent(size)
        options = message.isBinary ? (fin ? BINARY_FIN : BINARY_PART) : (fin ? TEXT_FIN : TEXT_PART)
        if (!fin) {
          message.offset = end
        } else if (message.copiesLeft > 0) {
          message.copiesLeft--
          message.offset = 0
        } else {
          done = true
        }
      } else if (this.#burstLeft > 0 && this.#burstFrame !== undefined && !this.#ending) {
        data = this.#burstFrame
        options = this.controls.burst_binary === 1 ? BINARY_FIN : TEXT_FIN
        this.#conn.sent(data.length)
        if (--this.#burstLeft === 0) this.#burstFrame = undefined
      } else {
        break
      }
      room -= data.length + FRAME_COST
      frames--
      written += wireBytes(data.length)
      const last = done && message!.then !== undefined
      // The batch ends with this frame when the window is full, nothing follows, or a drop must wait for it.
      const more = !done || this.#head + 1 < this.#out.length || (this.#burstLeft > 0 && !this.#ending)
      if (room <= 0 || frames === 0 || !more || last) {
        this.#writing = true
        socket.send(data, options, last && message!.then === 'drop' ? this.#dropAfter : this.#afterBatch)
      } else {
        socket.send(data, options)
      }
      if (done) this.#shift(message!)
      if (last) {
        // A close frame queues behind the replies; a drop cuts TCP once they are written (#dropAfter).
        if (message!.then === 'close') socket.close(this.controls.close_code ?? 1000, this.controls.close_reason ?? '')
        this.#out = []
        this.#head = 0
        return
      }
      if (this.#writing) break
    }
    this.#pausedWhileWaiting(written)
  }

  readonly #dropAfter = (err?: Error | null): void => {
    this.#writing = false
    if (err === undefined || err === null) this.#socket.terminate()
  }

  #shift (message: Outgoing): void {
    if (message === this.#lastPush) this.#lastPush = undefined
    this.#head++
    if (this.#head === this.#out.length) {
      this.#out = []
      this.#head = 0
    } else if (this.#head > 1024 && this.#head * 2 > this.#out.length) {
      this.#out = this.#out.slice(this.#head)
      this.#head = 0
    }
  }

  /**
   * Pauses reading while output waits; resumes once it is all written. `written`: the bytes of the
   * batch just written; when the socket holds all of them still, the kernel took none: the client
   * is not reading, which is counted and logged once per pause.
   */
  #pausedWhileWaiting (written: number): void {
    const socket = this.#socket
    const waiting = this.#head < this.#out.length || (this.#burstLeft > 0 && !this.#ending)
    if (waiting && this.#writing) {
      if (!this.#outputPaused) {
        this.#outputPaused = true
        this.#slowCounted = false
        socket.pause()
      }
      if (!this.#slowCounted && written > 0 && socket.bufferedAmount >= written) {
        this.#slowCounted = true
        this.#registry.hit('echo_backpressure')
        this.#log.warn({ client: this.#conn.peer, buffered: socket.bufferedAmount }, 'client is not reading its echoes; paused reading from it until they drain')
      }
      return
    }
    if (!waiting && this.#outputPaused) {
      this.#outputPaused = false
      this.#maybeResume()
    }
  }

  #maybeResume (): void {
    const socket = this.#socket
    if (socket.isPaused && !this.#outputPaused && this.#queuedBytes <= this.#highWater && socket.readyState === OPEN) socket.resume()
  }

  /** Budget spent: the connection is closed 1008, counted and logged. */
  #overBudget (wouldSend: number): void {
    this.#registry.hit('lab_output')
    this.#log.warn({ client: this.#conn.peer, max_output: this.#maxOutput, would_send: wouldSend }, `one message's lab replies would send more than ${this.#maxOutput} bytes; connection closed with 1008`)
    this.#end()
    this.#out = []
    this.#head = 0
    this.#burstLeft = 0
    this.#burstFrame = undefined
    this.#socket.close(LAB_OUTPUT_CODE, LAB_OUTPUT_REASON)
  }

  #push (): void {
    const socket = this.#socket
    if (socket.readyState !== OPEN || this.#ending) return
    // A client that does not read is not pushed more: at most one push waits to be written.
    if (this.#lastPush !== undefined) return
    const seq = ++this.#pushSeq
    const text = this.#raw ? `push ${seq}` : `{"type":"push","seq":${seq},"timestamp":"${isoNow()}"}`
    const push: Outgoing = { data: Buffer.from(text), isBinary: false, copiesLeft: 0, offset: 0, reply: false, count: true, spent: 0, then: undefined }
    this.#lastPush = push
    this.#enqueue(push)
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

const TEXT_FIN = { binary: false, fin: true } as const
const TEXT_PART = { binary: false, fin: false } as const
const BINARY_FIN = { binary: true, fin: true } as const
const BINARY_PART = { binary: true, fin: false } as const

/**
 * Burst frames of one size and kind are the same bytes for every connection: made once and shared
 * while any session uses them (held weakly, so a size nobody bursts any more is given back).
 */
const burstFrames = new Map<string, WeakRef<Buffer>>()

/** `size` bytes of `x`, or bytes counting 0-255 over and over: shared by every frame of every burst of that size. */
export function burstPayload (size: number, binary: boolean): Buffer {
  const key = `${binary ? 'b' : 't'}${size}`
  const kept = burstFrames.get(key)?.deref()
  if (kept !== undefined) return kept
  let bytes: Buffer
  if (binary) {
    bytes = Buffer.allocUnsafeSlow(size)
    for (let i = 0; i < size; i++) bytes[i] = i & 0xff
  } else {
    bytes = Buffer.allocUnsafeSlow(size).fill('x')
  }
  if (burstFrames.size >= 64) for (const [k, ref] of burstFrames) if (ref.deref() === undefined) burstFrames.delete(k)
  burstFrames.set(key, new WeakRef(bytes))
  return bytes
}
