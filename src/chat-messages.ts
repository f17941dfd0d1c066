// The chat protocol, defined once: the frames each side sends, the error codes, and the builders
// the chat plugin sends with. The tests and the README follow these shapes.
import { isoNow } from './format.js'

/** Any value JSON can carry. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue }
export type JsonObject = { [key: string]: JsonValue }

/** Client to server. */
export type ChatClientFrame =
  | { type: 'message', payload: JsonValue }
  | { type: 'custom_event', payload: JsonObject }
  | { type: 'ping' }

/** Server to client. Keys are sent in the order written here. */
export interface ChatWelcome {
  type: 'welcome'
  payload: { client_id: number, message: string, server_info: string }
  timestamp: string
}
export interface ChatMessage {
  type: 'message'
  payload: JsonValue
  /** `client_id` of the sender. */
  from: number
  /** Sequence number of the message, counted per chat endpoint from 1. */
  id: number
  timestamp: string
}
export interface ChatCustomEventReply {
  type: 'custom_event'
  payload: JsonValue
  timestamp: string
}
export interface ChatPong {
  type: 'pong'
  timestamp: string
}
export interface ChatError {
  type: 'error'
  payload: { code: ChatErrorCode, message: string }
}
export type ChatServerFrame = ChatWelcome | ChatMessage | ChatCustomEventReply | ChatPong | ChatError

export const CHAT_CLIENT_TYPES = ['message', 'custom_event', 'ping'] as const

/**
 * Why the server refused a frame. The first five are the SPEC's; `custom_event_failed` is sent when
 * a library user's custom event handler throws (the SPEC is silent on that case).
 */
export const CHAT_ERROR_CODES = [
  'invalid_json',
  'invalid_message',
  'unknown_type',
  'binary_not_supported',
  'rate_limited',
  'custom_event_failed'
] as const
export type ChatErrorCode = (typeof CHAT_ERROR_CODES)[number]

/** The default reply to a custom event, as the SPEC says. */
export function customEventAck (data: JsonObject): { status: 'received', data: JsonObject } {
  return { status: 'received', data }
}

export function chatWelcome (clientId: number, message: string, serverInfo: string): string {
  const frame: ChatWelcome = { type: 'welcome', payload: { client_id: clientId, message, server_info: serverInfo }, timestamp: isoNow() }
  return JSON.stringify(frame)
}

/**
 * A broadcast message. `payloadJson` is the payload already serialized: a broadcast is built once
 * and the same bytes go to every client. Equals `JSON.stringify({ type, payload, from, id, timestamp })`.
 */
export function chatMessage (payloadJson: string, from: number, id: number): string {
  return '{"type":"message","payload":' + payloadJson + ',"from":' + from + ',"id":' + id + ',"timestamp":"' + isoNow() + '"}'
}

/** Throws if `payload` cannot be serialized (a BigInt, a cycle), like JSON.stringify. */
export function chatCustomEventReply (payload: JsonValue): string {
  const frame: ChatCustomEventReply = { type: 'custom_event', payload, timestamp: isoNow() }
  return JSON.stringify(frame)
}

export function chatPong (): string {
  return '{"type":"pong","timestamp":"' + isoNow() + '"}'
}

export function chatError (code: ChatErrorCode, message: string): string {
  const frame: ChatError = { type: 'error', payload: { code, message } }
  return JSON.stringify(frame)
}

/** A parsed frame that passed the shape check, or the error to answer it with. */
export type ParsedChatFrame =
  | { ok: true, frame: ChatClientFrame }
  | { ok: false, code: ChatErrorCode, message: string }

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
  const type = value.type
  if (type === undefined) return { ok: false, code: 'invalid_message', message: 'The message has no "type"; use "message", "custom_event" or "ping".' }
  if (typeof type !== 'string') return { ok: false, code: 'invalid_message', message: `"type" must be a string, not ${kindOf(type)}.` }
  switch (type) {
    case 'message':
      if (!Object.hasOwn(value, 'payload')) {
        return { ok: false, code: 'invalid_message', message: 'A "message" needs a "payload" (any JSON value) to broadcast.' }
      }
      return { ok: true, frame: { type, payload: value.payload as JsonValue } }
    case 'custom_event':
      if (!isObject(value.payload)) {
        return { ok: false, code: 'invalid_message', message: `A "custom_event" needs a "payload" that is a JSON object, not ${kindOf(value.payload)}.` }
      }
      return { ok: true, frame: { type, payload: value.payload as JsonObject } }
    case 'ping':
      return { ok: true, frame: { type } }
    default:
      return { ok: false, code: 'unknown_type', message: `Unknown type ${JSON.stringify(type.length > 50 ? type.slice(0, 50) + '…' : type)}; use "message", "custom_event" or "ping".` }
  }
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
