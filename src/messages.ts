// The shapes echohub sends, defined once: the server, the tests and the README follow these.
import { isoNow } from './format.js'
import type { ChatUser } from './chat/adapter.js'
import type { Controls } from './lab/controls.js'

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
 * Returns a serializer for echo envelopes of one endpoint. It is the hot path of the echo server,
 * so the constant parts are escaped once here and the result equals
 * `JSON.stringify({ type, original_message, timestamp, client, message_id, server_info })`.
 */
export function echoEnvelopeSerializer (serverInfo: string): (text: string, peer: string, messageId: number) => string {
  const tail = ',"server_info":' + JSON.stringify(serverInfo) + '}'
  // `peer` comes from formatPeer: digits, hex letters, `.:[]%` and interface names, nothing JSON escapes.
  return (text, peer, messageId) =>
    '{"type":"echo","original_message":' + JSON.stringify(text) +
    ',"timestamp":"' + isoNow() + '","client":"' + peer +
    '","message_id":' + messageId + tail
}

export function echoWelcome (message: string, clientId: number, serverInfo: string, user?: ChatUser, controls?: Controls, subprotocol = ''): string {
  const frame: EchoWelcome = user === undefined
    ? { type: 'welcome', message, timestamp: isoNow(), client_id: clientId, server_info: serverInfo }
    : { type: 'welcome', message, timestamp: isoNow(), client_id: clientId, user, server_info: serverInfo }
  if (controls !== undefined) frame.controls = controls
  if (subprotocol !== '') frame.subprotocol = subprotocol
  return JSON.stringify(frame)
}
