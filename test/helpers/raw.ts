// A raw WebSocket client on a plain TCP socket, for what a client library would hide or refuse to
// do: unmasked frames, invalid UTF-8, never answering pings, never reading.
import net from 'node:net'
import { randomBytes } from 'node:crypto'
import type { Test } from 'tap'

export interface HttpAnswer {
  status: number
  headers: Record<string, string>
  body: string
}

export interface Upgraded {
  socket: net.Socket
  /** Bytes after the 101 response: the start of the first server frames. */
  rest: Buffer
}

/** Sends an upgrade request; resolves with the socket on 101, or the HTTP answer otherwise. */
export async function rawUpgrade (t: Test, port: number, path = '/', headers: Record<string, string> = {}): Promise<Upgraded | HttpAnswer> {
  const socket = net.connect(port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  const lines = [
    `GET ${path} HTTP/1.1`, 'Upgrade: websocket', 'Connection: Upgrade',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`, 'Sec-WebSocket-Version: 13',
    ...Object.entries({ Host: `127.0.0.1:${port}`, ...headers }).map(([k, v]) => `${k}: ${v}`)
  ]
  socket.write(lines.join('\r\n') + '\r\n\r\n')
  let buffer = Buffer.alloc(0)
  return await new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk])
      const end = buffer.indexOf('\r\n\r\n')
      if (end === -1) return
      const head = buffer.subarray(0, end).toString().split('\r\n')
      const status = Number(head[0]!.split(' ')[1])
      const hdrs: Record<string, string> = {}
      for (const line of head.slice(1)) {
        const i = line.indexOf(':')
        hdrs[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim()
      }
      if (status === 101) {
        socket.off('data', onData)
        resolve({ socket, rest: buffer.subarray(end + 4) })
        return
      }
      const length = Number(hdrs['content-length'] ?? 0)
      if (buffer.length < end + 4 + length) return
      socket.off('data', onData)
      resolve({ status, headers: hdrs, body: buffer.subarray(end + 4, end + 4 + length).toString() })
    }
    socket.on('data', onData)
    socket.once('error', reject)
    socket.once('close', () => reject(new Error(`closed before an answer; got ${JSON.stringify(buffer.toString())}`)))
  })
}

export function isUpgraded (x: Upgraded | HttpAnswer): x is Upgraded {
  return 'socket' in x
}

/** One client frame: FIN set, masked unless `mask` is false. */
export function frame (opcode: number, payload: Buffer, mask = true): Buffer {
  const len = payload.length
  const ext = len < 126 ? Buffer.alloc(0) : len < 65536 ? Buffer.alloc(2) : Buffer.alloc(8)
  if (len >= 126 && len < 65536) ext.writeUInt16BE(len)
  if (len >= 65536) ext.writeBigUInt64BE(BigInt(len))
  const head = Buffer.from([0x80 | opcode, (mask ? 0x80 : 0) | (len < 126 ? len : len < 65536 ? 126 : 127)])
  if (!mask) return Buffer.concat([head, ext, payload])
  const key = randomBytes(4)
  const masked = Buffer.from(payload)
  for (let i = 0; i < masked.length; i++) masked[i]! ^= key[i & 3]!
  return Buffer.concat([head, ext, key, masked])
}

export interface ServerFrame {
  opcode: number
  payload: Buffer
}

/** Reads server frames (unmasked) from the socket, calling `onFrame` for each. */
export function readFrames (upgraded: Upgraded, onFrame: (f: ServerFrame) => void): void {
  let buffer = upgraded.rest
  const parse = () => {
    for (;;) {
      if (buffer.length < 2) return
      let len = buffer[1]! & 0x7f
      let offset = 2
      if (len === 126) {
        if (buffer.length < 4) return
        len = buffer.readUInt16BE(2)
        offset = 4
      } else if (len === 127) {
        if (buffer.length < 10) return
        len = Number(buffer.readBigUInt64BE(2))
        offset = 10
      }
      if (buffer.length < offset + len) return
      onFrame({ opcode: buffer[0]! & 0x0f, payload: buffer.subarray(offset, offset + len) })
      buffer = buffer.subarray(offset + len)
    }
  }
  upgraded.socket.on('data', (chunk: Buffer) => {
    buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk])
    parse()
  })
  parse()
}

/** Resolves with the close code of the first close frame the server sends. */
export function closeCode (upgraded: Upgraded): Promise<number> {
  return new Promise((resolve, reject) => {
    readFrames(upgraded, (f) => { if (f.opcode === 0x8) resolve(f.payload.readUInt16BE(0)) })
    upgraded.socket.once('close', () => reject(new Error('socket closed without a close frame')))
  })
}
