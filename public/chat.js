// The chat page, on echohub's own client (client.js): one connection to the chat endpoint that
// reconnects by itself with exponential backoff, rejoins its rooms and resends what was not acked;
// forms to send messages, custom events and raw frames, a log of every frame (as text), and
// figures polled from /stats.
import { connect as connectChat } from './client.js'
import { $, FrameLog, describeClose, fetchJson, formatBytes, formatDuration, loadServers, whyRefused, withToken, wsUrl } from './common.js'
import { Rooms } from './rooms.js'

const STATS_EVERY_MS = 2000

const view = {
  state: $('#state'),
  detail: $('#state-detail'),
  url: $('#url'),
  clientId: $('#client-id'),
  ping: $('#ping'),
  reconnectNow: $('#reconnect-now'),
  messageForm: $('#message-form'),
  message: $('#message'),
  send: $('#send'),
  eventForm: $('#event-form'),
  eventJson: $('#event-json'),
  eventError: $('#event-error'),
  sendEvent: $('#send-event'),
  rawForm: $('#raw-form'),
  rawText: $('#raw-text'),
  sendRaw: $('#send-raw'),
  statsState: $('#stats-state'),
  statsLimits: $('#stats-limits'),
  log: $('#log'),
  showRaw: $('#show-raw'),
  clearLog: $('#clear-log')
}
const log = new FrameLog(view.log)
/** client_id -> user ({ id, name? }), learned from frames when the server has identity on. */
const users = new Map()
/** A member as the rooms panel lists it: its user's name (or id), else its client id. */
const memberLabel = (id) => {
  const user = users.get(id)
  return user ? (user.name ?? user.id) : String(id)
}

const servers = await loadServers()
const url = wsUrl(servers.chat.path)
view.url.textContent = url
// The page's token rides in the URL (?token=), as before; it is never shown.
const chat = connectChat(withToken(url))
const rooms = new Rooms(chat, {
  form: $('#room-form'),
  input: $('#room-name'),
  error: $('#room-error'),
  list: $('#rooms'),
  target: $('#message-target')
}, memberLabel)

let clientId = null
let countdownTimer = 0
let pingSentAt = 0
/** Text the raw form is sending, so the log shows it as raw. */
let rawText = null

const STATE_LABELS = { connecting: 'connecting…', open: 'connected', waiting: 'disconnected', refused: 'refused' }

function setState (state, detail = '') {
  view.state.dataset.state = state
  view.state.textContent = STATE_LABELS[state]
  view.detail.textContent = detail
  document.body.dataset.state = state
  const open = state === 'open'
  for (const button of [view.send, view.sendEvent, view.sendRaw, view.ping, $('#join-room')]) button.disabled = !open
  view.reconnectNow.hidden = state !== 'waiting' && state !== 'refused'
}

chat.on('state', (s) => {
  clearInterval(countdownTimer)
  switch (s.state) {
    case 'connecting':
      setState('connecting', s.attempt > 0 ? `attempt ${s.attempt + 1}` : '')
      break
    case 'open':
      setState('open', '')
      break
    case 'waiting': {
      clientId = null
      view.clientId.textContent = '–'
      const why = describeClose(s.code, s.reason)
      log.add({ dir: 'info', type: 'close', summary: s.opened ? why : `could not connect (${why})`, tone: 'bad' })
      if (s.opened) countdown(s.delay)
      else explainRefusal(s.delay)
      break
    }
    case 'stopped':
      clientId = null
      view.clientId.textContent = '–'
      if (s.code === 4401) {
        // The same token would be refused again: the client stopped; say so.
        log.add({ dir: 'info', type: 'close', summary: describeClose(s.code, s.reason), tone: 'bad' })
        setState('waiting', 'token expired: open this page with a new ?token= to connect again')
      }
      break
  }
})

/** Counts down to the client's next attempt, with the reason first when there is one. */
function countdown (delay, reason = '') {
  const retryAt = Date.now() + delay
  const tick = () => setState('waiting', `${reason ? reason + '; ' : ''}reconnecting in ${Math.max(0, Math.ceil((retryAt - Date.now()) / 1000))} s`)
  tick()
  clearInterval(countdownTimer)
  countdownTimer = setInterval(tick, 1000)
}

/**
 * A connection that never opened: ask the server why. A request the server refuses as it is (400),
 * without the right credentials (401) or from an origin not on the list (403) would be refused
 * again, so the page stops the client and says so; otherwise the client retries, with the reason
 * beside the countdown.
 */
async function explainRefusal (delay) {
  const asked = Date.now()
  countdown(delay)
  const reason = await whyRefused(url)
  if (chat.state.state !== 'waiting') return // a new attempt began meanwhile (Reconnect now, back online)
  if (reason.status !== 200) log.add({ dir: 'info', type: 'refused', summary: `${reason.status === 0 ? '' : `HTTP ${reason.status}: `}${reason.message}`, tone: 'bad' })
  if (reason.status === 400 || reason.status === 401 || reason.status === 403) {
    chat.stop(reason.message)
    clearInterval(countdownTimer)
    setState('refused', reason.message)
    return
  }
  countdown(Math.max(0, delay - (Date.now() - asked)), reason.status === 200 ? '' : reason.message)
}

// Every frame both ways goes to the log as it crossed the socket (repeats included: the client
// drops those before its message events).
chat.on('frame', (f) => {
  if (f.direction === 'in') receive(f.text)
  else logOut(f.text)
})

function logOut (text) {
  if (text === rawText) {
    rawText = null
    log.add({ dir: 'out', type: 'raw', summary: text.length > 120 ? text.slice(0, 120) + '…' : text, raw: text })
    return
  }
  const frame = JSON.parse(text)
  log.add({ dir: 'out', type: frame.type, summary: summarizeOut(frame), raw: text })
}

function summarizeOut (frame) {
  if (typeof frame === 'string') return frame.length > 120 ? frame.slice(0, 120) + '…' : frame
  if (frame.type === 'message') return (frame.room ? `[${frame.room}] ` : '') + payloadText(frame.payload)
  if (frame.type === 'join' || frame.type === 'leave') return frame.room + (frame.since !== undefined ? ` since ${frame.since}` : '')
  if (frame.type === 'custom_event') return JSON.stringify(frame.payload)
  return ''
}

function payloadText (payload) {
  return typeof payload === 'string' ? payload : JSON.stringify(payload)
}

/** Who sent a message: you, the server, the sender's name (identity on), or its client id. */
function sender (frame) {
  if (frame.from === 0) return 'server'
  if (frame.from === clientId) return 'you'
  if (frame.user) users.set(frame.from, frame.user)
  const user = users.get(frame.from)
  return user ? (user.name ?? user.id) : 'client ' + frame.from
}

function messageSummary (frame) {
  const who = sender(frame)
  return `${frame.room ? '[' + frame.room + '] ' : ''}${who}: ${payloadText(frame.payload)}`
}

function receive (data) {
  if (typeof data !== 'string') {
    log.add({ dir: 'in', type: 'binary', summary: `${data.byteLength ?? data.size} bytes (the chat server sends only text)`, tone: 'bad' })
    return
  }
  let frame
  try {
    frame = JSON.parse(data)
  } catch {
    log.add({ dir: 'in', type: 'text', summary: 'not JSON', raw: data, tone: 'bad' })
    return
  }
  const type = typeof frame?.type === 'string' ? frame.type : '?'
  let summary = ''
  let tone
  switch (type) {
    case 'welcome':
      clientId = frame.payload?.client_id ?? null
      users.clear()
      if (frame.payload?.user) users.set(clientId, frame.payload.user)
      view.clientId.textContent = clientId === null ? '–' : frame.payload?.user ? `${clientId} (${memberLabel(clientId)})` : String(clientId)
      summary = `you are ${frame.payload?.user ? memberLabel(clientId) + ', ' : ''}client ${clientId}${frame.payload?.message ? ' — ' + frame.payload.message : ''}`
      break
    case 'message':
      summary = messageSummary(frame)
      tone = frame.from === clientId ? 'mine' : undefined
      break
    case 'joined':
      for (const [id, user] of Object.entries(frame.payload?.users ?? {})) users.set(Number(id), user)
      summary = rooms.summary(frame)
      log.add({ dir: 'in', type, summary, raw: data })
      // The messages missed while away, each shown as it would have been live.
      for (const message of frame.payload?.history ?? []) {
        log.add({ dir: 'in', type: 'message', summary: `${messageSummary(message)} (resumed)`, raw: JSON.stringify(message) })
      }
      return
    case 'presence':
      if (frame.payload?.user) users.set(frame.payload.client_id, frame.payload.user)
      summary = rooms.summary(frame)
      break
    case 'left':
    case 'reset':
      summary = rooms.summary(frame)
      break
    case 'ack':
      summary = `${frame.payload?.duplicate ? 'already stored (a retry)' : 'stored'}: id ${frame.payload?.id}${typeof frame.payload?.seq === 'number' ? ', seq ' + frame.payload.seq : ''}`
      break
    case 'refreshed':
      summary = frame.exp === null ? 'token refreshed' : `token refreshed, valid until ${new Date(frame.exp * 1000).toLocaleTimeString()}`
      break
    case 'history':
      summary = `${frame.room}: ${frame.payload?.length ?? 0} stored messages${frame.more ? ' (more kept)' : ''}`
      break
    case 'custom_event':
      summary = `reply: ${JSON.stringify(frame.payload)}`
      break
    case 'pong':
      summary = pingSentAt ? `round trip ${Date.now() - pingSentAt} ms` : ''
      pingSentAt = 0
      break
    case 'error':
      summary = rooms.summary(frame) ?? `${frame.payload?.code}: ${frame.payload?.message}`
      tone = 'bad'
      break
  }
  log.add({ dir: 'in', type, summary, raw: data, tone })
}

view.messageForm.addEventListener('submit', (event) => {
  event.preventDefault()
  const text = view.message.value
  if (text.trim() === '') return
  if (chat.state.state !== 'open') return
  const room = rooms.target()
  view.message.value = ''
  view.message.focus()
  // Acked, or kept and sent again after a reconnect; a refusal is in the log as the server's error.
  chat.send(room, text).catch((err) => {
    if (err.code === 'timeout' || err.code === 'closed') log.add({ dir: 'info', type: 'error', summary: `not sent (${err.code}): ${text}`, tone: 'bad' })
  })
})

view.eventForm.addEventListener('submit', (event) => {
  event.preventDefault()
  let payload
  try {
    payload = JSON.parse(view.eventJson.value)
  } catch (err) {
    return showEventError(`That is not valid JSON: ${err.message}`)
  }
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) {
    return showEventError('The payload must be a JSON object, like {"action": "hello"}.')
  }
  showEventError('')
  chat.customEvent(payload).catch(() => {}) // the reply, or the error, is in the log
})

view.eventJson.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
    event.preventDefault()
    view.eventForm.requestSubmit()
  }
})

function showEventError (message) {
  view.eventError.textContent = message
  view.eventJson.setAttribute('aria-invalid', message ? 'true' : 'false')
}

view.rawForm.addEventListener('submit', (event) => {
  event.preventDefault()
  rawText = view.rawText.value
  if (!chat.sendRaw(rawText)) rawText = null
})

view.ping.addEventListener('click', () => {
  pingSentAt = Date.now()
  chat.ping().catch(() => {})
})

view.reconnectNow.addEventListener('click', () => chat.reconnect())

// Back online (laptop woke up, Wi-Fi returned): do not wait out the backoff.
window.addEventListener('online', () => {
  if (chat.state.state === 'waiting') chat.reconnect()
})

view.showRaw.addEventListener('change', () => view.log.classList.toggle('show-raw', view.showRaw.checked))
view.clearLog.addEventListener('click', () => log.clear())

// --- /stats, polled while the page is visible ---

let statsTimer = 0

async function pollStats () {
  clearTimeout(statsTimer)
  try {
    showStats(await fetchJson(servers.stats.path))
    view.statsState.textContent = `updated every ${STATS_EVERY_MS / 1000} s`
  } catch (err) {
    if (err.status === 403) {
      // Identity is on and this token is no admin's: the figures are not for this page.
      $('#stats').hidden = true
      view.statsLimits.hidden = true
      view.statsState.textContent = 'server figures are for admins (a token with "admin": true)'
      return
    }
    view.statsState.textContent = `figures unavailable (${err.message})`
  }
  if (!document.hidden) statsTimer = setTimeout(pollStats, STATS_EVERY_MS)
}

function setFigure (id, text) {
  $(`#${id}`).textContent = text
}

function showStats (stats) {
  const chat = stats.endpoints?.[servers.chat.name]
  setFigure('stats-chat-clients', chat ? String(chat.connections?.current) : '–')
  setFigure('stats-chat-messages', chat ? `${chat.messages?.received} / ${chat.messages?.sent}` : '–')
  setFigure('stats-chat-bytes', chat ? `${formatBytes(chat.bytes?.received)} / ${formatBytes(chat.bytes?.sent)}` : '–')
  const c = stats.connections ?? {}
  setFigure('stats-connections', `${c.current} / ${c.peak} / ${c.total}`)
  setFigure('stats-uptime', formatDuration(stats.uptime_s))
  setFigure('stats-memory', formatBytes(stats.memory?.rss))
  showLimits(stats.limits)
}

/** Limit counters (`limits.hits`, e.g. `{"rate_limited": 3}`), shown only once a limit was hit. */
function showLimits (limits) {
  const hits = limits?.hits
  const entries = hits && typeof hits === 'object' ? Object.entries(hits).filter(([, n]) => typeof n === 'number') : []
  view.statsLimits.hidden = entries.length === 0
  const nodes = []
  for (const [name, count] of entries) {
    const dt = document.createElement('dt')
    dt.textContent = `limit hits: ${name.replaceAll('_', ' ')}`
    const dd = document.createElement('dd')
    dd.textContent = String(count)
    nodes.push(dt, dd)
  }
  view.statsLimits.replaceChildren(...nodes)
}

document.addEventListener('visibilitychange', () => {
  if (document.hidden) clearTimeout(statsTimer)
  else pollStats()
})

pollStats()
