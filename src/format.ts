// Small formatters shared by the wire messages and the logs.

/**
 * `address:port` as the SPEC shows a peer: IPv4-mapped IPv6 as plain IPv4, other IPv6 in brackets.
 * Without a port (an address a proxy forwarded) just the address.
 */
export function formatPeer (address: string | undefined, port: number | undefined): string {
  const host = plainAddress(address)
  if (port === undefined) return host
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}

/** The client's address without the `::ffff:` prefix Node gives IPv4 peers of a dual-stack socket. */
export function plainAddress (address: string | undefined): string {
  if (address === undefined) return 'unknown'
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address
}

let lastMs = 0
let lastIso = ''
/** `new Date().toISOString()`, computed at most once per millisecond: it is on every echo's path. */
export function isoNow (): string {
  const now = Date.now()
  if (now !== lastMs) {
    lastMs = now
    lastIso = new Date(now).toISOString()
  }
  return lastIso
}

// C0 controls, DEL and C1 controls, plus the Unicode line separators that break a log line.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g
const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' }

/** First `max` characters of a message for a log line, control characters escaped. */
export function preview (text: string, max = 200): string {
  const head = text.length > max ? text.slice(0, max) : text
  const escaped = head.replace(CONTROL, (c) => NAMED[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
  return text.length > max ? `${escaped}… (${text.length} chars)` : escaped
}

/** Hex dump of the first `max` bytes of a binary frame, for the debug log. */
export function hexPreview (data: Buffer, max = 64): string {
  const hex = data.subarray(0, max).toString('hex').replace(/(..)(?!$)/g, '$1 ')
  return data.length > max ? `${hex} … (${data.length} bytes)` : hex
}

/**
 * Whether `log` writes at `level`, so a hot path builds a log line only when it is kept.
 * pino loggers say so themselves; a logger that cannot (Fastify's no-op one) writes nothing.
 */
export function logsAt (log: object, level: 'info' | 'debug'): boolean {
  const l = log as { isLevelEnabled?: (level: string) => boolean }
  return typeof l.isLevelEnabled === 'function' && l.isLevelEnabled(level)
}

/** The close reason (and log line) for a message over a size limit: it names the size and the limit. */
export function oversizeReason (bytes: number, limit: number): string {
  return `message of ${bytes} bytes over the ${limit}-byte limit`
}
