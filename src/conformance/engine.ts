// The suite's server side of one WebSocket connection, over the raw socket of an upgrade: it
// answers the handshake itself, sends exactly the bytes a case asks for (reserved bits, bad
// UTF-8, fragments, chopped and timed writes), reads the client's frames as they are, and
// reacts to them the way the Autobahn fuzzingserver's protocol does (fail the connection with a
// close frame on a protocol error, answer a close, time out a close handshake after 1 s), so
// that its judgement of the case comes out as the fuzzingserver's.
import { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import { constants as Z, deflateRawSync, inflateRawSync } from 'node:zlib'
import type { CaseUpgrade, CaseResult, RunOptions, SuiteCase, WireEntry, Behavior, BehaviorClose } from './types.js'
import { acceptKey, acceptString, deflateOffers, frameBytes, frameHeader, isValidUtf8, Utf8Check, type DeflateAccept, type DeflateOffer } from './wire.js'

export const CLOSE_NORMAL = 1000
export const CLOSE_GOING_AWAY = 1001
export const CLOSE_PROTOCOL_ERROR = 1002
export const CLOSE_INVALID_PAYLOAD = 1007
/** Close codes a peer may send (RFC 6455 7.4 and the IANA registry), beside 3000-4999. */
const CLOSE_CODES_ALLOWED = new Set([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013])
/** How long a close we started waits for the client's answer (the fuzzingserver's 1 s). */
const CLOSE_HANDSHAKE_TIMEOUT_MS = 1000
const WIRE_FRAMES_EACH_WAY = 64
const WIRE_DATA_BYTES = 1024
const WIRE_LOG_BYTES = 16 * 1024

type State = 'open' | 'closing' | 'closed'

/** A frame as the client sent it (payload unmasked, not validated). */
export interface IncomingFrame {
  opcode: number
  fin: boolean
  rsv: number
  masked: boolean
  payload: Buffer
}

/** What the case saw of the client, in Autobahn's terms: messages and pongs, and the case's own marks. */
export type Received =
  | { kind: 'message', payload: Buffer, binary: boolean }
  | { kind: 'pong', payload: Buffer }
  | { kind: 'timeout', tag: string }

/** How the connection ended, the fuzzingserver's flags. */
export interface ConnectionEnd {
  connectionWasOpen: boolean
  closedByMe: boolean
  failedByMe: boolean
  droppedByMe: boolean
  wasClean: boolean
  remoteCloseCode: number | null
  remoteCloseReason: string | null
  localCloseCode: number | null
}

export interface SendFrameOptions {
  opcode: number
  payload?: Buffer
  fin?: boolean
  rsv?: number
  /** repeat `payload` up to this many bytes */
  payloadLen?: number
  /** write the frame's bytes in pieces of this size, each in its own turn of the event loop */
  chopsize?: number
  /** write the frame on its own, in its own turn of the event loop */
  sync?: boolean
}

interface Deflate {
  accept: DeflateAccept
  /** server to client */
  sendBits: number
  sendNoContext: boolean
  sendWindow: Buffer
  /** client to server */
  recvNoContext: boolean
  recvWindow: Buffer
}

/**
 * The server side of one suite connection. Events: `frame` (IncomingFrame, every frame the
 * client sent, before any judgement), `message` (payload, binary), `ping`, `pong`, `closeFrame`
 * (code, reason), `end` (ConnectionEnd) once the TCP connection is gone.
 */
export class SuiteConnection extends EventEmitter {
  readonly socket: Socket
  readonly started = Date.now()
  state: State = 'open'
  readonly end: ConnectionEnd = {
    connectionWasOpen: true,
    closedByMe: false,
    failedByMe: false,
    droppedByMe: false,
    wasClean: false,
    remoteCloseCode: null,
    remoteCloseReason: null,
    localCloseCode: null
  }

  /** first frames each way, for the report */
  readonly wire: WireEntry[] = []
  wireEnabled = true
  private wireIn = 0
  private wireOut = 0
  private wireBytes = 0
  /** frames sent, by opcode */
  readonly txFrames = new Map<number, number>()
  /** the client's TCP connection ended (FIN, reset or error) */
  ended = false
  /** answer pings with pongs while open (the fuzzingserver does; a silent server does not) */
  autoPong = true
  /** answer a close and judge it (off for a server that reads and discards everything) */
  react = true
  /** the fragment size messages are cut to, 0 for one frame */
  autoFragmentSize = 0
  deflate: Deflate | null = null

  private buf: Buffer = Buffer.alloc(0)
  private cur: { opcode: number, fin: boolean, rsv: number, masked: boolean, mask: Buffer | null, length: number, got: number, parts: Buffer[] } | null = null
  private insideMessage = false
  private messageBinary = false
  private messageCompressed = false
  private messageParts: Buffer[] = []
  private validateText = false
  private readonly utf8 = new Utf8Check()
  private readonly queue: Array<{ data: Buffer, chop: boolean }> = []
  private pumping = false
  private readonly timers = new Set<NodeJS.Timeout>()
  private closeTimer: NodeJS.Timeout | null = null
  private readonly endPromise: Promise<ConnectionEnd>

  constructor (socket: Socket) {
    super()
    this.socket = socket
    socket.setNoDelay(true)
    let resolve!: (e: ConnectionEnd) => void
    this.endPromise = new Promise(_resolve => { resolve = _resolve })
    socket.on('data', (d: Buffer) => this.onData(d))
    // The fuzzingserver's transport does not half-close: the client's FIN ends the connection.
    socket.on('end', () => { this.ended = true; socket.destroy() })
    socket.on('error', () => { this.ended = true })
    socket.on('close', () => {
      this.ended = true
      this.state = 'closed'
      for (const t of this.timers) clearTimeout(t)
      this.timers.clear()
      if (this.closeTimer) clearTimeout(this.closeTimer)
      this.emit('end', this.end)
      resolve(this.end)
    })
  }

  /** resolves once the TCP connection is gone */
  get closed (): Promise<ConnectionEnd> { return this.endPromise }

  ms (): number { return Date.now() - this.started }

  // ---- timers ---------------------------------------------------------------------------

  /** runs `fn` after `ms` unless the connection has ended by then */
  later (ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t)
      if (this.state !== 'closed') fn()
    }, ms)
    this.timers.add(t)
  }

  /** fails the connection after `ms` (close 1001 "going away", or drop if closing already) */
  killAfter (ms: number): void { this.later(ms, () => this.fail(CLOSE_GOING_AWAY, 'going away')) }

  /** starts the closing handshake after `ms` (a close frame without a code) */
  closeAfter (ms: number): void { this.later(ms, () => this.sendCloseFrame(null, null, false)) }

  // ---- sending --------------------------------------------------------------------------

  sendFrame (o: SendFrameOptions): void {
    let payload = o.payload ?? Buffer.alloc(0)
    if (o.payloadLen !== undefined) payload = repeatPayload(payload, o.payloadLen)
    const fin = o.fin ?? true
    const rsv = o.rsv ?? 0
    this.logOut(o.opcode, fin, rsv, payload)
    this.txFrames.set(o.opcode, (this.txFrames.get(o.opcode) ?? 0) + 1)
    this.sendData(frameBytes(o.opcode, payload, fin, rsv), o.sync ?? false, o.chopsize)
  }

  /** raw bytes, for a frame whose payload goes out in several timed writes */
  sendRaw (data: Buffer): void { this.sendData(data, false) }

  /** logs a frame whose bytes go out through sendRaw */
  logRawFrame (opcode: number, fin: boolean, rsv: number, payload: Buffer): void { this.logOut(opcode, fin, rsv, payload) }

  rawHeader (opcode: number, length: number): Buffer { return frameHeader(opcode, length) }

  /** a message as a library would send it: compressed when negotiated, cut to `fragmentSize` */
  sendMessage (payload: Buffer, binary: boolean, fragmentSize?: number): void {
    if (this.state !== 'open') return
    const opcode = binary ? 2 : 1
    let data = payload
    let rsv = 0
    if (this.deflate) {
      data = this.compress(payload)
      rsv = 4
    }
    const size = fragmentSize ?? (this.autoFragmentSize > 0 ? this.autoFragmentSize : 0)
    if (size <= 0 || data.length <= size) {
      this.sendFrame({ opcode, payload: data, rsv })
      return
    }
    // As the fuzzingserver cuts a message: a fragment ends the message only when the rest is
    // shorter than the fragment size, so a message of whole fragments ends with an empty one.
    for (let i = 0; ; i += size) {
      const last = i + size > data.length
      const piece = data.subarray(i, Math.min(i + size, data.length))
      this.sendFrame(i === 0 ? { opcode, payload: piece, fin: last, rsv } : { opcode: 0, payload: piece, fin: last })
      if (last) break
    }
  }

  ping (payload: Buffer = Buffer.alloc(0)): void {
    if (this.state === 'open') this.sendFrame({ opcode: 9, payload })
  }

  /** starts (or answers) the closing handshake; ignored once closing */
  sendCloseFrame (code: number | null, reason: Buffer | null, isReply: boolean): void {
    if (this.state !== 'open') return
    const parts: Buffer[] = []
    if (code !== null) {
      const c = Buffer.alloc(2)
      c.writeUInt16BE(code & 0xffff)
      parts.push(c)
    }
    if (reason !== null) parts.push(reason)
    this.sendFrame({ opcode: 8, payload: Buffer.concat(parts) })
    this.state = 'closing'
    this.end.closedByMe = !isReply
    this.end.localCloseCode = code
    if (!isReply) {
      this.closeTimer = setTimeout(() => {
        this.closeTimer = null
        if (this.state !== 'closed') {
          this.end.wasClean = false
          this.drop(true)
        }
      }, CLOSE_HANDSHAKE_TIMEOUT_MS)
    }
  }

  /** a close with a code and a text reason, as an application would */
  close (code: number = CLOSE_NORMAL, reason?: string): void {
    this.sendCloseFrame(code, reason === undefined ? null : Buffer.from(reason).subarray(0, 123), false)
  }

  /** fails the connection: a close frame with `code`, or, once closing, dropping the TCP connection */
  fail (code: number, reason: string): void {
    if (this.state === 'closed') return
    this.end.failedByMe = true
    if (this.state !== 'closing') this.sendCloseFrame(code, Buffer.from(reason).subarray(0, 123), false)
    else this.drop(false)
  }

  /** ends the TCP connection; `abort` discards what is still queued */
  drop (abort: boolean): void {
    if (this.state === 'closed') return
    this.end.droppedByMe = true
    this.state = 'closed'
    this.queue.length = 0
    if (abort) this.socket.destroy()
    else this.socket.end(() => this.socket.destroy())
  }

  private sendData (data: Buffer, sync: boolean, chopsize?: number): void {
    if (chopsize !== undefined && chopsize > 0) {
      for (let i = 0; i < data.length; i += chopsize) this.queue.push({ data: data.subarray(i, i + chopsize), chop: true })
      this.pump()
    } else if (sync || this.queue.length > 0) {
      this.queue.push({ data, chop: sync })
      this.pump()
    } else {
      this.write(data)
    }
  }

  // What is written in one turn of the event loop leaves in one TCP send, as from the
  // fuzzingserver's reactor (a client reading a text frame and a bad frame in one read may
  // fail before it echoes the text; in two reads it may not).
  private corked = false
  private write (data: Buffer): void {
    if (this.state === 'closed' || this.socket.destroyed) return
    if (!this.corked) {
      this.corked = true
      this.socket.cork()
      setImmediate(() => {
        this.corked = false
        this.socket.uncork()
      })
    }
    this.socket.write(data)
  }

  // Each queued piece goes out in its own turn of the event loop, so it leaves as its own TCP
  // segment (no delay is on), as the fuzzingserver's reactor does with its send queue.
  private pump (): void {
    if (this.pumping) return
    this.pumping = true
    const step = (): void => {
      const item = this.queue.shift()
      if (item === undefined) {
        this.pumping = false
        return
      }
      this.write(item.data)
      setImmediate(step)
    }
    step()
  }

  // ---- permessage-deflate ---------------------------------------------------------------

  useDeflate (accept: DeflateAccept): void {
    this.deflate = {
      accept,
      sendBits: accept.offer.requestMaxWindowBits || 15,
      sendNoContext: accept.offer.requestNoContextTakeover,
      sendWindow: Buffer.alloc(0),
      recvNoContext: accept.requestNoContextTakeover,
      recvWindow: Buffer.alloc(0)
    }
  }

  // Context takeover without a streaming zlib: the window the peer's inflater keeps is the
  // tail of what was sent before, so it is given to deflate as its preset dictionary.
  private compress (payload: Buffer): Buffer {
    const d = this.deflate!
    const opts: Parameters<typeof deflateRawSync>[1] = { windowBits: d.sendBits, memLevel: 8, finishFlush: Z.Z_SYNC_FLUSH }
    if (!d.sendNoContext && d.sendWindow.length > 0) opts.dictionary = d.sendWindow
    const out = deflateRawSync(payload, opts)
    if (!d.sendNoContext) d.sendWindow = tail(Buffer.concat([d.sendWindow, payload]), 1 << d.sendBits)
    return out.subarray(0, out.length - 4)
  }

  private decompress (data: Buffer): Buffer | null {
    const d = this.deflate!
    const opts: Parameters<typeof inflateRawSync>[1] = { windowBits: 15, finishFlush: Z.Z_SYNC_FLUSH }
    if (!d.recvNoContext && d.recvWindow.length > 0) opts.dictionary = d.recvWindow
    try {
      const out = inflateRawSync(Buffer.concat([data, Buffer.from([0, 0, 0xff, 0xff])]), opts)
      if (!d.recvNoContext) d.recvWindow = tail(Buffer.concat([d.recvWindow, out]), 1 << 15)
      return out
    } catch {
      return null
    }
  }

  // ---- wire log -------------------------------------------------------------------------

  private logOut (opcode: number, fin: boolean, rsv: number, payload: Buffer): void {
    if (!this.wireEnabled || this.wireOut >= WIRE_FRAMES_EACH_WAY) return
    this.wireOut++
    this.log('out', opcode, fin, rsv, payload)
  }

  private logIn (opcode: number, fin: boolean, rsv: number, payload: Buffer): void {
    if (!this.wireEnabled || this.wireIn >= WIRE_FRAMES_EACH_WAY) return
    this.wireIn++
    this.log('in', opcode, fin, rsv, payload)
  }

  private log (dir: 'in' | 'out', opcode: number, fin: boolean, rsv: number, payload: Buffer): void {
    if (this.wireBytes >= WIRE_LOG_BYTES) return
    const room = Math.min(WIRE_DATA_BYTES, WIRE_LOG_BYTES - this.wireBytes)
    const head = payload.subarray(0, room)
    const data = isValidUtf8(head) ? head.toString('utf8') : 'hex:' + payload.subarray(0, Math.floor(room / 2)).toString('hex')
    this.wireBytes += data.length
    this.wire.push({ t: this.ms(), dir, opcode, fin, rsv, length: payload.length, data })
  }

  private isClosed (): boolean { return this.state === 'closed' }

  // ---- reading --------------------------------------------------------------------------

  /** feeds bytes read with the upgrade request */
  feed (data: Buffer): void { if (data.length > 0) this.onData(data) }

  private onData (data: Buffer): void {
    if (this.isClosed()) return
    this.buf = this.buf.length === 0 ? data : Buffer.concat([this.buf, data])
    while (!this.isClosed() && this.step()) { /* keep going while there is something to do */ }
  }

  private violation (reason: string): void { this.fail(CLOSE_PROTOCOL_ERROR, reason) }

  /** one step of the frame reader; false when it needs more bytes */
  private step (): boolean {
    if (!this.react) {
      // a silent server: read the frames (for the log and the close) and do nothing else
      return this.stepQuiet()
    }
    if (this.cur === null) return this.readHeader()
    const cur = this.cur
    const rest = cur.length - cur.got
    const n = Math.min(rest, this.buf.length)
    let chunk = this.buf.subarray(0, n)
    this.buf = this.buf.subarray(n)
    if (cur.mask !== null && n > 0) chunk = unmask(chunk, cur.mask, cur.got)
    cur.got += n
    this.frameData(chunk)
    if (this.isClosed()) return false
    if (cur.got === cur.length) this.frameEnd()
    return this.buf.length > 0
  }

  private readHeader (): boolean {
    const b = this.buf
    if (b.length < 2) return false
    const fin = (b[0]! & 0x80) !== 0
    const rsv = (b[0]! & 0x70) >> 4
    const opcode = b[0]! & 0x0f
    const masked = (b[1]! & 0x80) !== 0
    const len1 = b[1]! & 0x7f
    // The checks in the fuzzingserver's order; each failure sends a close and reading goes on,
    // so the client's answer to that close can still be read.
    if (rsv !== 0 && !(this.deflate !== null && rsv === 4)) this.violation(`RSV = ${rsv} and no extension negotiated`)
    if (!masked) this.violation('unmasked client-to-server frame')
    if (opcode > 7) {
      if (!fin) this.violation('fragmented control frame')
      if (len1 > 125) this.violation('control frame with payload length > 125 octets')
      if (opcode !== 8 && opcode !== 9 && opcode !== 10) this.violation(`control frame using reserved opcode ${opcode}`)
      if (opcode === 8 && len1 === 1) this.violation('received close control frame with payload len 1')
      if (this.deflate !== null && rsv === 4) this.violation('received compressed control frame')
    } else {
      if (opcode > 2) this.violation(`data frame using reserved opcode ${opcode}`)
      if (!this.insideMessage && opcode === 0) this.violation('received continuation data frame outside fragmented message')
      if (this.insideMessage && opcode !== 0) this.violation('received non-continuation data frame while inside fragmented message')
      if (this.deflate !== null && rsv === 4 && this.insideMessage) this.violation('received continuation data frame with compress bit set')
    }
    if (this.isClosed()) return false
    const headerLen = 2 + (len1 === 126 ? 2 : len1 === 127 ? 8 : 0) + (masked ? 4 : 0)
    if (b.length < headerLen) return false
    let i = 2
    let length = len1
    if (len1 === 126) {
      length = b.readUInt16BE(2)
      if (length < 126) this.violation('invalid data frame length (not using minimal length encoding)')
      i += 2
    } else if (len1 === 127) {
      const big = b.readBigUInt64BE(2)
      if (big > 0x7fffffffffffffffn) this.violation('invalid data frame length (>2^63)')
      if (big < 65536n) this.violation('invalid data frame length (not using minimal length encoding)')
      length = Number(big > BigInt(Number.MAX_SAFE_INTEGER) ? BigInt(Number.MAX_SAFE_INTEGER) : big)
      i += 8
    }
    if (this.isClosed()) return false
    const mask = masked ? Buffer.from(b.subarray(i, i + 4)) : null
    if (masked) i += 4
    this.buf = b.subarray(i)
    this.cur = { opcode, fin, rsv, masked, mask, length, got: 0, parts: [] }
    this.frameBegin()
    if (this.isClosed()) return false
    if (length === 0) {
      this.frameData(Buffer.alloc(0))
      if (!this.isClosed()) this.frameEnd()
      return !this.isClosed() && this.buf.length > 0
    }
    return this.buf.length > 0
  }

  private frameBegin (): void {
    const cur = this.cur!
    if (cur.opcode > 7) return
    if (!this.insideMessage) {
      this.insideMessage = true
      this.messageCompressed = this.deflate !== null && cur.rsv === 4
      this.messageBinary = cur.opcode === 2
      this.messageParts = []
      this.validateText = cur.opcode === 1
      this.utf8.reset()
    }
  }

  private frameData (chunk: Buffer): void {
    const cur = this.cur!
    cur.parts.push(chunk)
    if (cur.opcode > 7) return
    if (this.validateText && !this.messageCompressed) {
      // fail fast: the first impossible byte fails the connection, and each later piece of
      // the same message fails it again (dropping it, once closing)
      if (!this.utf8.feed(chunk)) this.fail(CLOSE_INVALID_PAYLOAD, 'encountered invalid UTF-8 while processing text message')
    }
    if (!this.end.failedByMe) this.messageParts.push(chunk)
  }

  private frameEnd (): void {
    const cur = this.cur!
    this.cur = null
    const payload = cur.parts.length === 1 ? cur.parts[0]! : Buffer.concat(cur.parts)
    this.logIn(cur.opcode, cur.fin, cur.rsv, payload)
    this.emit('frame', { opcode: cur.opcode, fin: cur.fin, rsv: cur.rsv, masked: cur.masked, payload } satisfies IncomingFrame)
    if (cur.opcode > 7) {
      this.controlFrame(cur.opcode, payload)
      return
    }
    if (!cur.fin) return
    this.insideMessage = false
    let message: Buffer = Buffer.concat(this.messageParts)
    this.messageParts = []
    if (this.messageCompressed) {
      const out = this.decompress(message)
      if (out === null) {
        this.fail(CLOSE_PROTOCOL_ERROR, 'permessage-deflate: invalid compressed data')
        return
      }
      message = out
      if (this.validateText && !isValidUtf8(message)) {
        this.fail(CLOSE_INVALID_PAYLOAD, 'invalid UTF-8 in compressed text message')
        return
      }
    } else if (this.validateText && !this.utf8.complete) {
      this.fail(CLOSE_INVALID_PAYLOAD, 'UTF-8 text message payload ended within a code point')
      if (this.isClosed()) return
    }
    if (this.end.failedByMe) return
    this.emit('message', message, this.messageBinary)
  }

  private controlFrame (opcode: number, payload: Buffer): void {
    if (opcode === 9) {
      this.emit('ping', payload)
      if (this.autoPong && this.state === 'open') this.sendFrame({ opcode: 10, payload })
    } else if (opcode === 10) {
      this.emit('pong', payload)
    } else if (opcode === 8) {
      const code = payload.length >= 2 ? payload.readUInt16BE(0) : null
      const reason = payload.length > 2 ? payload.subarray(2) : null
      this.emit('closeFrame', code, reason)
      this.closeFrame(code, reason)
    }
  }

  private closeFrame (code: number | null, reason: Buffer | null): void {
    this.end.remoteCloseCode = null
    this.end.remoteCloseReason = null
    if (code !== null && (code < 1000 || (code <= 2999 && !CLOSE_CODES_ALLOWED.has(code)) || code >= 5000)) {
      this.violation(`invalid close code ${code}`)
      this.end.remoteCloseCode = CLOSE_NORMAL
    } else {
      this.end.remoteCloseCode = code
    }
    if (reason !== null) {
      if (!isValidUtf8(reason)) this.fail(CLOSE_INVALID_PAYLOAD, 'invalid close reason (non-UTF8 payload)')
      else this.end.remoteCloseReason = reason.toString('utf8')
    }
    if (this.state === 'closing') {
      if (this.closeTimer) clearTimeout(this.closeTimer)
      this.closeTimer = null
      this.end.wasClean = true
      this.drop(true)
    } else if (this.state === 'open') {
      this.end.wasClean = true
      this.sendCloseFrame(CLOSE_NORMAL, null, true)
      this.drop(false)
    } else {
      this.end.wasClean = false
    }
  }

  // A server that reads and discards: frames are parsed for the log and the events, nothing is
  // answered and nothing is failed.
  private stepQuiet (): boolean {
    const b = this.buf
    if (b.length < 2) return false
    const len1 = b[1]! & 0x7f
    const masked = (b[1]! & 0x80) !== 0
    const headerLen = 2 + (len1 === 126 ? 2 : len1 === 127 ? 8 : 0) + (masked ? 4 : 0)
    if (b.length < headerLen) return false
    const length = len1 === 126 ? b.readUInt16BE(2) : len1 === 127 ? Number(b.readBigUInt64BE(2)) : len1
    if (b.length < headerLen + length) return false
    let payload: Buffer = Buffer.from(b.subarray(headerLen, headerLen + length))
    if (masked) payload = unmask(payload, b.subarray(headerLen - 4, headerLen), 0)
    this.buf = b.subarray(headerLen + length)
    const frame: IncomingFrame = { opcode: b[0]! & 0x0f, fin: (b[0]! & 0x80) !== 0, rsv: (b[0]! & 0x70) >> 4, masked, payload }
    this.logIn(frame.opcode, frame.fin, frame.rsv, payload)
    this.emit('frame', frame)
    if (frame.opcode === 8) {
      this.end.remoteCloseCode = payload.length >= 2 ? payload.readUInt16BE(0) : null
      this.emit('closeFrame', this.end.remoteCloseCode, payload.length > 2 ? payload.subarray(2) : null)
    }
    return this.buf.length > 0
  }
}

function unmask (data: Buffer, mask: Buffer, offset: number): Buffer {
  const out = Buffer.allocUnsafe(data.length)
  for (let i = 0; i < data.length; i++) out[i] = data[i]! ^ mask[(i + offset) & 3]!
  return out
}

function tail (b: Buffer, n: number): Buffer {
  return b.length <= n ? b : Buffer.from(b.subarray(b.length - n))
}

function repeatPayload (pattern: Buffer, length: number): Buffer {
  const out = Buffer.allocUnsafe(length)
  for (let i = 0; i < length; i += pattern.length) pattern.copy(out, i, 0, Math.min(pattern.length, length - i))
  return out
}

// ---- the handshake ------------------------------------------------------------------------

export interface AcceptOptions {
  /** picks the permessage-deflate parameters from the client's offers; none by default */
  deflate?: (offers: DeflateOffer[]) => DeflateAccept | null
}

/**
 * Answers the upgrade with `101` (a subprotocol and permessage-deflate as asked) and returns the
 * connection; on a request that is no WebSocket upgrade, answers `400`, destroys the socket and
 * returns null.
 */
export function acceptUpgrade (upgrade: CaseUpgrade, options: AcceptOptions = {}): SuiteConnection | null {
  const { socket, headers, head } = upgrade
  const key = headers['sec-websocket-key']
  const version = headers['sec-websocket-version']
  if (typeof key !== 'string' || Buffer.from(key, 'base64').length !== 16 || version !== '13') {
    const body = JSON.stringify({ error: 'bad_upgrade', message: 'not a WebSocket version 13 upgrade' })
    socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
    socket.destroy()
    return null
  }
  const lines = [
    'HTTP/1.1 101 Switching Protocols',
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Accept: ${acceptKey(key)}`
  ]
  const protocols = headers['sec-websocket-protocol']
  if (typeof protocols === 'string' && protocols.trim() !== '') lines.push(`Sec-WebSocket-Protocol: ${protocols.split(',')[0]!.trim()}`)
  let accept: DeflateAccept | null = null
  if (options.deflate) {
    accept = options.deflate(deflateOffers(headers['sec-websocket-extensions']))
    if (accept) lines.push(`Sec-WebSocket-Extensions: ${acceptString(accept)}`)
  }
  const conn = new SuiteConnection(socket)
  if (accept) conn.useDeflate(accept)
  // the answer and the case's first frames leave together, as from the fuzzingserver
  conn.sendRaw(Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'))
  conn.feed(head)
  return conn
}

// ---- running a case -----------------------------------------------------------------------

/** What a case does; see cases.ts. */
export interface CaseSpec extends SuiteCase {
  /** the permessage-deflate answer (sections 12 and 13) */
  deflate?: (offers: DeflateOffer[]) => DeflateAccept | null
  /** starts the case on an open connection */
  open: (k: CaseRun) => void
  /** replaces the default of recording the message and closing once it matches */
  onMessage?: (k: CaseRun, payload: Buffer, binary: boolean) => void
  /** adjusts the verdict after Autobahn's default judgement */
  judged?: (k: CaseRun) => void
  /** no wire log (sections 9, 12, 13) */
  noWire?: boolean
}

export interface ExpectedClose {
  closedByMe: boolean
  closeCode: number[]
  requireClean: boolean
  closedByWrongEndpointIsFatal?: boolean
}

/** One run of one case: the connection, what the case expects, what it received and its verdict. */
export class CaseRun {
  readonly conn: SuiteConnection
  readonly spec: CaseSpec
  received: Received[] = []
  expected = new Map<Behavior, Received[]>()
  expectedClose: ExpectedClose = { closedByMe: true, closeCode: [CLOSE_NORMAL], requireClean: true }
  behavior: Behavior = 'FAILED'
  behaviorClose: BehaviorClose = 'FAILED'
  result = 'Actual events differ from any expected.'
  resultClose = 'TCP connection was dropped without close handshake'
  /** no close once the expected events are in (cases that close badly on purpose) */
  suppressClose = false
  /** case-specific figures for the report */
  details: Record<string, unknown> = {}
  /** free state for a case */
  state: Record<string, unknown> = {}

  constructor (conn: SuiteConnection, spec: CaseSpec) {
    this.conn = conn
    this.spec = spec
  }

  /** the expected events are all in: start the closing handshake if the case closes */
  finishWhenDone (): void {
    for (const events of this.expected.values()) if (!sameEvents(this.received, events)) return
    if (this.expectedClose.closedByMe && !this.suppressClose) this.conn.close(this.expectedClose.closeCode[0])
  }

  /** Autobahn's judgement once the TCP connection is gone */
  judge (): void {
    for (const [behavior, events] of this.expected) {
      if (sameEvents(this.received, events)) {
        this.behavior = behavior
        this.result = 'Actual events match at least one expected.'
        break
      }
    }
    const end = this.conn.end
    const ex = this.expectedClose
    if (ex.closedByMe !== end.closedByMe) {
      this.behaviorClose = 'FAILED'
      this.resultClose = 'The connection was failed by the wrong endpoint'
    } else if (ex.requireClean && !end.wasClean) {
      this.behaviorClose = 'UNCLEAN'
      this.resultClose = 'The spec requires the connection to be failed cleanly here'
    } else if (end.remoteCloseCode !== null && !ex.closeCode.includes(end.remoteCloseCode)) {
      this.behaviorClose = 'WRONG CODE'
      this.resultClose = `The close code should have been ${ex.closeCode.join(',')} or empty`
    } else {
      this.behaviorClose = 'OK'
      this.resultClose = 'Connection was properly closed'
    }
    if (ex.closedByWrongEndpointIsFatal === true && ex.closedByMe !== end.closedByMe) this.behavior = 'FAILED'
  }
}

export function sameEvents (a: Received[], b: Received[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!
    const y = b[i]!
    if (x.kind !== y.kind) return false
    if (x.kind === 'timeout' && y.kind === 'timeout' && x.tag !== y.tag) return false
    if (x.kind === 'pong' && y.kind === 'pong' && !x.payload.equals(y.payload)) return false
    if (x.kind === 'message' && y.kind === 'message' && (x.binary !== y.binary || !x.payload.equals(y.payload))) return false
  }
  return true
}

/** Runs a case on an upgrade: the handshake, the case, the verdict; never throws for what the client does. */
export async function runSpec (spec: CaseSpec, upgrade: CaseUpgrade, options: RunOptions = {}): Promise<CaseResult> {
  const startedAt = new Date()
  const base = { id: spec.id, description: spec.description, expectation: spec.expectation, started_at: startedAt.toISOString() }
  const done = (r: Omit<CaseResult, 'id' | 'description' | 'expectation' | 'started_at'>): CaseResult => ({ ...base, ...r })
  if (options.maxSize !== undefined && spec.largestMessage > options.maxSize) {
    // not run: the client still gets a normal connection that closes at once, so a device
    // running the suite moves on to its next case
    const conn = acceptUpgrade(upgrade)
    conn?.close(CLOSE_NORMAL, 'skipped: larger than max_size')
    conn?.later(CLOSE_HANDSHAKE_TIMEOUT_MS + 500, () => conn.drop(true))
    if (conn) await conn.closed
    return done({
      behavior: 'SKIPPED',
      behaviorClose: 'SKIPPED',
      duration_ms: 0,
      result: `The case sends a message of ${spec.largestMessage} bytes, more than max_size ${options.maxSize}.`,
      resultClose: 'Not run: closed at once with 1000.',
      remoteCloseCode: conn?.end.remoteCloseCode ?? null,
      wire: []
    })
  }
  const conn = acceptUpgrade(upgrade, { deflate: spec.deflate })
  if (conn === null) {
    return done({
      behavior: 'FAILED',
      behaviorClose: 'FAILED',
      duration_ms: 0,
      result: 'The request was not a WebSocket upgrade.',
      resultClose: 'The WebSocket opening handshake was never completed!',
      remoteCloseCode: null,
      wire: []
    })
  }
  if (spec.noWire === true) conn.wireEnabled = false
  const k = new CaseRun(conn, spec)
  conn.on('message', (payload: Buffer, binary: boolean) => {
    if (spec.onMessage) spec.onMessage(k, payload, binary)
    else {
      k.received.push({ kind: 'message', payload, binary })
      k.finishWhenDone()
    }
  })
  conn.on('pong', (payload: Buffer) => {
    k.received.push({ kind: 'pong', payload })
    k.finishWhenDone()
  })
  // The case's own timers end every case; this one only guards against a case that does not.
  const guard = setTimeout(() => conn.drop(true), spec.timeoutMs + 5000)
  const onAbort = (): void => conn.drop(true)
  options.signal?.addEventListener('abort', onAbort, { once: true })
  if (options.signal?.aborted === true) conn.drop(true)
  try {
    if (conn.state === 'open') spec.open(k)
  } catch (err) {
    k.details.error = String(err)
    conn.drop(true)
  }
  await conn.closed
  clearTimeout(guard)
  options.signal?.removeEventListener('abort', onAbort)
  k.judge()
  spec.judged?.(k)
  if (Object.keys(k.details).length === 0 && k.behavior !== 'OK') k.details.received = describeReceived(k.received)
  return done({
    behavior: k.behavior,
    behaviorClose: k.behaviorClose,
    duration_ms: Date.now() - startedAt.getTime(),
    result: k.result,
    resultClose: k.resultClose,
    remoteCloseCode: conn.end.remoteCloseCode,
    wire: conn.wire,
    ...(Object.keys(k.details).length > 0 ? { details: k.details } : {})
  })
}

function describeReceived (r: Received[]): string[] {
  return r.slice(0, 20).map(e => e.kind === 'timeout'
    ? `timeout ${e.tag}`
    : e.kind === 'pong'
      ? `pong (${e.payload.length} bytes)`
      : `${e.binary ? 'binary' : 'text'} message (${e.payload.length} bytes)`)
}
