// The shapes echohub sends, defined once: the server, the tests and the README follow these.
import { isoNow } from './format.js'

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
  server_info: string
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

export function echoWelcome (message: string, clientId: number, serverInfo: string): string {
  const frame: EchoWelcome = { type: 'welcome', message, timestamp: isoNow(), client_id: clientId, server_info: serverInfo }
  return JSON.stringify(frame)
}
