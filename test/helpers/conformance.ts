// Test helpers of the conformance suite: a bare HTTP server whose upgrades run suite cases
// (the routes are not needed to test the runner), and the clients the suite is compared on.
import { createServer, type Server } from 'node:http'
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import WebSocket from 'ws'
import { caseSpec, runCase, selectCases } from '../../src/conformance/cases.js'
import type { CaseResult } from '../../src/conformance/types.js'

export interface CaseServer {
  url: string
  results: Map<string, CaseResult>
  close: () => Promise<void>
}

/** `ws://127.0.0.1:PORT/runCase?casetuple=1.1.1` runs that case; its result lands in `results`. */
export async function caseServer (): Promise<CaseServer> {
  const results = new Map<string, CaseResult>()
  const waiting = new Map<string, Array<(r: CaseResult) => void>>()
  const sockets = new Set<Socket>()
  const server: Server = createServer((_req, res) => { res.statusCode = 404; res.end() })
  server.on('connection', s => { sockets.add(s); s.on('close', () => sockets.delete(s)) })
  server.on('upgrade', (req, socket: Socket, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://x')
    const id = url.searchParams.get('casetuple') ?? ''
    const c = caseSpec(id)
    if (c === undefined) { socket.destroy(); return }
    const maxSize = url.searchParams.get('max_size')
    void runCase(c, { socket, head, headers: req.headers }, maxSize === null ? {} : { maxSize: Number(maxSize) }).then(r => {
      results.set(id, r)
      for (const w of waiting.get(id) ?? []) w(r)
      waiting.delete(id)
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    url: `ws://127.0.0.1:${port}`,
    results,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>(resolve => server.close(() => resolve()))
    }
  }
}

/** Waits for the result of a case run through `server`. */
export function resultOf (server: CaseServer, id: string, timeoutMs = 120000): Promise<CaseResult> {
  const known = server.results.get(id)
  if (known) return Promise.resolve(known)
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`case ${id}: no result in ${timeoutMs} ms`)), timeoutMs)
    const poll = setInterval(() => {
      const r = server.results.get(id)
      if (r) { clearTimeout(t); clearInterval(poll); resolve(r) }
    }, 20)
  })
}

/** Node's `ws` as a testee: echoes every message with its type, closes when closed. */
export function wsEcho (url: string, deflate = true): Promise<void> {
  return new Promise(resolve => {
    const ws = new WebSocket(url, { perMessageDeflate: deflate, maxPayload: 64 * 1024 * 1024 })
    ws.on('message', (data, isBinary) => { ws.send(data as Buffer, { binary: isBinary }) })
    ws.on('error', () => {})
    ws.on('close', () => resolve())
  })
}

/**
 * A deliberately sloppy testee on a raw socket: masks its frames but checks nothing (no UTF-8,
 * no reserved bits, no opcodes), ignores pings, echoes every data message as text, and answers
 * any close with close 1000.
 */
export function sloppyEcho (url: string): Promise<void> {
  const u = new URL(url)
  return new Promise(resolve => {
    const socket: Socket = netConnect(Number(u.port), u.hostname)
    let buf = Buffer.alloc(0)
    let upgraded = false
    let parts: Buffer[] = []
    let closed = false
    socket.setNoDelay(true)
    socket.on('connect', () => {
      socket.write(`GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`)
    })
    const send = (opcode: number, payload: Buffer): void => {
      if (closed || socket.destroyed) return
      const mask = randomBytes(4)
      const len = payload.length
      const head = len < 126 ? Buffer.from([0x80 | opcode, 0x80 | len]) : len < 65536 ? Buffer.alloc(4) : Buffer.alloc(10)
      if (len >= 126 && len < 65536) { head[0] = 0x80 | opcode; head[1] = 0x80 | 126; head.writeUInt16BE(len, 2) }
      if (len >= 65536) { head[0] = 0x80 | opcode; head[1] = 0x80 | 127; head.writeBigUInt64BE(BigInt(len), 2) }
      const body = Buffer.alloc(len)
      for (let i = 0; i < len; i++) body[i] = payload[i]! ^ mask[i & 3]!
      socket.write(Buffer.concat([head, mask, body]))
    }
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d])
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n')
        if (end < 0) return
        upgraded = true
        buf = buf.subarray(end + 4)
      }
      for (;;) {
        if (buf.length < 2) return
        const opcode = buf[0]! & 0x0f
        const fin = (buf[0]! & 0x80) !== 0
        let len = buf[1]! & 0x7f
        let at = 2
        if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); at = 4 } else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); at = 10 }
        if (buf.length < at + len) return
        const payload = buf.subarray(at, at + len)
        buf = buf.subarray(at + len)
        if (opcode === 8) {
          const c = Buffer.alloc(2)
          c.writeUInt16BE(1000)
          send(8, c)
          closed = true
          continue
        }
        if (opcode === 9 || opcode === 10) continue
        parts.push(Buffer.from(payload))
        if (fin) {
          const message = Buffer.concat(parts)
          parts = []
          send(1, message)
        }
      }
    })
    socket.on('error', () => {})
    socket.on('close', () => resolve())
  })
}

export { selectCases }
