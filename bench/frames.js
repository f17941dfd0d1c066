// Raw WebSocket client plumbing for the load generator and the runner's probes: an HTTP upgrade
// over a plain `net` socket, pre-masked client frames, and a frame counter that reads headers only.
// No `ws` client here on purpose: it costs as much CPU as the server it would measure.
import net from 'node:net'
import { createHash, randomBytes } from 'node:crypto'

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
const OP_TEXT = 1
const OP_CLOSE = 8
const OP_PING = 9
const OP_PONG = 10

/** One masked client frame. Build it once and write the same bytes for every message. */
export function encodeClientFrame (payload, opcode = OP_TEXT) {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload
  const len = data.length
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8
  const frame = Buffer.allocUnsafe(2 + ext + 4 + len)
  frame[0] = 0x80 | opcode
  if (ext === 0) {
    frame[1] = 0x80 | len
  } else if (ext === 2) {
    frame[1] = 0x80 | 126
    frame.writeUInt16BE(len, 2)
  } else {
    frame[1] = 0x80 | 127
    frame.writeBigUInt64BE(BigInt(len), 2)
  }
  const maskAt = 2 + ext
  const mask = randomBytes(4)
  mask.copy(frame, maskAt)
  for (let i = 0; i < len; i++) frame[maskAt + 4 + i] = data[i] ^ mask[i & 3]
  return frame
}

/**
 * Counts complete data messages in a stream of server frames by reading headers only; payloads are
 * skipped unread. Control frames are collected (they are tiny) and handed to `onControl`.
 * Chunks may come from a reused read buffer, so anything kept across calls is copied.
 */
export class FrameCounter {
  constructor (onControl) {
    this.onControl = onControl
    this.need = 0 // payload bytes still to skip (or collect) in the current frame
    this.fin = false
    this.opcode = 0
    this.ctrl = null // pieces of a control frame's payload
    this.tail = null // a header split across two reads
  }

  /** Feeds one read; returns how many data messages it completed. */
  push (chunk) {
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
        if (this.ctrl !== null) this.ctrl.push(Buffer.from(buf.subarray(i, i + take)))
        i += take
        this.need -= take
        if (this.need === 0) count += this.#finish()
        continue
      }
      if (n - i < 2) {
        this.tail = Buffer.from(buf.subarray(i))
        break
      }
      const b0 = buf[i]
      const b1 = buf[i + 1]
      let len = b1 & 0x7f
      let h = 2
      if (len === 126) h = 4
      else if (len === 127) h = 10
      if (b1 & 0x80) h += 4 // servers never mask, but stay in step if one does
      if (n - i < h) {
        this.tail = Buffer.from(buf.subarray(i))
        break
      }
      if (len === 126) len = buf.readUInt16BE(i + 2)
      else if (len === 127) len = Number(buf.readBigUInt64BE(i + 2))
      i += h
      this.fin = (b0 & 0x80) !== 0
      this.opcode = b0 & 0x0f
      this.ctrl = this.opcode >= 8 ? [] : null
      this.need = len
      if (len === 0) count += this.#finish()
    }
    return count
  }

  #finish () {
    if (this.ctrl !== null) {
      const payload = this.ctrl.length === 1 ? this.ctrl[0] : Buffer.concat(this.ctrl)
      this.ctrl = null
      this.onControl(this.opcode, payload)
      return 0
    }
    // opcode 0 is a continuation: a fragmented message counts once, on its final frame
    return this.fin ? 1 : 0
  }
}

/**
 * Opens a WebSocket on 127.0.0.1 and resolves once the server answered 101. Bytes after the
 * handshake are held until `conn.start(onData)`. `readBuffer`, if given, is a buffer shared by all
 * connections (net's `onread`), which saves one allocation per read; `onData` must then consume
 * each chunk synchronously.
 */
export function connectWs (port, path, { host = '127.0.0.1', timeoutMs = 10_000, readBuffer, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const key = randomBytes(16).toString('base64')
    const accept = createHash('sha1').update(key + GUID).digest('base64')
    let head = ''
    let opened = false
    let pending = null
    const conn = {
      socket: null,
      onData: null,
      onClose: null,
      closed: false,
      /** Starts delivering frames; data that arrived with the handshake comes first. */
      start (onData) {
        conn.onData = onData
        if (pending !== null) {
          const p = pending
          pending = null
          onData(p)
        }
      },
      /** Answers a ping as RFC 6455 requires; idle connections would be dropped otherwise. */
      pong (payload) {
        if (!conn.closed) conn.socket.write(encodeClientFrame(payload, OP_PONG))
      }
    }

    const fail = (err) => {
      if (opened) return
      opened = true // settle once
      clearTimeout(timer)
      socket.destroy()
      reject(err)
    }

    const onBytes = (chunk) => {
      if (opened) {
        if (conn.onData !== null) conn.onData(chunk)
        else pending = pending === null ? Buffer.from(chunk) : Buffer.concat([pending, chunk])
        return
      }
      head += chunk.toString('latin1')
      const end = head.indexOf('\r\n\r\n')
      if (end === -1) {
        if (head.length > 16_384) fail(new Error('upgrade response header too large'))
        return
      }
      const lines = head.slice(0, end).split('\r\n')
      if (!/^HTTP\/1\.1 101\b/.test(lines[0])) {
        fail(new Error(`upgrade refused: ${lines[0]}`))
        return
      }
      const acceptLine = lines.find((l) => /^sec-websocket-accept:/i.test(l))
      if (acceptLine === undefined || acceptLine.slice(acceptLine.indexOf(':') + 1).trim() !== accept) {
        fail(new Error('upgrade answered with a wrong Sec-WebSocket-Accept'))
        return
      }
      opened = true
      clearTimeout(timer)
      const rest = head.slice(end + 4)
      head = ''
      if (rest.length > 0) pending = Buffer.from(rest, 'latin1')
      resolve(conn)
    }

    const options = { host, port, noDelay: true }
    if (readBuffer !== undefined) {
      options.onread = { buffer: readBuffer, callback: (nread, buf) => { onBytes(buf.subarray(0, nread)) } }
    }
    const socket = net.connect(options)
    conn.socket = socket
    if (readBuffer === undefined) socket.on('data', onBytes)
    socket.setNoDelay(true)
    const timer = setTimeout(() => fail(new Error(`no upgrade answer within ${timeoutMs} ms`)), timeoutMs)
    socket.on('connect', () => {
      const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`
      )
    })
    socket.on('error', (err) => {
      fail(err)
      conn.error = err
    })
    socket.on('close', () => {
      fail(new Error('connection closed during the upgrade'))
      conn.closed = true
      if (conn.onClose !== null) conn.onClose()
    })
  })
}

/** Opens `count` connections with at most `concurrency` upgrades in flight; collects failures. */
export async function openMany (count, concurrency, open) {
  const conns = []
  const errors = []
  let next = 0
  const worker = async () => {
    while (next < count) {
      next++
      try {
        conns.push(await open())
      } catch (err) {
        errors.push(err)
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker))
  return { conns, errors }
}

/**
 * Reads whole server frames (payload included) for the runner's probes, which check what a
 * server answers before it is loaded. Resolves with the first `count` data messages.
 */
export function readMessages (conn, count, timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const out = []
    let buf = Buffer.alloc(0)
    const timer = setTimeout(() => reject(new Error(`got ${out.length} of ${count} expected frames within ${timeoutMs} ms`)), timeoutMs)
    conn.onClose = () => {
      clearTimeout(timer)
      reject(new Error('the server closed the connection'))
    }
    conn.start((chunk) => {
      buf = Buffer.concat([buf, chunk])
      while (buf.length >= 2) {
        let len = buf[1] & 0x7f
        let h = 2
        if (len === 126) h = 4
        else if (len === 127) h = 10
        if (buf.length < h) return
        if (len === 126) len = buf.readUInt16BE(2)
        else if (len === 127) len = Number(buf.readBigUInt64BE(2))
        if (buf.length < h + len) return
        const opcode = buf[0] & 0x0f
        const data = buf.subarray(h, h + len)
        buf = buf.subarray(h + len)
        if (opcode === OP_PING) conn.pong(data)
        else if (opcode === OP_CLOSE) {
          clearTimeout(timer)
          reject(new Error(`the server closed with code ${len >= 2 ? data.readUInt16BE(0) : 'none'}`))
          return
        } else if (opcode < 8) {
          out.push({ binary: opcode === 2, data: Buffer.from(data) })
          if (out.length === count) {
            clearTimeout(timer)
            resolve(out)
            return
          }
        }
      }
    })
  })
}

export { OP_CLOSE, OP_PING, OP_PONG }
