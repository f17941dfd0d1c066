// Helpers shared by the chat page and the echo page. Plain ES module, no build step.
// Everything a server sends is put on the page with textContent, never parsed as HTML.

/**
 * A `?token=` on the page URL is passed on to WebSockets (query), fetches (Bearer header) and the
 * links between the pages; it is never shown on the page itself.
 */
const token = new URLSearchParams(location.search).get('token')

/** The other pages of this server keep the token: the links get it as they are on this page. */
function passTokenOn () {
  if (!token) return
  for (const link of document.querySelectorAll('a[href]')) {
    const target = new URL(link.getAttribute('href'), location.href)
    if (target.origin !== location.origin || (target.hash && target.pathname === location.pathname)) continue
    target.searchParams.set('token', token)
    link.href = target.href
  }
}
passTokenOn()

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
 * through a LAN address as well as on this machine. Without a port: the page's own origin. The
 * page's token is not in it: `withToken` adds it when connecting, so it is never shown.
 */
export function wsUrl (path, port) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:'
  // location.hostname keeps the brackets of an IPv6 address
  const host = port === undefined ? location.host : `${location.hostname}:${port}`
  return new URL(path, `${scheme}//${host}`).href
}

/** `url` with the page's token added, unless the URL brings its own. */
export function withToken (url) {
  if (!token) return url
  const parsed = new URL(url)
  if (!parsed.searchParams.has('token')) parsed.searchParams.set('token', token)
  return parsed.href
}

/** Whether the page was opened with a token (then shown as `token=•••`, never in clear). */
export const hasToken = Boolean(token)

/** `url` for showing: a token in it becomes `•••`. */
export function maskToken (url) {
  return url.replace(/([?&]token=)[^&#]*/g, '$1•••')
}

/**
 * Asks the server why a WebSocket to `url` could not open: a browser never sees the HTTP status of
 * a refused upgrade. A plain GET on the same path with `?check` runs the upgrade's checks without
 * upgrading. The page's origin goes along, since a browser sends none on a same-origin GET.
 * Resolves to `{ status, error, message }`; status 0 when no answer could be read.
 */
export async function whyRefused (url) {
  const check = new URL(withToken(url))
  check.protocol = check.protocol === 'wss:' ? 'https:' : 'http:'
  check.searchParams.set('check', '')
  check.searchParams.set('origin', location.origin)
  try {
    const res = await fetch(check, { cache: 'no-store' })
    const body = await res.json().catch(() => ({}))
    return { status: res.status, error: body.error, message: body.message ?? `HTTP ${res.status}` }
  } catch {
    return { status: 0, message: 'no answer from the server (is it running, and does it allow this page\'s origin?)' }
  }
}

/** Bytes of `text` in UTF-8, what the server and a device count (`text.length` counts UTF-16 units). */
export function utf8Length (text) {
  return new TextEncoder().encode(text).length
}

export async function fetchJson (path) {
  const headers = token ? { authorization: `Bearer ${token}` } : {}
  const res = await fetch(path, { headers, cache: 'no-store' })
  if (!res.ok) throw Object.assign(new Error(`${path} answered HTTP ${res.status}`), { status: res.status })
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
  1013: 'try again later',
  4401: 'token expired'
}

export function describeClose (code, reason) {
  const meaning = CLOSE_CODES[code] ?? 'closed'
  return reason && reason !== meaning ? `${code} ${meaning}: ${reason}` : `${code} ${meaning}`
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

/**
 * The bytes typed in a hex field, or null when they do not parse: then `error` says why and the
 * field is marked invalid until the next good value.
 */
export function hexField (input, error) {
  try {
    const bytes = parseHex(input.value)
    error.textContent = ''
    input.removeAttribute('aria-invalid')
    return bytes
  } catch (err) {
    error.textContent = err.message
    input.setAttribute('aria-invalid', 'true')
    return null
  }
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
