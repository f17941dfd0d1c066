// What an operator can do to a live connection, from `/connections/:id/...` or the inspector:
// send a frame, ping, close with a code and reason, or drop it without a close frame. Each checks
// its input here, once, and answers in the shape both callers pass on.
import type { WebSocket } from 'ws'
import type { Connection, ConnectionRegistry } from '../registry.js'
import { controlsOf, sendMessage } from './session.js'
import { publicUser } from '../auth/user.js'
import type { Controls } from './controls.js'

export type ActionName = 'send' | 'ping' | 'close' | 'drop'
export const ACTION_NAMES: readonly ActionName[] = ['send', 'ping', 'close', 'drop']

export type ActionResult =
  | { ok: true }
  | { ok: false, status: 400 | 404 | 409, error: 'invalid_body' | 'not_found' | 'not_open', message: string }

/** One connection as `GET /connections` lists it. */
export interface ConnectionInfo {
  id: number
  endpoint: string
  client: string
  path: string
  controls: Controls
  connected_at: string
  messages: { received: number, sent: number }
  bytes: { received: number, sent: number }
  buffered: number
  rtt_ms: number | null
  subprotocol: string | null
  /** Who the client is, with identity on (absent without). */
  user?: { id: string, name?: string }
}

const OPEN = 1
const MAX_REASON = 123
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/** Every socket the registry holds is a `ws` WebSocket; the registry types it by what it needs. */
export function socketOf (conn: Connection): WebSocket {
  return conn.socket as unknown as WebSocket
}

export function describeConnection (conn: Connection): ConnectionInfo {
  const socket = socketOf(conn)
  return {
    id: conn.id,
    endpoint: conn.endpoint.name,
    client: conn.peer,
    path: conn.path,
    controls: controlsOf(socket) ?? {},
    connected_at: new Date(conn.startedAt).toISOString(),
    messages: { received: conn.messagesReceived, sent: conn.messagesSent },
    bytes: { received: conn.bytesReceived, sent: conn.bytesSent },
    buffered: socket.bufferedAmount,
    rtt_ms: conn.rttMs ?? null,
    subprotocol: socket.protocol === '' ? null : socket.protocol,
    ...(conn.user === undefined ? {} : { user: publicUser(conn.user) })
  }
}

/** The process's open connections, oldest first (the first `max` of them). */
export function listConnections (registry: ConnectionRegistry, max = Number.POSITIVE_INFINITY): ConnectionInfo[] {
  const list: ConnectionInfo[] = []
  for (const conn of registry.connections) {
    if (list.length >= max) break
    list.push(describeConnection(conn))
  }
  return list
}

export function findConnection (registry: ConnectionRegistry, id: number): Connection | undefined {
  for (const conn of registry.connections) if (conn.id === id) return conn
  return undefined
}

function invalid (message: string): ActionResult {
  return { ok: false, status: 400, error: 'invalid_body', message }
}

function isObject (body: unknown): body is Record<string, unknown> {
  return body !== null && typeof body === 'object' && !Array.isArray(body)
}

/** Close codes a server may send (RFC 6455 §7.4). */
export function validCloseCode (code: number): boolean {
  return Number.isInteger(code) && ((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999))
}

/**
 * Runs one action on the connection with this id. `body` is the parsed JSON body (undefined when
 * there was none): `send` takes `{"text":"..."}` or `{"binary":"<base64>"}`, `close` takes an
 * optional `{"code":4001,"reason":"..."}`, `ping` and `drop` take nothing.
 */
export function act (registry: ConnectionRegistry, id: number, action: ActionName, body: unknown): ActionResult {
  const conn = findConnection(registry, id)
  if (conn === undefined) return { ok: false, status: 404, error: 'not_found', message: `no open connection has id ${id}` }
  const socket = socketOf(conn)
  if (socket.readyState !== OPEN) return { ok: false, status: 409, error: 'not_open', message: `connection ${id} is already closing` }
  switch (action) {
    case 'send': {
      if (!isObject(body)) return invalid('send takes {"text":"..."} or {"binary":"<base64>"}')
      const { text, binary } = body
      if ((text === undefined) === (binary === undefined)) return invalid('send takes exactly one of "text" and "binary"')
      if (text !== undefined) {
        if (typeof text !== 'string') return invalid('"text" must be a string')
        conn.sent(Buffer.byteLength(text))
        sendMessage(socket, text, false)
        return { ok: true }
      }
      if (typeof binary !== 'string' || !BASE64.test(binary)) return invalid('"binary" must be base64 (A-Z a-z 0-9 + /, padded with =)')
      const bytes = Buffer.from(binary, 'base64')
      conn.sent(bytes.length)
      sendMessage(socket, bytes, true)
      return { ok: true }
    }
    case 'close': {
      if (body !== undefined && !isObject(body)) return invalid('close takes {"code":4001,"reason":"..."} (both optional)')
      const code = body?.code ?? 1000
      const reason = body?.reason ?? ''
      if (typeof code !== 'number' || !validCloseCode(code)) return invalid('"code" must be a close code a server may send: 1000-1003, 1007-1014 or 3000-4999')
      if (typeof reason !== 'string') return invalid('"reason" must be a string')
      if (Buffer.byteLength(reason) > MAX_REASON) return invalid(`"reason" holds at most ${MAX_REASON} bytes`)
      socket.close(code, reason)
      return { ok: true }
    }
    case 'ping':
      conn.ping()
      return { ok: true }
    case 'drop':
      socket.terminate()
      return { ok: true }
  }
}
