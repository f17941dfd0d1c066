// The conformance page: where to point a client, the agents, the selected agent's cases as a grid
// coloured by verdict (refreshed every second while a client runs) and one case's details and
// wire log. Everything a server sends is put on the page with textContent.
import { $, el, fetchJson, withToken } from './common.js'

const VERDICTS = ['OK', 'NON-STRICT', 'INFORMATIONAL', 'UNIMPLEMENTED', 'FAILED', 'WRONG CODE', 'UNCLEAN', 'SKIPPED']
const POLL_MS = 1000
const token = new URLSearchParams(location.search).get('token')

let selected = new URLSearchParams(location.search).get('agent')
let shownUpdate = null
let report = null
let chosenCase = null

/** The case's verdict: as the server's summaries count it (report.ts). */
function verdictOf (c) {
  if (c.behavior === null) return null
  if (c.behavior === 'FAILED' || c.behavior === 'UNIMPLEMENTED' || c.behavior === 'SKIPPED') return c.behavior
  if (c.behaviorClose === 'FAILED' || c.behaviorClose === 'WRONG CODE' || c.behaviorClose === 'UNCLEAN') return c.behaviorClose
  return c.behavior
}

function setState (state, text, detail = '') {
  const node = $('#state')
  node.dataset.state = state
  node.textContent = text
  $('#state-detail').textContent = detail
}

function agentPath (agent) {
  return `conformance/agents/${encodeURIComponent(agent)}`
}

function summaryLine (summary) {
  const line = el('span', 'verdicts')
  for (const v of VERDICTS) {
    if (!summary[v]) continue
    const part = el('span', '', `${v} ${summary[v]}`)
    part.dataset.verdict = v
    line.append(part)
  }
  return line
}

async function showInfo () {
  try {
    const info = await fetchJson('conformance/info')
    const list = $('#urls')
    list.replaceChildren()
    for (const server of info.servers) {
      for (const url of server.urls) {
        const device = el('li')
        device.append(el('span', 'what', 'device mode: '), `${url}/next?agent=my-device`)
        const driver = el('li')
        driver.append(el('span', 'what', 'Autobahn driver base URL: '), url)
        list.append(device, driver)
      }
    }
    if (list.childElementCount === 0) list.append(el('li', 'what', 'No echo server of this process serves the suite.'))
    setState('open', `${info.cases.length} cases`, `${info.running} running now (at most ${info.max_running})`)
  } catch (err) {
    setState('closed', err.status === 404 ? 'the suite is off' : 'cannot read the suite', err.status === 401 ? 'open this page with ?token=' : err.message)
  }
}

function showAgents (agents) {
  const body = $('#agents tbody')
  body.replaceChildren()
  $('#no-agents').hidden = agents.length > 0
  $('#agent-count').textContent = agents.length === 1 ? '1 agent' : `${agents.length} agents`
  for (const a of agents) {
    const row = el('tr')
    row.dataset.agent = a.agent
    row.setAttribute('aria-selected', String(a.agent === selected))
    row.tabIndex = 0
    const cell = el('td', 'mono', a.agent)
    const verdicts = el('td')
    verdicts.append(summaryLine(a.summary))
    row.append(cell, el('td', 'nowrap', `${a.run} / ${a.cases}${a.waiting ? ` (${a.waiting.id} waits for a reconnect)` : ''}`), verdicts, el('td', 'nowrap', new Date(a.updated_at).toLocaleTimeString()))
    const choose = () => {
      selected = a.agent
      shownUpdate = null
      chosenCase = null
      const url = new URL(location.href)
      url.searchParams.set('agent', a.agent)
      history.replaceState(null, '', url)
      void refresh()
    }
    row.addEventListener('click', choose)
    row.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') choose() })
    body.append(row)
  }
}

function showGrid () {
  const grid = $('#grid')
  grid.replaceChildren()
  if (report === null) return
  $('#agent-summary').textContent = `${report.agent}: ${report.run} of ${report.cases.length} run`
  for (const c of report.cases) {
    const cell = el('button', 'cell', c.id)
    cell.type = 'button'
    cell.setAttribute('role', 'listitem')
    cell.dataset.case = c.id
    const verdict = verdictOf(c)
    if (verdict !== null) cell.dataset.verdict = verdict
    cell.title = `${c.id}: ${verdict ?? 'not run'} — ${c.description}`
    cell.setAttribute('aria-pressed', String(c.id === chosenCase))
    cell.addEventListener('click', () => {
      chosenCase = c.id
      for (const other of grid.children) other.setAttribute('aria-pressed', String(other === cell))
      showCase()
    })
    grid.append(cell)
  }
  for (const [id, path] of [['#junit', '/junit.xml'], ['#json', '']]) {
    const link = $(id)
    link.href = token ? withToken(new URL(agentPath(report.agent) + path, location.href).href) : agentPath(report.agent) + path
    link.hidden = false
  }
  $('#forget').hidden = false
}

function showCase () {
  const c = report?.cases.find((x) => x.id === chosenCase)
  $('#case').hidden = c === undefined
  $('#case-empty').hidden = c !== undefined
  if (c === undefined) return
  $('#case-id').textContent = c.id
  $('#case-description').textContent = c.description
  $('#case-expectation').textContent = c.expectation
  $('#case-behavior').textContent = c.behavior ?? 'not run yet'
  $('#case-behavior').dataset.verdict = c.behavior ?? ''
  $('#case-result').textContent = c.result ?? ''
  $('#case-behavior-close').textContent = c.behaviorClose ?? ''
  $('#case-behavior-close').dataset.verdict = c.behaviorClose ?? ''
  $('#case-result-close').textContent = c.resultClose ?? ''
  $('#case-close-code').textContent = c.remoteCloseCode ?? '–'
  $('#case-duration').textContent = c.duration_ms === undefined ? '' : `${c.duration_ms} ms`
  $('#case-details').textContent = c.details ? JSON.stringify(c.details) : ''
  const wire = c.wire ?? []
  $('#wire-empty').hidden = wire.length > 0 || c.behavior === null
  const body = $('#wire tbody')
  body.replaceChildren()
  for (const w of wire) {
    const row = el('tr')
    row.append(el('td', 'nowrap', String(w.t)), el('td', '', w.dir === 'in' ? '↓ in' : '↑ out'), el('td', '', String(w.opcode)), el('td', '', w.fin ? '1' : '0'), el('td', '', String(w.rsv)), el('td', '', String(w.length)), el('td', 'data', w.data))
    body.append(row)
  }
}

async function refresh () {
  let agents
  try {
    agents = (await fetchJson('conformance/agents')).agents
  } catch {
    return
  }
  if (selected === null && agents.length > 0) selected = agents[0].agent
  showAgents(agents)
  const current = agents.find((a) => a.agent === selected)
  if (current === undefined) {
    report = null
    showGrid()
    return
  }
  if (current.updated_at === shownUpdate && report !== null) return
  try {
    report = await fetchJson(agentPath(selected))
    shownUpdate = current.updated_at
  } catch {
    return
  }
  showGrid()
  showCase()
}

$('#forget').addEventListener('click', async () => {
  if (report === null || !confirm(`Forget every result of ${report.agent}? Its next connection starts the suite over.`)) return
  const headers = token ? { authorization: `Bearer ${token}` } : {}
  const res = await fetch(agentPath(report.agent), { method: 'DELETE', headers })
  if (!res.ok) {
    const body = await res.json().catch(() => ({}))
    setState('closed', `could not start ${report.agent} over`, body.message ?? `HTTP ${res.status}`)
    return
  }
  report = null
  selected = null
  chosenCase = null
  void refresh()
})

const legend = $('#legend')
for (const v of VERDICTS) {
  const item = el('li', '', v)
  item.dataset.verdict = v
  legend.append(item)
}
void showInfo()
void refresh()
setInterval(() => { void refresh() }, POLL_MS)
