// The shapes echohub sends, defined once: the server, the tests and the README follow these.
import { isoNow } from '../format.js'
import type { ChatUser } from '../chat/adapter.js'
import type { Controls } from '../lab/controls.js'

/** Builds the echo server's reply to a text message, keys in the SPEC's order. */
export interface EchoEnvelope {
  type: 'echo'
  original_message: string
  timestamp: string
  client: string
  message_id: number
  server_info: string
}

/** The greeting an echo server with `welcome` sends on connect. */
export interface EchoWelcome {
  type: 'welcome'
  message: string
  timestamp: string
  client_id: number
  /** With identity on: who the client is. */
  user?: ChatUser
  server_info: string
  /** The device lab's controls in force on this connection, when any were given. */
  controls?: Controls
  /** The subprotocol chosen for this connection, when one was. */
  subprotocol?: string
}

/**
 * Returns the writer of echo envelopes for one endpoint: the reply to a text message, as the bytes
 * of `JSON.stringify({ type, original_message, timestamp, client, message_id, server_info })`.
 * It is the hot path of the echo server. The constant parts are escaped once here, and text that
 * needs no JSON escape (no quote, backslash or control character: ws has already checked that it
 * is UTF-8) is copied into the reply byte for byte, never decoded to a string.
 */
export function echoEnvelopeWriter (serverInfo: string): (data: Buffer, peer: string, messageId: number) => Buffer {
  const tail = ',"server_info":' + JSON.stringify(serverInfo) + '}'
  // `peer` comes from formatPeer: digits, hex letters, `.:[]%` and interface names, nothing JSON escapes.
  return (data, peer, messageId) => {
    const rest = '","timestamp":"' + isoNow() + '","client":"' + peer + '","message_id":' + messageId + tail
    if (needsJsonEscape(data)) return Buffer.from(ENVELOPE_HEAD + JSON.stringify(data.toString()).slice(1) + rest.slice(1))
    const restStart = ENVELOPE_HEAD_BYTES.length + data.length
    const out = Buffer.allocUnsafe(restStart + Buffer.byteLength(rest))
    ENVELOPE_HEAD_BYTES.copy(out, 0)
    data.copy(out, ENVELOPE_HEAD_BYTES.length)
    out.write(rest, restStart)
    return out
  }
}

/** An envelope up to the opening quote of `original_message`. */
const ENVELOPE_HEAD = '{"type":"echo","original_message":"'
const ENVELOPE_HEAD_BYTES = Buffer.from(ENVELOPE_HEAD)
const HIGH_BITS = 0x80808080

/**
 * Whether UTF-8 text needs escapes in a JSON string: it holds a quote, a backslash or a control
 * character (below 0x20). Every other byte, multi-byte characters included, stands for itself.
 * Long text is read four bytes at a time: a word holds such a byte when one of the three tests of
 * "Bit Twiddling Hacks" (a byte below 0x20; a byte equal to 0x22; to 0x5c) sets a high bit.
 */
export function needsJsonEscape (data: Uint8Array): boolean {
  const n = data.length
  let i = 0
  if (n >= 32) {
    const head = (4 - (data.byteOffset & 3)) & 3 // bytes before the first aligned word
    for (; i < head; i++) if (escaped(data[i]!)) return true
    const words = (n - head) >> 2
    const view = new Uint32Array(data.buffer, data.byteOffset + head, words)
    for (let w = 0; w < words; w++) {
      const x = view[w]!
      const quote = x ^ 0x22222222
      const backslash = x ^ 0x5c5c5c5c
      if ((((x - 0x20202020) & ~x) | ((quote - 0x01010101) & ~quote) | ((backslash - 0x01010101) & ~backslash)) & HIGH_BITS) return true
    }
    i = head + words * 4
  }
  for (; i < n; i++) if (escaped(data[i]!)) return true
  return false
}

function escaped (byte: number): boolean {
  return byte < 0x20 || byte === 0x22 || byte === 0x5c
}

export function echoWelcome (message: string, clientId: number, serverInfo: string, user?: ChatUser, controls?: Controls, subprotocol = ''): string {
  const frame: EchoWelcome = user === undefined
    ? { type: 'welcome', message, timestamp: isoNow(), client_id: clientId, server_info: serverInfo }
    : { type: 'welcome', message, timestamp: isoNow(), client_id: clientId, user, server_info: serverInfo }
  if (controls !== undefined) frame.controls = controls
  if (subprotocol !== '') frame.subprotocol = subprotocol
  return JSON.stringify(frame)
}
