// Helpers shared by the chat page and the echo page. Plain ES module, no build step.
// Everything a server sends is put on the page with textContent, never parsed as HTML.

/** A `?token=` on the page URL is passed on to WebSockets (query) and fetches (Bearer header). */
const token = new URLSearchParams(location.search).get('token')

/** Used when `api/servers` cannot be read (page opened from elsewhere, older server). */
export const DEFAULT_SERVERS = Object.freeze({
  chat: { name: 'chat', path: '/ws' },
  stats: { path: '/stats' },
  echo: [
    { name: 'echo', port: 8765, path: '/', raw_path: '/raw', welcome: false },
    { name: 'echo-debug', port: 8766, path: '/', raw_path: '/raw', welcome: true }
  ]
})

export function $ (selector) {
  const found = document.querySelector(selector)
  if (!found) throw new Error(`page is missing ${selector}`)
  return found
}

/**
 * A ws:// (or wss:// under https) URL on the host the page was loaded from, so the page works
 * through a LAN address as well as on this machine. Without a port: the page's own origin.
 */
export function wsUrl (path, port) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:'
  // location.hostname keeps the brackets of an IPv6 address
  const host = port === undefined ? location.host : `${location.hostname}:${port}`
  const url = new URL(path, `${scheme}//${host}`)
  if (token) url.searchParams.set('token', token)
  return url.href
}

export async function fetchJson (path) {
  const headers = token ? { authorization: `Bearer ${token}` } : {}
  const res = await fetch(path, { headers, cache: 'no-store' })
  if (!res.ok) throw new Error(`${path} answered HTTP ${res.status}`)
  return res.json()
}

/** What the ui plugin says about this process's servers (`GET api/servers`), or the defaults. */
export async function loadServers () {
  try {
    const servers = await fetchJson('api/servers')
    return {
      chat: { ...DEFAULT_SERVERS.chat, ...servers.chat },
      stats: { ...DEFAULT_SERVERS.stats, ...servers.stats },
      echo: Array.isArray(servers.echo) ? servers.echo : DEFAULT_SERVERS.echo
    }
  } catch {
    return DEFAULT_SERVERS
  }
}

/** Creates an element; `text` goes in as textContent. */
export function el (tag, className, text) {
  const node = document.createElement(tag)
  if (className) node.className = className
  if (text !== undefined) node.textContent = text
  return node
}

const CLOSE_CODES = {
  1000: 'normal closure',
  1001: 'going away (server shutting down or page leaving)',
  1002: 'protocol error',
  1003: 'unsupported data',
  1005: 'no status code',
  1006: 'connection lost without a close frame',
  1007: 'invalid data (not UTF-8)',
  1008: 'policy violation',
  1009: 'message too big',
  1011: 'server error',
  1012: 'service restart',
  1013: 'try again later'
}

export function describeClose (code, reason) {
  const meaning = CLOSE_CODES[code] ?? 'closed'
  return reason ? `${code} ${meaning}: ${reason}` : `${code} ${meaning}`
}

/** Time of day with milliseconds, for log lines. */
export function clock (date = new Date()) {
  return date.toTimeString().slice(0, 8) + '.' + String(date.getMilliseconds()).padStart(3, '0')
}

export function formatBytes (n) {
  if (typeof n !== 'number') return '–'
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`
  return `${(n / 1024 / 1024).toFixed(1)} MiB`
}

export function formatDuration (seconds) {
  if (typeof seconds !== 'number') return '–'
  const s = Math.floor(seconds)
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const rest = s % 60
  if (h > 0) return `${h} h ${m} min`
  if (m > 0) return `${m} min ${rest} s`
  return `${rest} s`
}

export function toHex (bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ')
}

/**
 * Parses hex like `de ad be ef`, `DEADBEEF`, `0xde,0xad` or `de:ad`.
 * Returns a Uint8Array, or throws an Error whose message says what is wrong.
 */
export function parseHex (text) {
  const digits = text.replace(/0x/gi, '').replace(/[\s,:;-]/g, '')
  if (!/^[0-9a-f]*$/i.test(digits)) throw new Error('Only hex digits (0-9, a-f), spaces, commas and colons are allowed.')
  if (digits.length % 2 !== 0) throw new Error(`Hex needs an even number of digits; this has ${digits.length}.`)
  const bytes = new Uint8Array(digits.length / 2)
  for (let i = 0; i < bytes.length; i++) bytes[i] = Number.parseInt(digits.slice(i * 2, i * 2 + 2), 16)
  return bytes
}

export function sameBytes (a, b) {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/**
 * A bounded list of frames. Each entry: direction (`in`, `out`, `info`), a type badge, a one-line
 * summary and optionally the raw frame. All as text.
 */
export class FrameLog {
  constructor (list, max = 500) {
    this.list = list
    this.max = max
  }

  add ({ dir, type, summary, raw, tone }) {
    const atBottom = this.list.scrollTop + this.list.clientHeight >= this.list.scrollHeight - 8
    const item = el('li', `entry ${dir}${tone ? ' ' + tone : ''}`)
    item.dataset.type = type
    const head = el('div', 'entry-head')
    head.append(
      el('time', 'entry-time', clock()),
      el('span', 'entry-dir', dir === 'in' ? '↓ in' : dir === 'out' ? '↑ out' : '•'),
      el('span', 'entry-type', type),
      el('span', 'entry-summary', summary)
    )
    item.append(head)
    if (raw !== undefined) item.append(el('pre', 'entry-raw', raw))
    this.list.append(item)
    while (this.list.childElementCount > this.max) this.list.firstElementChild.remove()
    if (atBottom) this.list.scrollTop = this.list.scrollHeight
    return item
  }

  clear () {
    this.list.replaceChildren()
  }
}
