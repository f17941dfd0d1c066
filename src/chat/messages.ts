// The chat protocol, defined once: the frames each side sends, the error codes, and the builders
// the chat plugin sends with. The tests and the README follow these shapes.
import { isoNow } from '../format.js'
import type { ChatUser, Outgoing } from './adapter.js'

/** Any value JSON can carry. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue }
export type JsonObject = { [key: string]: JsonValue }

/**
 * A client's name for one of its frames: a string of 1-64 characters or a whole number from 0.
 * Every answer to a frame that carried one carries it back, right after `type`.
 */
export type ChatRef = string | number

/**
 * Client to server. `room` absent: the lobby. Any frame may carry `ref`. A `message`'s `key` makes
 * it idempotent: a repeat with the same key to the same target within the dedupe window is not
 * sent on again. A `join`'s `epoch` goes with `since`: the epoch that `since` counts in.
 */
export type ChatClientFrame =
  | { type: 'message', payload: JsonValue, room?: string, key?: string, ref?: ChatRef }
  | { type: 'custom_event', payload: JsonObject, ref?: ChatRef }
  | { type: 'ping', ref?: ChatRef }
  | { type: 'join', room: string, since?: number, epoch?: string, latest?: boolean, ref?: ChatRef }
  | { type: 'leave', room: string, ref?: ChatRef }
  | { type: 'history', room: string, limit: number, since?: number, ref?: ChatRef }
  | { type: 'refresh', token: string, ref?: ChatRef }

/**
 * Server to client. Keys are sent in the order written here. `user`/`users` appear only with
 * identity on (signed tokens or the registry's `authenticate`); without it no frame has them.
 */
export interface ChatWelcome {
  type: 'welcome'
  payload: { client_id: number, user?: ChatUser, message: string, server_info: string }
  timestamp: string
}
export interface ChatMessage {
  type: 'message'
  /** Present on a room's messages. */
  room?: string
  payload: JsonValue
  /** `client_id` of the sender; 0 for a message published by the server. */
  from: number
  /** The sender's user; none on a message published by the server (`from` 0). */
  user?: ChatUser
  /** Sequence number of the message, counted per chat endpoint (cluster-wide with Redis) from 1. */
  id: number
  /** A room message's number in its room, from 1 with no gaps; null when it could not be stored. */
  seq?: number | null
  timestamp: string
}
/** Why a resume could not give every message after `since`. */
export type ChatRecoveryFailure = 'epoch' | 'evicted' | 'ahead'
export interface ChatJoined {
  type: 'joined'
  ref?: ChatRef
  room: string
  /**
   * `users`: each member's user, keyed by its `client_id` as a string. `epoch`: the room history's
   * epoch. `reason`: why `recovered` is false (`epoch`: the epoch differs, `evicted`: messages after
   * `since` left the history, `ahead`: `since` is past the room's `seq`).
   */
  payload: { members: number[], users?: Record<string, ChatUser>, seq: number, epoch: string, recovered: boolean, reason?: ChatRecoveryFailure, history: ChatMessage[], more?: true }
  timestamp: string
}
export interface ChatLeft {
  type: 'left'
  ref?: ChatRef
  room: string
  timestamp: string
}
/** A `message` sent with a `ref` was stored and published (`seq` in a room; null while the broker is away). */
export interface ChatAck {
  type: 'ack'
  ref: ChatRef
  /** `duplicate`: the message repeated one sent with the same `key` within the window; these are the first one's numbers. */
  payload: { id: number, seq?: number | null, duplicate?: true }
  timestamp: string
}
/** The room's history was lost (its epoch changed): its `seq` starts again. */
export interface ChatReset {
  type: 'reset'
  room: string
  /** `seq`: the room's seq in the new epoch from which live messages follow (0 unless some were sent before this reached you). */
  payload: { epoch: string, seq: number }
  timestamp: string
}
export interface ChatPresence {
  type: 'presence'
  room: string
  payload: { event: 'join' | 'leave', client_id: number, user?: ChatUser, count: number }
  timestamp: string
}
export interface ChatHistory {
  type: 'history'
  ref?: ChatRef
  room: string
  epoch: string
  payload: ChatMessage[]
  more?: true
}
export interface ChatCustomEventReply {
  type: 'custom_event'
  ref?: ChatRef
  payload: JsonValue
  timestamp: string
}
export interface ChatPong {
  type: 'pong'
  ref?: ChatRef
  timestamp: string
}
/** The answer to a good `refresh`: the connection now lasts until `exp` (Unix seconds; null: no expiry). */
export interface ChatRefreshed {
  type: 'refreshed'
  ref?: ChatRef
  exp: number | null
}
export interface ChatError {
  type: 'error'
  /** The `ref` of the frame refused; none when the `ref` itself was bad (`invalid_ref`). */
  ref?: ChatRef
  payload: { code: ChatErrorCode, message: string, room?: string }
}
export type ChatServerFrame = ChatWelcome | ChatMessage | ChatCustomEventReply | ChatPong | ChatError | ChatJoined | ChatLeft | ChatPresence | ChatHistory | ChatRefreshed | ChatAck | ChatReset

export const CHAT_CLIENT_TYPES = ['message', 'custom_event', 'ping', 'join', 'leave', 'history'] as const
const TYPE_LIST = '"message", "custom_event", "ping", "join", "leave" or "history"'

/** Room names: 1 to 64 characters of `A-Z a-z 0-9 _ . : -`. */
export const ROOM_NAME = /^[A-Za-z0-9_.:-]{1,64}$/
/** Idempotency keys and epochs: 1 to 64 characters of `A-Z a-z 0-9 _ . : -`. */
export const MESSAGE_KEY = /^[A-Za-z0-9_.:-]{1,64}$/
export const EPOCH = MESSAGE_KEY
/** A `ref` string's length. */
export const REF_MAX_LENGTH = 64
/** `history`'s `limit`: its range and default. */
export const HISTORY_LIMIT = { min: 1, max: 1000, default: 100 } as const

/**
 * Why the server refused a frame. `custom_event_failed`: a library user's custom event handler threw;
 * `unavailable`: a room operation failed inside the adapter (a broker error), try again.
 * `forbidden`: the user's token does not allow the room; `invalid_token`: a `refresh` was refused.
 * `invalid_ref`, `invalid_key`, `invalid_epoch`: a frame's `ref`, a message's `key` or a join's `epoch`
 * is not one.
 */
export const CHAT_ERROR_CODES = [
  'invalid_json',
  'invalid_message',
  'unknown_type',
  'binary_not_supported',
  'rate_limited',
  'custom_event_failed',
  'invalid_room',
  'not_in_room',
  'too_many_rooms',
  'room_limit',
  'unavailable',
  'forbidden',
  'invalid_token',
  'invalid_ref',
  'invalid_key',
  'invalid_epoch'
] as const
export type ChatErrorCode = (typeof CHAT_ERROR_CODES)[number]

/** The default reply to a custom event, as the SPEC says. */
export function customEventAck (data: JsonObject): { status: 'received', data: JsonObject } {
  return { status: 'received', data }
}

/** A user as frames carry it, serialized once per connection: `{"id":"u1","name":"Ana"}`. */
export function userJson (user: ChatUser): string {
  return JSON.stringify(user.name === undefined ? { id: user.id } : { id: user.id, name: user.name })
}

/** `user`: the client's userJson, with identity on. */
export function chatWelcome (clientId: number, message: string, serverInfo: string, user?: string): string {
  return '{"type":"welcome","payload":{"client_id":' + clientId + (user === undefined ? '' : ',"user":' + user) +
    ',"message":' + JSON.stringify(message) + ',"server_info":' + JSON.stringify(serverInfo) + '},"timestamp":"' + isoNow() + '"}'
}

/**
 * A broadcast message in the two parts around the numbers the adapter assigns (see Outgoing in
 * src/chat/adapter.ts). `payloadJson` is the payload already serialized: a broadcast is built once
 * and the same bytes go to every client. Joined with `,"id":N` (and `,"seq":N` in a room) it equals
 * `JSON.stringify({ type, room, payload, from, id, seq, timestamp })`.
 */
export function chatMessageParts (room: string | null, payloadJson: string, from: number, user?: string): Outgoing {
  // Room names are plain ASCII without quotes or backslashes (ROOM_NAME), so they need no escaping.
  const head = (room === null ? '{"type":"message","payload":' : '{"type":"message","room":"' + room + '","payload":') + payloadJson + ',"from":' + from +
    (user === undefined ? '' : ',"user":' + user)
  return { room, head, tail: ',"timestamp":"' + isoNow() + '"}' }
}

/** The frame a message's parts and numbers make (what an adapter delivers). */
export function assembleMessage (head: string, tail: string, id: number, room: string | null, seq: number | null): string {
  return room === null ? head + ',"id":' + id + tail : head + ',"id":' + id + ',"seq":' + seq + tail
}

/** `,"ref":<ref>` to follow a frame's `type`, or nothing. `ref` is the client's ref already serialized (refJson). */
function refPart (ref: string | undefined): string {
  return ref === undefined ? '' : ',"ref":' + ref
}

/** A frame's `ref` as its answers carry it: serialized once, when the frame has one. */
export function refJson (ref: ChatRef | undefined): string | undefined {
  return ref === undefined ? undefined : typeof ref === 'number' ? String(ref) : JSON.stringify(ref)
}

/** What `joined` says besides its members and history. */
export interface JoinedState {
  seq: number
  epoch: string
  recovered: boolean
  reason?: ChatRecoveryFailure | undefined
}

/**
 * `joined`, with the room's stored messages (already framed) as its history. `users` (identity on):
 * each member's user, keyed by its `client_id` as a string.
 */
export function chatJoined (room: string, members: number[], state: JoinedState, history: readonly string[], more: boolean, users?: Record<string, ChatUser>, ref?: string): string {
  return '{"type":"joined"' + refPart(ref) + ',"room":"' + room + '","payload":{"members":' + JSON.stringify(members) +
    (users === undefined ? '' : ',"users":' + JSON.stringify(users)) + ',"seq":' + state.seq + ',"epoch":' + JSON.stringify(state.epoch) +
    ',"recovered":' + state.recovered + (state.reason === undefined ? '' : ',"reason":"' + state.reason + '"') +
    ',"history":[' + history.join(',') + ']' + (more ? ',"more":true' : '') + '},"timestamp":"' + isoNow() + '"}'
}

export function chatLeft (room: string, ref?: string): string {
  return '{"type":"left"' + refPart(ref) + ',"room":"' + room + '","timestamp":"' + isoNow() + '"}'
}

export function chatPresence (room: string, event: 'join' | 'leave', clientId: number, count: number, user?: ChatUser): string {
  return '{"type":"presence","room":"' + room + '","payload":{"event":"' + event + '","client_id":' + clientId +
    (user === undefined ? '' : ',"user":' + userJson(user)) + ',"count":' + count + '},"timestamp":"' + isoNow() + '"}'
}

export function chatHistory (room: string, epoch: string, messages: readonly string[], more: boolean, ref?: string): string {
  return '{"type":"history"' + refPart(ref) + ',"room":"' + room + '","epoch":' + JSON.stringify(epoch) + ',"payload":[' + messages.join(',') + ']' + (more ? ',"more":true' : '') + '}'
}

/**
 * The `ack` of a `message` sent with a `ref`: its `id`, and its `seq` in a room (`room` true; null
 * while the broker is away). `duplicate`: the numbers are those of the first message with its key.
 */
export function chatAck (ref: string, id: number, room: boolean, seq: number | null, duplicate: boolean): string {
  return '{"type":"ack","ref":' + ref + ',"payload":{"id":' + id + (room ? ',"seq":' + seq : '') + (duplicate ? ',"duplicate":true' : '') +
    '},"timestamp":"' + isoNow() + '"}'
}

/** A room's history was lost: its new epoch, and the seq live messages follow from. */
export function chatReset (room: string, epoch: string, seq: number): string {
  return '{"type":"reset","room":"' + room + '","payload":{"epoch":' + JSON.stringify(epoch) + ',"seq":' + seq + '},"timestamp":"' + isoNow() + '"}'
}

/** Throws if `payload` cannot be serialized (a BigInt, a cycle), like JSON.stringify. */
export function chatCustomEventReply (payload: JsonValue, ref?: string): string {
  const body = JSON.stringify(payload)
  if (body === undefined) throw new TypeError('the reply payload is not a JSON value')
  return '{"type":"custom_event"' + refPart(ref) + ',"payload":' + body + ',"timestamp":"' + isoNow() + '"}'
}

export function chatRefreshed (exp: number | null, ref?: string): string {
  return '{"type":"refreshed"' + refPart(ref) + ',"exp":' + exp + '}'
}

export function chatPong (ref?: string): string {
  return '{"type":"pong"' + refPart(ref) + ',"timestamp":"' + isoNow() + '"}'
}

/** An `error`; one about a frame that named a room carries that room after the message. */
export function chatError (code: ChatErrorCode, message: string, room?: string, ref?: string): string {
  return '{"type":"error"' + refPart(ref) + ',"payload":' + JSON.stringify(room === undefined ? { code, message } : { code, message, room }) + '}'
}

/** A parsed frame that passed the shape check, or the error to answer it with. */
export type ParsedChatFrame =
  | { ok: true, frame: ChatClientFrame }
  | Refusal

/** Checks a client's text frame: JSON first, then the shape. Messages say what was wrong in plain words. */
export function parseChatFrame (text: string): ParsedChatFrame {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    return { ok: false, code: 'invalid_json', message: `The message is not valid JSON (${(err as Error).message}). Send a JSON object like {"type":"message","payload":"hi"}.` }
  }
  if (!isObject(value)) {
    return { ok: false, code: 'invalid_message', message: `A message must be a JSON object with a string "type", not ${kindOf(value)}.` }
  }
  const ref = value.ref
  if (ref === undefined) return parseShape(value)
  if (!isRef(ref)) {
    return { ok: false, code: 'invalid_ref', message: `"ref" must be a string of 1 to ${REF_MAX_LENGTH} characters or a whole number from 0, not ${describeValue(ref)}.` }
  }
  const parsed = parseShape(value)
  if (parsed.ok) parsed.frame.ref = ref
  else parsed.ref = ref
  return parsed
}

/** A frame's `ref`, when it has a good one: for answering a frame that is refused before its shape is read. */
export function refOf (text: string): ChatRef | undefined {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return undefined
  }
  return isObject(value) && isRef(value.ref) ? value.ref : undefined
}

function isRef (ref: unknown): ref is ChatRef {
  return typeof ref === 'string'
    ? ref.length >= 1 && ref.length <= REF_MAX_LENGTH
    : typeof ref === 'number' && Number.isSafeInteger(ref) && ref >= 0
}

function parseShape (value: Record<string, unknown>): ParsedChatFrame {
  const type = value.type
  if (type === undefined) return { ok: false, code: 'invalid_message', message: `The message has no "type"; use ${TYPE_LIST}.` }
  if (typeof type !== 'string') return { ok: false, code: 'invalid_message', message: `"type" must be a string, not ${kindOf(type)}.` }
  switch (type) {
    case 'message': {
      if (!Object.hasOwn(value, 'payload')) {
        return { ok: false, code: 'invalid_message', message: 'A "message" needs a "payload" (any JSON value) to broadcast.', ...namedRoom(value) }
      }
      let frame: ChatClientFrame & { type: 'message' }
      if (value.room === undefined) {
        frame = { type, payload: value.payload as JsonValue }
      } else {
        const room = checkRoom(value)
        if (typeof room !== 'string') return room
        frame = { type, payload: value.payload as JsonValue, room }
      }
      if (value.key !== undefined) {
        if (typeof value.key !== 'string' || !MESSAGE_KEY.test(value.key)) {
          return { ok: false, code: 'invalid_key', message: `"key" must be 1 to 64 characters of A-Z a-z 0-9 _ . : -, not ${describeValue(value.key)}.`, ...namedRoom(value) }
        }
        frame.key = value.key
      }
      return { ok: true, frame }
    }
    case 'custom_event':
      if (!isObject(value.payload)) {
        return { ok: false, code: 'invalid_message', message: `A "custom_event" needs a "payload" that is a JSON object, not ${kindOf(value.payload)}.` }
      }
      return { ok: true, frame: { type, payload: value.payload as JsonObject } }
    case 'ping':
      return { ok: true, frame: { type } }
    case 'refresh':
      if (typeof value.token !== 'string' || value.token === '') {
        return { ok: false, code: 'invalid_message', message: 'A "refresh" needs a "token": the new JWT, as a string.' }
      }
      return { ok: true, frame: { type, token: value.token } }
    case 'join':
    case 'leave':
    case 'history': {
      const room = checkRoom(value)
      if (typeof room !== 'string') return room
      if (type === 'leave') return { ok: true, frame: { type, room } }
      const since = checkSince(value.since, room)
      if (typeof since === 'object') return since
      if (type === 'join') return join(value, room, since)
      const limit = value.limit ?? HISTORY_LIMIT.default
      if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < HISTORY_LIMIT.min || limit > HISTORY_LIMIT.max) {
        return { ok: false, code: 'invalid_message', message: `"limit" must be a whole number from ${HISTORY_LIMIT.min} to ${HISTORY_LIMIT.max}, not ${describeValue(limit)}.`, room }
      }
      return { ok: true, frame: since === undefined ? { type, room, limit } : { type, room, limit, since } }
    }
    default:
      return unknownType(type)
  }
}

/** The refusal of a type the server does not take (`refresh` too, on a server without identity). */
export function unknownType (type: string): Refusal {
  return { ok: false, code: 'unknown_type', message: `Unknown type ${JSON.stringify(type.length > 50 ? type.slice(0, 50) + '…' : type)}; use ${TYPE_LIST}.` }
}

type Refusal = { ok: false, code: ChatErrorCode, message: string, room?: string, ref?: ChatRef }

function join (value: Record<string, unknown>, room: string, since: number | undefined): ParsedChatFrame {
  const frame: ChatClientFrame & { type: 'join' } = since === undefined ? { type: 'join', room } : { type: 'join', room, since }
  const { epoch, latest } = value
  if (epoch !== undefined) {
    if (typeof epoch !== 'string' || !EPOCH.test(epoch)) {
      return { ok: false, code: 'invalid_epoch', message: `"epoch" must be the epoch a joined or history frame gave (1 to 64 characters of A-Z a-z 0-9 _ . : -), not ${describeValue(epoch)}.`, room }
    }
    frame.epoch = epoch
  }
  if (latest !== undefined) {
    if (typeof latest !== 'boolean') return { ok: false, code: 'invalid_message', message: `"latest" must be true or false, not ${describeValue(latest)}.`, room }
    frame.latest = latest
  }
  return { ok: true, frame }
}

/** The frame's `room` when it is a valid name, else the refusal. */
function checkRoom (value: Record<string, unknown>): string | Refusal {
  const room = value.room
  if (typeof room === 'string' && ROOM_NAME.test(room)) return room
  const message = room === undefined
    ? `A "${String(value.type)}" needs a "room": 1 to 64 characters of A-Z a-z 0-9 _ . : -.`
    : `"room" must be 1 to 64 characters of A-Z a-z 0-9 _ . : -, not ${describeValue(room)}.`
  return { ok: false, code: 'invalid_room', message, ...namedRoom(value) }
}

function checkSince (since: unknown, room: string): number | undefined | Refusal {
  if (since === undefined) return undefined
  if (typeof since === 'number' && Number.isSafeInteger(since) && since >= 0) return since
  return { ok: false, code: 'invalid_message', message: `"since" must be a whole number from 0 up (the last seq you saw), not ${describeValue(since)}.`, room }
}

/** `{ room }` when the frame named one (a short string), for the error's payload. */
function namedRoom (value: Record<string, unknown>): { room?: string } {
  return typeof value.room === 'string' && value.room.length <= 64 ? { room: value.room } : {}
}

function describeValue (value: unknown): string {
  if (typeof value === 'number') return String(value)
  if (typeof value === 'string') return JSON.stringify(value.length > 70 ? value.slice(0, 70) + '…' : value)
  return kindOf(value)
}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function kindOf (value: unknown): string {
  if (value === undefined) return 'missing'
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`
}
