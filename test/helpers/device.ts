// Test clients of the conformance suite's routes: an Autobahn-style driver's one-shot connections,
// and devices that run device mode by echoing and reconnecting, each with its own habits.
import { connect as netConnect, type Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import { WebSocket } from 'ws'

/** What one connection to a suite route got: its text frames and its close, or the HTTP refusal. */
export interface Answer {
  texts: string[]
  close?: number
  status?: number
  body?: Record<string, unknown>
  headers?: Record<string, string | string[] | undefined>
}

/** Opens `url`, collects its text frames until it closes (getCaseCount, getCaseInfo, ...), or the refusal. */
export function ask (url: string, options: { headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const texts: string[] = []
    const ws = new WebSocket(url, options)
    ws.on('message', (data: Buffer) => texts.push(data.toString()))
    ws.on('close', (code) => resolve({ texts, close: code }))
    ws.on('unexpected-response', (_req, res) => {
      let body = ''
      res.on('data', (chunk: Buffer) => { body += chunk.toString() })
      res.on('end', () => resolve({ texts, status: res.statusCode, body: JSON.parse(body) as Record<string, unknown>, headers: res.headers }))
    })
    ws.on('error', (err) => { if (!('status' in err)) reject(err) })
  })
}

/** An Autobahn driver's testee for one case: echoes every message as it came, answers pings and closes (ws does). Resolves with the close code. */
export function echoCase (url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 })
    ws.on('message', (data: Buffer, isBinary: boolean) => ws.send(data, { binary: isBinary }))
    ws.on('close', (code) => resolve(code))
    ws.on('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)))
    ws.on('error', () => {})
  })
}

export interface DeviceOptions {
  /**
   * ms before reconnecting after the nth connection in a row that brought no message (a drop or
   * a bare close); the last applies past the end. After a connection with messages: `afterCase`.
   */
  backoff?: number[]
  afterCase?: number
  /** Stop (without reconnecting) after this many connections. */
  connections?: number
  /** Stop after the first connection that brought no message (a client that never reconnects). */
  noReconnect?: boolean
}

export interface DeviceRun {
  /** The `conformance_done` frame, when the suite ended. */
  done: Record<string, unknown> | undefined
  connections: number
  closes: number[]
}

/** Firmware that only echoes and reconnects: connects to `url` (`.../next?agent=...`) again after each close, until `conformance_done`. */
export async function device (url: string | (() => string), options: DeviceOptions = {}): Promise<DeviceRun> {
  const backoff = options.backoff ?? [0]
  const run: DeviceRun = { done: undefined, connections: 0, closes: [] }
  let empty = 0
  for (;;) {
    run.connections++
    const { gotMessage, code, done } = await new Promise<{ gotMessage: boolean, code: number, done: Record<string, unknown> | undefined }>((resolve, reject) => {
      let gotMessage = false
      let done: Record<string, unknown> | undefined
      const ws = new WebSocket(typeof url === 'string' ? url : url(), { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 })
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        gotMessage = true
        if (!isBinary && data.toString().startsWith('{"type":"conformance_done"')) {
          done = JSON.parse(data.toString()) as Record<string, unknown>
          return
        }
        ws.send(data, { binary: isBinary })
      })
      ws.on('close', (code) => resolve({ gotMessage, code, done }))
      ws.on('unexpected-response', (_req, res) => reject(new Error(`device refused: HTTP ${res.statusCode}`)))
      ws.on('error', () => {})
    })
    run.closes.push(code)
    if (done !== undefined) {
      run.done = done
      return run
    }
    if (run.connections === options.connections) return run
    if (gotMessage) {
      empty = 0
    } else {
      if (options.noReconnect === true) return run
      empty++
    }
    const wait = gotMessage ? options.afterCase ?? 0 : backoff[Math.min(empty - 1, backoff.length - 1)]!
    await new Promise((resolve) => setTimeout(resolve, wait))
  }
}

/**
 * A client that completes the handshake and then reads and ignores everything: it never answers a
 * close frame (R.6 fails it). Resolves once the server has ended the TCP connection.
 */
export function deafClient (url: string): Promise<void> {
  const u = new URL(url)
  return new Promise((resolve) => {
    const socket: Socket = netConnect(Number(u.port), u.hostname, () => {
      socket.write(`GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`)
    })
    socket.on('data', () => {})
    socket.on('error', () => {})
    socket.on('close', () => resolve())
  })
}
