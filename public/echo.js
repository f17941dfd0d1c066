// The echo tester: connect to an echo server of this process (ports from `api/servers`, host from
// the page's own address), send text or binary, and see each envelope, welcome and echoed byte.
import { $, FrameLog, describeClose, hasToken, loadServers, maskToken, hexField, sameBytes, toHex, utf8Length, whyRefused, withToken, wsUrl } from './common.js'

const view = {
  connectForm: $('#connect-form'),
  target: $('#target'),
  url: $('#url'),
  urlHint: $('#url-hint'),
  connect: $('#connect'),
  disconnect: $('#disconnect'),
  state: $('#state'),
  detail: $('#state-detail'),
  textForm: $('#text-form'),
  text: $('#text'),
  sendText: $('#send-text'),
  binaryForm: $('#binary-form'),
  hex: $('#hex'),
  hexError: $('#hex-error'),
  sendBinary: $('#send-binary'),
  log: $('#log'),
  showRaw: $('#show-raw'),
  clearLog: $('#clear-log')
}
const log = new FrameLog(view.log)

let socket = null
// What was sent and not yet echoed, oldest first, to tell whether each echo matches.
let pending = []

const STATE_LABELS = { connecting: 'connecting…', open: 'connected', closed: 'not connected' }

function setState (state, detail = '') {
  view.state.dataset.state = state
  view.state.textContent = STATE_LABELS[state]
  view.detail.textContent = detail
  document.body.dataset.state = state
  const open = state === 'open'
  view.sendText.disabled = !open
  view.sendBinary.disabled = !open
  view.disconnect.disabled = state === 'closed'
  view.connect.disabled = state === 'connecting'
}

function fillTargets (echoServers) {
  const groups = []
  // One group per server with its port; options short enough for a phone's drop-down.
  for (const server of echoServers) {
    const group = document.createElement('optgroup')
    group.label = `${server.name}: port ${server.port}${server.welcome ? ', welcome on connect' : ''}`
    const path = server.path ?? '/'
    const rawPath = server.raw_path ?? '/raw'
    group.append(
      new Option(`${server.name} ${path} — JSON envelope`, wsUrl(path, server.port)),
      new Option(`${server.name} ${rawPath} — plain echo`, wsUrl(rawPath, server.port))
    )
    groups.push(group)
  }
  if (groups.length === 0) {
    groups.push(new Option('No echo server here: type a URL below', wsUrl('/', 8765)))
  }
  view.target.replaceChildren(...groups)
  view.url.value = view.target.value
}

view.target.addEventListener('change', () => {
  view.url.value = view.target.value
})

view.connectForm.addEventListener('submit', (event) => {
  event.preventDefault()
  connect(view.url.value.trim())
})

view.disconnect.addEventListener('click', () => {
  socket?.close(1000, 'closed from the echo tester')
})

function connect (typed) {
  if (socket) socket.close(1000, 'switching server')
  pending = []
  // Shown without the token; the page's own is added for the connection.
  const url = maskToken(typed)
  let ws
  try {
    ws = new WebSocket(withToken(typed))
  } catch (err) {
    setState('closed', `cannot open ${url}: ${err.message}`)
    return
  }
  ws.binaryType = 'arraybuffer'
  socket = ws
  let opened = false
  setState('connecting', url)
  ws.addEventListener('open', () => {
    if (socket !== ws) return
    opened = true
    setState('open', url)
    log.add({ dir: 'info', type: 'open', summary: `connected to ${url}` })
  })
  ws.addEventListener('message', (event) => {
    if (socket === ws) receive(event.data)
  })
  ws.addEventListener('close', (event) => {
    if (socket !== ws) return
    socket = null
    const why = describeClose(event.code, event.reason)
    setState('closed', why)
    log.add({ dir: 'info', type: 'close', summary: opened ? why : `could not connect (${why})`, tone: event.code === 1000 ? undefined : 'bad' })
    if (!opened) explainRefusal(typed)
  })
}

/** A connection that never opened: the server says why, in the status line and the log. */
async function explainRefusal (typed) {
  const reason = await whyRefused(typed)
  if (socket !== null || reason.status === 200) return
  const said = `${reason.status === 0 ? '' : `HTTP ${reason.status}: `}${reason.message}`
  setState('closed', said)
  log.add({ dir: 'info', type: 'refused', summary: said, tone: 'bad' })
}

function receive (data) {
  if (data instanceof ArrayBuffer) {
    const bytes = new Uint8Array(data)
    const sent = takePending('binary')
    const match = sent === undefined ? '' : sameBytes(sent, bytes) ? ' — same bytes as sent' : ' — DIFFERS from what was sent'
    log.add({ dir: 'in', type: 'binary', summary: `${bytes.length} bytes${match}`, raw: toHex(bytes), tone: match.includes('DIFFERS') ? 'bad' : undefined })
    return
  }
  let frame
  try {
    frame = JSON.parse(data)
  } catch {
    frame = undefined
  }
  if (frame?.type === 'welcome') {
    log.add({ dir: 'in', type: 'welcome', summary: `client_id ${frame.client_id} — ${frame.message ?? ''}`, raw: JSON.stringify(frame, null, 2) })
    return
  }
  if (frame?.type === 'echo' && typeof frame.original_message === 'string') {
    const sent = takePending('text')
    const match = sent === undefined ? '' : sent === frame.original_message ? ', same text as sent' : ', text DIFFERS from what was sent'
    log.add({
      dir: 'in',
      type: 'echo',
      summary: `message ${frame.message_id} from ${frame.client}${match}`,
      raw: JSON.stringify(frame, null, 2),
      tone: match.includes('DIFFERS') ? 'bad' : undefined
    })
    return
  }
  // /raw: the text itself comes back
  const sent = takePending('text')
  const match = sent === undefined ? '' : sent === data ? ' — same text as sent' : ' — DIFFERS from what was sent'
  log.add({ dir: 'in', type: 'text', summary: `${utf8Length(data)} bytes${match}`, raw: data, tone: match.includes('DIFFERS') ? 'bad' : undefined })
}

function takePending (kind) {
  const index = pending.findIndex((item) => item.kind === kind)
  if (index === -1) return undefined
  return pending.splice(index, 1)[0].data
}

view.textForm.addEventListener('submit', (event) => {
  event.preventDefault()
  if (!socket || socket.readyState !== WebSocket.OPEN) return
  const text = view.text.value
  socket.send(text)
  pending.push({ kind: 'text', data: text })
  log.add({ dir: 'out', type: 'text', summary: `${utf8Length(text)} bytes`, raw: text })
})

view.text.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
    event.preventDefault()
    view.textForm.requestSubmit()
  }
})

view.binaryForm.addEventListener('submit', (event) => {
  event.preventDefault()
  if (!socket || socket.readyState !== WebSocket.OPEN) return
  const bytes = hexField(view.hex, view.hexError)
  if (bytes === null) return
  socket.send(bytes)
  pending.push({ kind: 'binary', data: bytes })
  log.add({ dir: 'out', type: 'binary', summary: `${bytes.length} bytes`, raw: toHex(bytes) })
})

view.showRaw.addEventListener('change', () => view.log.classList.toggle('show-raw', view.showRaw.checked))
view.clearLog.addEventListener('click', () => log.clear())

setState('closed')
if (hasToken) view.urlHint.textContent += ' The token this page was opened with is added when connecting.'
const servers = await loadServers()
fillTargets(servers.echo)
