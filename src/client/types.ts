// The frames and events of echohub/client, typed for its users. Types only: nothing here exists at
// run time, so the compiled client stays one file a browser can load as it is.

import type { ChatMessage, ChatPresence, ChatRecoveryFailure } from '../chat/messages.js'
import type { ChatUser } from '../chat/adapter.js'

// The frames the client passes on as they come are the chat protocol's own, defined once.
export type { ChatMessage, ChatPresence, JsonValue } from '../chat/messages.js'
export type { ChatUser } from '../chat/adapter.js'

/** Why a rejoin could not recover every missed message. */
export type RecoveryReason = ChatRecoveryFailure

/**
 * A room was joined (or joined again after a reconnect). The missed messages themselves arrive as
 * `message` events right after this one, once each and in order.
 */
export interface JoinedEvent {
  room: string
  members: number[]
  /** Each member's user by `client_id` (as a string), with identity on. */
  users?: Record<string, ChatUser>
  /** The room's last `seq` when it was joined. */
  seq: number
  /** The room history's epoch (absent from a server that has none). */
  epoch?: string
  /** False when some messages since the last one seen are gone for good; `reason` says why. */
  recovered: boolean
  reason?: RecoveryReason
  /** Whether this is a rejoin after a reconnect (or after a gap) rather than the first join. */
  rejoined: boolean
}

/** A room's history was lost while this client was in it: `seq` starts again from `seq`. */
export interface ResetEvent {
  room: string
  epoch: string
  seq: number
}

/** An `error` frame the server sent about something no promise of the client was waiting for. */
export interface ServerError {
  code: string
  message: string
  room?: string
}

/** The connection's state, as `state` events report it. */
export type ConnectionState =
  /** Opening a WebSocket (`attempt`: failures since the last welcome). `url` carries no token. */
  | { state: 'connecting', attempt: number, url: string }
  /** Connected and welcomed. */
  | { state: 'open', clientId: number, user?: ChatUser }
  /** Disconnected; the next attempt is in `delay` ms. `opened`: whether the connection had opened. */
  | { state: 'waiting', attempt: number, delay: number, code: number, reason: string, opened: boolean }
  /** Disconnected and not trying again until `reconnect()` (stop() was called, or the token expired with no `getToken`). */
  | { state: 'stopped', code: number, reason: string }
  /** close() was called: for good. */
  | { state: 'closed' }

/** What `send` resolves with, from the server's ack. */
export interface SendResult {
  id: number
  /** The message's `seq` in its room; null for a lobby message or while the server's Redis is down. */
  seq: number | null
  /** True when the server had already taken a message with this key (a retry): nothing was sent again. */
  duplicate: boolean
}

/** A frame as it crossed the socket, for logs and debugging. */
export interface FrameEvent {
  direction: 'in' | 'out'
  text: string
}

export interface ChatEvents {
  message: (message: ChatMessage) => void
  presence: (presence: ChatPresence) => void
  joined: (joined: JoinedEvent) => void
  reset: (reset: ResetEvent) => void
  state: (state: ConnectionState) => void
  error: (error: ServerError) => void
  frame: (frame: FrameEvent) => void
}

/** What the client needs of a WebSocket: the browser's, or `ws`'s in Node. */
export interface WebSocketLike {
  readonly readyState: number
  send (data: string): void
  close (code?: number, reason?: string): void
  addEventListener (type: 'open' | 'message' | 'close' | 'error', listener: (event: SocketEvent) => void): void
}

/** The fields of the socket's events the client reads. */
export interface SocketEvent {
  readonly type: string
  data?: unknown
  code?: number
  reason?: string
  message?: string
}

export type WebSocketConstructor = new (url: string) => WebSocketLike

export interface ConnectOptions {
  /** A token for `?token=` (a JWT, or the server's shared `--auth-token`). */
  token?: string
  /**
   * Called for a token before each new connection and before the current token's `exp`, to send
   * `refresh` (so the connection outlives it). May return a promise.
   */
  getToken?: () => string | Promise<string>
  /** A send not acked within this many ms is rejected with code `timeout` (default 60000). */
  sendTimeout?: number
  /** The WebSocket class (default: the global one; in Node 20, `ws`, loaded when first needed). */
  WebSocket?: WebSocketConstructor
  /** First reconnect delay in ms, doubled after each failure (default 1000). */
  reconnectDelay?: number
  /** Longest reconnect delay in ms (default 30000). */
  maxReconnectDelay?: number
}

export interface JoinOptions {
  /** Resume after this `seq`: the messages after it arrive as `message` events. */
  since?: number
  /** With `since`: the epoch `since` belongs to, so a lost history is reported as `reason: 'epoch'`. */
  epoch?: string
  /** Without `since`: also get the room's last message (a dashboard's current value). */
  latest?: boolean
}

export interface SendOptions {
  /** The idempotency key (1-64 of `A-Z a-z 0-9 _ . : -`); random when not given. */
  key?: string
}

/** Where a room stands for this client. */
export interface RoomState {
  room: string
  /** Joined on the current connection. */
  joined: boolean
  /** The last `seq` delivered. */
  seq: number
  epoch?: string
}
