// A raw WebSocket client on plain `net` sockets, shared by the bench's load generator and the tests
// (through test/helpers/raw.ts). It does what a client library would hide, refuse or pay too much
// for: pre-masked frames built once, unmasked or invalid frames on purpose, server frames counted
// by header only. No `ws` client here on purpose: it costs as much CPU as the server it measures.
import net from 'node:net'
import tls from 'node:tls'
import zlib from 'node:zlib'
import { createHash, randomBytes } from 'node:crypto'

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
export const OP_CONTINUATION = 0
export const OP_TEXT = 1
export const OP_BINARY = 2
export const OP_CLOSE = 8
export const OP_PING = 9
export const OP_PONG = 10

/** permessage-deflate as a minimal client offers it: no parameters, so both sides keep 15-bit windows. */
export const DEFLATE_OFFER = 'permessage-deflate'
const DEFLATE_TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff])

/**
 * One message compressed on its own for permessage-deflate (RFC 7692 7.2.1: sync flush, the empty
 * block's 4-byte tail removed); send it with `encodeFrame(..., { compressed: true })`. It refers to
 * no earlier message, so it is valid whether or not the server keeps the client's context.
 */
export function deflateMessage (data: string | Buffer): Buffer {
  const out = zlib.deflateRawSync(data, { finishFlush: zlib.constants.Z_SYNC_FLUSH })
  return out.subarray(0, out.length - DEFLATE_TAIL.length)
}

/** The payload of a compressed server message (the server compresses each on its own). */
export function inflateMessage (data: Buffer): Buffer {
  return zlib.inflateRawSync(Buffer.concat([data, DEFLATE_TAIL]), { finishFlush: zlib.constants.Z_SYNC_FLUSH })
}

/**
 * One client frame, FIN set, masked unless `mask` is false; `compressed` sets RSV1 (the payload is
 * already deflated). Build it once, write it many times.
 */
export function encodeFrame (payload: string | Buffer, opcode: number = OP_TEXT, mask = true, compressed = false): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload
  const len = data.length
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8
  const keyLen = mask ? 4 : 0
  const frame = Buffer.allocUnsafe(2 + ext + keyLen + len)
  frame[0] = 0x80 | (compressed ? 0x40 : 0) | opcode
  const maskBit = mask ? 0x80 : 0
  if (ext === 0) {
    frame[1] = maskBit | len
  } else if (ext === 2) {
    frame[1] = maskBit | 126
    frame.writeUInt16BE(len, 2)
  } else {
    frame[1] = maskBit | 127
    frame.writeBigUInt64BE(BigInt(len), 2)
  }
  const at = 2 + ext
  if (!mask) {
    data.copy(frame, at)
    return frame
  }
  const key = randomBytes(4)
  key.copy(frame, at)
  for (let i = 0; i < len; i++) frame[at + 4 + i] = data[i]! ^ key[i & 3]!
  return frame
}

/** Reads one frame header at `i`: null when `buf` does not hold all of it yet. */
function header (buf: Buffer, i: number): { fin: boolean, rsv1: boolean, opcode: number, len: number, size: number } | null {
  const left = buf.length - i
  if (left < 2) return null
  const b0 = buf[i]!
  const b1 = buf[i + 1]!
  let len = b1 & 0x7f
  let size = len === 126 ? 4 : len === 127 ? 10 : 2
  if ((b1 & 0x80) !== 0) size += 4 // servers never mask, but stay in step if one does
  if (left < size) return null
  if (len === 126) len = buf.readUInt16BE(i + 2)
  else if (len === 127) len = Number(buf.readBigUInt64BE(i + 2))
  return { fin: (b0 & 0x80) !== 0, rsv1: (b0 & 0x40) !== 0, opcode: b0 & 0x0f, len, size }
}

/**
 * Counts complete data messages in a stream of server frames by reading headers only; payloads are
 * skipped unread. Control frames (and data frames of at most `shortLen` bytes, such as socket.io's
 * one-byte ping `2`) are collected and handed to `onShort` instead of counted.
 * Chunks may come from a reused read buffer, so anything kept across calls is copied.
 */
export class FrameCounter {
  readonly onShort: (opcode: number, payload: Buffer) => void
  readonly shortLen: number
  need = 0 // payload bytes still to skip (or collect) in the current frame
  fin = false
  opcode = 0
  short: Buffer[] | null = null // pieces of a collected frame's payload
  tail: Buffer | null = null // a header split across two reads

  constructor (onShort: (opcode: number, payload: Buffer) => void, shortLen = -1) {
    this.onShort = onShort
    this.shortLen = shortLen
  }

  /** Feeds one read; returns how many data messages it completed. */
  push (chunk: Buffer): number {
    let buf = chunk
    if (this.tail !== null) {
      buf = Buffer.concat([this.tail, chunk])
      this.tail = null
    }
    const n = buf.length
    let i = 0
    let count = 0
    while (i < n) {
      if (this.need > 0) {
        const take = Math.min(this.need, n - i)
        if (this.short !== null) this.short.push(Buffer.from(buf.subarray(i, i + take)))
        i += take
        this.need -= take
        if (this.need === 0) count += this.finish()
        continue
      }
      const h = header(buf, i)
      if (h === null) {
        this.tail = Buffer.from(buf.subarray(i))
        break
      }
      i += h.size
      this.fin = h.fin
      this.opcode = h.opcode
      this.short = h.opcode >= 8 || (h.opcode !== OP_CONTINUATION && h.fin && h.len <= this.shortLen) ? [] : null
      this.need = h.len
      if (h.len === 0) count += this.finish()
    }
    return count
  }

  private finish (): number {
    if (this.short !== null) {
      const payload = this.short.length === 1 ? this.short[0]! : Buffer.concat(this.short)
      this.short = null
      this.onShort(this.opcode, payload)
      return 0
    }
    // opcode 0 is a continuation: a fragmented message counts once, on its final frame
    return this.fin ? 1 : 0
  }
}

export interface ServerFrame {
  fin: boolean
  /** Set on the first frame of a compressed message. */
  rsv1: boolean
  opcode: number
  payload: Buffer
}

/** Parses whole server frames, payload included, from a stream of chunks. */
export class FrameReader {
  private buffer: Buffer = Buffer.alloc(0)
  private readonly onFrame: (f: ServerFrame) => void

  constructor (onFrame: (f: ServerFrame) => void) {
    this.onFrame = onFrame
  }

  private stopped = false

  push (chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk])
    while (!this.stopped) {
      const h = header(this.buffer, 0)
      if (h === null || this.buffer.length < h.size + h.len) return
      const payload = this.buffer.subarray(h.size, h.size + h.len)
      this.buffer = this.buffer.subarray(h.size + h.len)
      this.onFrame({ fin: h.fin, rsv1: h.rsv1, opcode: h.opcode, payload })
    }
  }

  /** Parses no further frames, e.g. once a handshake is over and the rest goes elsewhere. */
  stop (): void {
    this.stopped = true
  }

  /** The bytes not parsed yet (handed over after `stop`). */
  rest (): Buffer {
    const rest = this.buffer
    this.buffer = Buffer.alloc(0)
    return rest
  }
}

export interface HttpAnswer {
  status: number
  headers: Record<string, string>
  body: string
}

export interface Upgraded {
  socket: net.Socket
  /** Bytes after the 101 response: the start of the first server frames. */
  rest: Buffer
  headers: Record<string, string>
  /** Where later bytes go (a no-op until set); with `readBuffer`, the only way to read them. */
  route: (onData: (chunk: Buffer) => void) => void
}

export function isUpgraded (x: Upgraded | HttpAnswer): x is Upgraded {
  return 'socket' in x
}

export interface UpgradeOptions {
  host?: string
  /** Speak TLS (wss); the server's certificate is not checked (the bench's is self-signed). */
  tls?: boolean
  /** Extra or overriding request headers (`Host` included). */
  headers?: Record<string, string>
  timeoutMs?: number
  /** Called with the socket as soon as it exists, e.g. to destroy it in a test's teardown. */
  onSocket?: (socket: net.Socket) => void
  /**
   * A buffer shared by every connection (net's `onread`), which saves one allocation per read;
   * whatever consumes the bytes must do so synchronously.
   */
  readBuffer?: Buffer
  /** The source address (e.g. 127.0.0.2): one address reaches about 28,000 connections to one port. */
  localAddress?: string
}

/**
 * Sends an upgrade request on a new TCP connection; resolves with the socket on 101 (after checking
 * Sec-WebSocket-Accept), or with the HTTP answer (status, headers, body) otherwise.
 */
export function upgrade (port: number, path = '/', options: UpgradeOptions = {}): Promise<Upgraded | HttpAnswer> {
  const { host = '127.0.0.1', headers = {}, timeoutMs = 10_000, onSocket, readBuffer, localAddress } = options
  const key = randomBytes(16).toString('base64')
  let sink: (chunk: Buffer) => void = () => {}
  let socket: net.Socket
  if (options.tls === true) { // TLS sockets have no `onread`: every read is a new buffer
    socket = tls.connect({ port, host, rejectUnauthorized: false })
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => sink(chunk))
  } else {
    const connect: net.NetConnectOpts = { port, host, noDelay: true, ...(localAddress === undefined ? {} : { localAddress }) }
    if (readBuffer !== undefined) {
      connect.onread = { buffer: readBuffer, callback: (n, buf) => { sink(Buffer.from(buf.buffer, buf.byteOffset, n)); return true } }
    }
    socket = net.connect(connect)
    if (readBuffer === undefined) socket.on('data', (chunk: Buffer) => sink(chunk))
  }
  onSocket?.(socket)
  const lines = [
    `GET ${path} HTTP/1.1`, 'Upgrade: websocket', 'Connection: Upgrade',
    `Sec-WebSocket-Key: ${key}`, 'Sec-WebSocket-Version: 13',
    ...Object.entries({ Host: `${host}:${port}`, ...headers }).map(([k, v]) => `${k}: ${v}`)
  ]
  socket.write(lines.join('\r\n') + '\r\n\r\n')
  let buffer = Buffer.alloc(0)
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`no upgrade answer within ${timeoutMs} ms`)), timeoutMs)
    let settled = false
    // stays the socket's error listener afterwards: a later reset shows as 'close', not a crash
    const done = (err: Error | null, answer?: Upgraded | HttpAnswer) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      sink = () => {}
      socket.off('close', onClose)
      if (err !== null) {
        socket.destroy()
        reject(err)
      } else {
        resolve(answer!)
      }
    }
    const onClose = () => done(new Error(`closed before an answer; got ${JSON.stringify(buffer.toString().slice(0, 200))}`))
    const onData = (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk])
      const end = buffer.indexOf('\r\n\r\n')
      if (end === -1) {
        if (buffer.length > 16_384) done(new Error('upgrade response header too large'))
        return
      }
      const head = buffer.subarray(0, end).toString('latin1').split('\r\n')
      const status = Number(head[0]!.split(' ')[1])
      const hdrs: Record<string, string> = {}
      for (const line of head.slice(1)) {
        const i = line.indexOf(':')
        hdrs[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim()
      }
      if (status === 101) {
        const accept = createHash('sha1').update(key + GUID).digest('base64')
        if (hdrs['sec-websocket-accept'] !== accept) done(new Error('upgrade answered with a wrong Sec-WebSocket-Accept'))
        else done(null, { socket, rest: buffer.subarray(end + 4), headers: hdrs, route: (fn) => { sink = fn } })
        return
      }
      const length = Number(hdrs['content-length'] ?? 0)
      if (buffer.length < end + 4 + length) return
      done(null, { status, headers: hdrs, body: buffer.subarray(end + 4, end + 4 + length).toString() })
    }
    sink = onData
    socket.on('error', done)
    socket.on('close', onClose)
  })
}

/** An open WebSocket for the bench: frames arrive through `start(onData)`. */
export interface Conn {
  socket: net.Socket
  closed: boolean
  onClose: (() => void) | null
  /** Starts delivering bytes; those that arrived with the handshake come first. */
  start: (onData: (chunk: Buffer) => void) => void
  /** Answers a ping as RFC 6455 requires; idle connections would be dropped otherwise. */
  pong: (payload: Buffer) => void
}

export interface ConnectOptions {
  host?: string
  /** wss: TLS without checking the certificate. */
  tls?: boolean
  /** Offer permessage-deflate; the upgrade fails unless the server accepts it. */
  deflate?: boolean
  timeoutMs?: number
  headers?: Record<string, string>
  /**
   * A buffer shared by every connection (net's `onread`), which saves one allocation per read;
   * `onData` must then consume each chunk synchronously.
   */
  readBuffer?: Buffer
  /** The source address (plain TCP only). */
  localAddress?: string
}

/** Opens a WebSocket and resolves once the server answered 101; anything else rejects. */
export async function connectWs (port: number, path: string, options: ConnectOptions = {}): Promise<Conn> {
  const { host, timeoutMs, readBuffer, deflate = false } = options
  const headers = deflate ? { 'Sec-WebSocket-Extensions': DEFLATE_OFFER, ...options.headers } : options.headers
  const answer = await upgrade(port, path, { host, tls: options.tls, timeoutMs, headers, readBuffer, localAddress: options.localAddress })
  if (!isUpgraded(answer)) throw new Error(`upgrade refused: ${answer.status} ${answer.body.slice(0, 120)}`)
  const { socket, rest } = answer
  if (deflate && !(answer.headers['sec-websocket-extensions'] ?? '').startsWith(DEFLATE_OFFER)) {
    socket.destroy()
    throw new Error('the server did not accept permessage-deflate')
  }
  let onData: ((chunk: Buffer) => void) | null = null
  let pending: Buffer | null = rest.length > 0 ? Buffer.from(rest) : null
  const conn: Conn = {
    socket,
    closed: false,
    onClose: null,
    start (fn) {
      onData = fn
      if (pending !== null) {
        const p = pending
        pending = null
        fn(p)
      }
    },
    pong (payload) {
      if (!conn.closed) socket.write(encodeFrame(payload, OP_PONG))
    }
  }
  const onBytes = (chunk: Buffer) => {
    if (onData !== null) onData(chunk)
    else pending = pending === null ? Buffer.from(chunk) : Buffer.concat([pending, chunk])
  }
  answer.route(onBytes)
  socket.on('error', () => {}) // 'close' follows and says it
  socket.on('close', () => {
    conn.closed = true
    conn.onClose?.()
  })
  return conn
}

/** Opens `count` connections with at most `concurrency` upgrades in flight; collects failures. */
export async function openMany<T> (count: number, concurrency: number, open: () => Promise<T>): Promise<{ conns: T[], errors: Error[] }> {
  const conns: T[] = []
  const errors: Error[] = []
  let next = 0
  const worker = async () => {
    while (next < count) {
      next++
      try {
        conns.push(await open())
      } catch (err) {
        errors.push(err as Error)
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker))
  return { conns, errors }
}

export interface Message {
  binary: boolean
  data: Buffer
}

/**
 * Whole data messages of one connection, in order, pings answered, compressed ones inflated; for
 * probes, not for load (a fragmented message is one message per frame).
 */
export class MessageQueue {
  private readonly queue: Message[] = []
  private readonly waiters: Array<{ resolve: (m: Message) => void, reject: (err: Error) => void }> = []
  private ended: Error | null = null

  constructor (conn: Conn) {
    const reader = new FrameReader((f) => {
      if (f.opcode === OP_PING) conn.pong(f.payload)
      else if (f.opcode === OP_CLOSE) this.end(new Error(`the server closed with code ${f.payload.length >= 2 ? f.payload.readUInt16BE(0) : 'none'}`))
      else if (f.opcode < 8 && !f.rsv1) this.put({ binary: f.opcode === OP_BINARY, data: Buffer.from(f.payload) })
      else if (f.opcode < 8) this.putCompressed(f)
    })
    conn.onClose = () => this.end(new Error('the server closed the connection'))
    conn.start((chunk) => reader.push(Buffer.from(chunk)))
  }

  private putCompressed (f: ServerFrame): void {
    let data: Buffer
    try {
      data = inflateMessage(f.payload)
    } catch (err) {
      this.end(new Error(`a compressed message did not inflate: ${(err as Error).message}`))
      return
    }
    this.put({ binary: f.opcode === OP_BINARY, data })
  }

  private put (m: Message): void {
    const waiter = this.waiters.shift()
    if (waiter !== undefined) waiter.resolve(m)
    else this.queue.push(m)
  }

  private end (err: Error): void {
    this.ended ??= err
    for (const waiter of this.waiters.splice(0)) waiter.reject(err)
  }

  /** The next data message, waiting at most `timeoutMs`. */
  next (timeoutMs = 3000): Promise<Message> {
    const m = this.queue.shift()
    if (m !== undefined) return Promise.resolve(m)
    if (this.ended !== null) return Promise.reject(this.ended)
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: (msg: Message) => { clearTimeout(timer); resolve(msg) },
        reject: (err: Error) => { clearTimeout(timer); reject(err) }
      }
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1)
        reject(new Error(`no message within ${timeoutMs} ms`))
      }, timeoutMs)
      this.waiters.push(waiter)
    })
  }
}
