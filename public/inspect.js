// The inspector: the process's live connections (from the WebSocket `inspect/ws`, on this page's
// own origin) and the frames of the one picked, both ways, with buttons that act on it. Everything
// the server sends is put on the page with textContent, never parsed as HTML.
import { $, FrameLog, clock, describeClose, el, formatBytes, hexField, whyRefused, withToken, wsUrl } from './common.js'

const view = {
  state: $('#state'),
  detail: $('#state-detail'),
  rows: $('#connections tbody'),
  empty: $('#empty'),
  total: $('#total'),
  dropped: $('#dropped'),
  watching: $('#watching'),
  controls: $('#controls'),
  textForm: $('#text-form'),
  text: $('#text'),
  binaryForm: $('#binary-form'),
  hex: $('#hex'),
  hexError: $('#hex-error'),
  closeForm: $('#close-form'),
  closeCode: $('#close-code'),
  closeReason: $('#close-reason'),
  ping: $('#ping'),
  drop: $('#drop'),
  result: $('#result'),
  log: $('#log'),
  clearLog: $('#clear-log')
}
const log = new FrameLog(view.log, 1000)

let socket = null
let watching = null
let retry = 1000

function setState (state, detail = '') {
  view.state.dataset.state = state
  view.state.textContent = { connecting: 'connecting…', open: 'connected', closed: 'disconnected', refused: 'refused' }[state]
  view.detail.textContent = detail
}

function connect () {
  setState('connecting')
  // `inspect/ws` relative to this page, so a prefix moves both together. The page's `?token=` goes
  // along, as on the other pages.
  const url = wsUrl(new URL('inspect/ws', location.href).pathname)
  const ws = new WebSocket(withToken(url))
  socket = ws
  let opened = false
  ws.addEventListener('open', () => {
    opened = true
    retry = 1000
    setState('open')
    if (watching !== null) command({ type: 'watch', id: watching })
  })
  ws.addEventListener('message', (event) => {
    let msg
    try {
      msg = JSON.parse(event.data)
    } catch {
      return
    }
    if (msg.type === 'connections') showConnections(msg)
    else if (msg.type === 'frame') showFrame(msg)
    else if (msg.type === 'watching') showWatching(msg)
    else if (msg.type === 'result') showResult(msg)
    else if (msg.type === 'error') view.result.textContent = msg.message
  })
  ws.addEventListener('close', (event) => {
    if (opened) scheduleRetry(describeClose(event.code, event.reason))
    else explainRefusal(url)
  })
}

/**
 * A connection that never opened: ask the server why (a browser never sees a refused upgrade's
 * status). Without the right token, without admin rights or from a host or origin the inspector
 * does not serve, trying again cannot help: the page stops and shows the server's reason.
 */
async function explainRefusal (url) {
  const reason = await whyRefused(url)
  if (reason.status === 400 || reason.status === 401 || reason.status === 403) {
    setState('refused', `${reason.message} (HTTP ${reason.status}; reload the page to try again)`)
    return
  }
  // 426: the checks passed over plain HTTP (the upgrade failed some other way).
  scheduleRetry(reason.status === 426 || reason.status === 200 ? 'could not connect' : reason.message)
}

function scheduleRetry (why) {
  setState('closed', `${why}; retrying in ${retry / 1000} s`)
  setTimeout(connect, retry)
  retry = Math.min(retry * 2, 30000)
}

function command (msg) {
  if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify(msg))
}

function act (action, body) {
  if (watching === null) return
  view.result.textContent = ''
  command({ type: 'action', id: watching, action, ...(body === undefined ? {} : { body }) })
}

function describeControls (controls) {
  const entries = Object.entries(controls ?? {})
  return entries.length === 0 ? '–' : entries.map(([k, v]) => `${k}=${v}`).join(' ')
}

function showConnections (msg) {
  view.total.textContent = msg.total > msg.connections.length ? `${msg.connections.length} of ${msg.total} shown` : `${msg.total} open`
  view.empty.hidden = msg.total > 0
  view.dropped.textContent = msg.dropped > 0 ? `This page lost ${msg.dropped} events by falling behind; the clients were not slowed.` : ''
  const rows = msg.connections.map((c) => {
    const row = el('tr')
    row.dataset.id = String(c.id)
    row.setAttribute('aria-selected', String(c.id === watching))
    const watch = el('button', 'watch', String(c.id))
    watch.type = 'button'
    watch.title = `Watch connection ${c.id}`
    const idCell = el('td')
    idCell.append(watch)
    row.append(
      idCell,
      el('td', '', c.endpoint),
      el('td', 'mono nowrap', c.client),
      el('td', 'mono', c.path),
      el('td', 'mono', describeControls(c.controls)),
      el('td', 'nowrap', `${c.messages.received} / ${c.messages.sent}`),
      el('td', '', `${formatBytes(c.bytes.received)} / ${formatBytes(c.bytes.sent)}`),
      el('td', 'nowrap', c.rtt_ms === null ? '–' : `${c.rtt_ms} ms`)
    )
    return row
  })
  view.rows.replaceChildren(...rows)
}

function showWatching (msg) {
  watching = msg.id
  view.controls.hidden = watching === null
  view.watching.textContent = watching === null ? (msg.message ?? 'Pick a connection on the left to see its frames.') : `Connection ${watching}`
  for (const row of view.rows.children) row.setAttribute('aria-selected', String(Number(row.dataset.id) === watching))
  if (watching !== null) log.add({ dir: 'info', type: 'watch', summary: `watching connection ${watching}; frames show from now on` })
}

function showFrame (msg) {
  if (msg.id !== watching) return
  const time = clock(new Date(msg.time))
  const size = `${msg.size} byte${msg.size === 1 ? '' : 's'}${msg.fin ? '' : ', more follows'}`
  let summary = size
  if (msg.opcode === 'close') summary = msg.code === undefined ? 'close' : describeClose(msg.code, msg.text)
  const raw = msg.text ?? (msg.hex ?? '').replace(/(..)(?!$)/g, '$1 ')
  const item = log.add({ dir: msg.dir, type: msg.opcode, summary, raw: raw === '' ? undefined : raw + (msg.truncated ? ` … (first 1024 of ${msg.size} bytes)` : ''), tone: msg.opcode === 'close' ? 'close' : undefined })
  item.dataset.dir = msg.dir
  item.querySelector('.entry-time').textContent = time
}

function showResult (msg) {
  view.result.textContent = msg.ok ? `${msg.action}: done` : `${msg.action}: ${msg.message}`
}

view.rows.addEventListener('click', (event) => {
  const row = event.target.closest('tr')
  if (!row) return
  log.clear()
  command({ type: 'watch', id: Number(row.dataset.id) })
})
view.textForm.addEventListener('submit', (event) => {
  event.preventDefault()
  act('send', { text: view.text.value })
})
view.binaryForm.addEventListener('submit', (event) => {
  event.preventDefault()
  const bytes = hexField(view.hex, view.hexError)
  if (bytes === null) return
  act('send', { binary: btoa(String.fromCharCode(...bytes)) })
})
view.closeForm.addEventListener('submit', (event) => {
  event.preventDefault()
  act('close', { code: Number(view.closeCode.value), reason: view.closeReason.value })
})
view.ping.addEventListener('click', () => act('ping'))
view.drop.addEventListener('click', () => act('drop'))
view.clearLog.addEventListener('click', () => log.clear())

connect()
