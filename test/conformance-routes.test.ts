// The conformance suite's routes on an echo server, driven as Autobahn's drivers and devices drive
// them: the fuzzingserver's paths under /conformance, device mode, the reports, restarts, the R
// cases judged across reconnects, 409 for a second connection, and the bounds.
import t, { type Test } from 'tap'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { WebSocket } from 'ws'
import { listen } from './helpers/index.js'
import { ask, deafClient, device, echoCase } from './helpers/device.js'
import { echo } from '../plugins/echo.js'
import { stats } from '../plugins/stats.js'
import { echohubRegistry } from '../plugins/registry.js'
import type { ConformanceOptions } from '../plugins/conformance.js'
import { parseConfig, startEchohub } from '../index.js'

async function tempDir (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'echohub-conformance-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** An echo server with the suite on (and /stats), on 127.0.0.1:0. */
async function suiteServer (t: Test, conformance: ConformanceOptions, registry: Record<string, unknown> = {}) {
  const { app, port, url } = await listen(t, async (app) => {
    if (Object.keys(registry).length > 0) await app.register(echohubRegistry, registry)
    await app.register(echo, { conformance })
    await app.register(stats)
  })
  return { app, port, base: `${url}/conformance`, http: `http://127.0.0.1:${port}` }
}

async function getJson (url: string, headers: Record<string, string> = {}): Promise<{ status: number, body: any }> {
  const res = await fetch(url, { headers })
  const text = await res.text()
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) }
}

/** Polls an agent's report until `ready` holds of it: for verdicts decided by a timer (no reconnect came). */
async function reportWhen (http: string, agent: string, ready: (report: any) => boolean): Promise<any> {
  for (;;) {
    const { status, body } = await getJson(`${http}/conformance/agents/${encodeURIComponent(agent)}`)
    if (status === 200 && ready(body)) return body
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

function caseOf (report: any, id: string): any {
  return report.cases.find((c: any) => c.id === id)
}

t.test('an Autobahn driver runs selected cases: getCaseCount, getCaseInfo, runCase, getCaseStatus, updateReports', async (t) => {
  const dir = await tempDir(t)
  const { base, http } = await suiteServer(t, { dir })
  const sel = 'cases=1.1.1,1.1.2,2.1,R.3'
  const count = await ask(`${base}/getCaseCount?${sel}`)
  t.same(count, { texts: ['4'], close: 1000 })
  const info = await ask(`${base}/getCaseInfo?case=3&${sel}`)
  t.equal(info.close, 1000)
  t.same(JSON.parse(info.texts[0]!), { id: '2.1', description: JSON.parse(info.texts[0]!).description })
  t.match(JSON.parse(info.texts[0]!).description, /ping/i)

  const agent = 'AutobahnPython/0.8.0'
  for (let n = 1; n <= 4; n++) {
    await echoCase(`${base}/runCase?case=${n}&agent=${encodeURIComponent(agent)}&${sel}`)
    const status = await ask(`${base}/getCaseStatus?case=${n}&agent=${encodeURIComponent(agent)}&${sel}`)
    t.equal(status.close, 1000)
    t.same(JSON.parse(status.texts[0]!), { behavior: n === 4 ? 'UNIMPLEMENTED' : 'OK' }, `case ${n}`)
  }
  // Autobahn's own casetuple=, outside the selection given by cases= (the server's: every case).
  await echoCase(`${base}/runCase?casetuple=1.1.3&agent=${encodeURIComponent(agent)}`)
  t.same(await ask(`${base}/updateReports?agent=${encodeURIComponent(agent)}`), { texts: [], close: 1000 })

  const files = await readdir(dir)
  t.same(files, ['AutobahnPython%2F0%2E8%2E0.json'], 'the agent\'s file, its name encoded')
  const kept = JSON.parse(await readFile(join(dir, files[0]!), 'utf8'))
  t.equal(kept.agent, agent)
  t.same(kept.results.map((r: any) => r.id).sort(), ['1.1.1', '1.1.2', '1.1.3', '2.1', 'R.3'])

  const list = await getJson(`${http}/conformance/agents`)
  t.equal(list.status, 200)
  t.equal(list.body.agents.length, 1)
  t.match(list.body.agents[0], { agent, run: 5, summary: { OK: 4, UNIMPLEMENTED: 1, FAILED: 0 } })
  const report = await getJson(`${http}/conformance/agents/${encodeURIComponent(agent)}`)
  const r3 = caseOf(report.body, 'R.3')
  t.match(r3, { behavior: 'UNIMPLEMENTED', result: 'needs device mode' })
  const first = caseOf(report.body, '1.1.1')
  t.match(first, { id: '1.1.1', behavior: 'OK', behaviorClose: 'OK', remoteCloseCode: 1000 })
  t.type(first.description, 'string')
  t.type(first.expectation, 'string')
  t.ok(first.wire.some((w: any) => w.dir === 'out' && w.opcode === 1), 'the wire log holds the text frame sent')
  t.ok(first.wire.some((w: any) => w.dir === 'in' && w.opcode === 8), 'and the client\'s close')
})

t.test('bad queries are refused before the upgrade with a JSON body', async (t) => {
  const { base } = await suiteServer(t, { dir: await tempDir(t) })
  t.match(await ask(`${base}/runCase?case=1`), { status: 400, body: { error: 'invalid_request', message: /agent=/ } })
  t.match(await ask(`${base}/runCase?case=99999&agent=a`), { status: 400, body: { error: 'invalid_request' } })
  t.match(await ask(`${base}/getCaseCount?cases=77.*`), { status: 400, body: { error: 'invalid_request', message: /selects no case/ } })
  t.match(await ask(`${base}/runCase?case=1&agent=a&max_size=lots`), { status: 400, body: { error: 'invalid_request', message: /max_size/ } })
  t.match(await ask(`${base}/runCase?case=1&agent=${'x'.repeat(129)}`), { status: 400, body: { message: /1 to 128/ } })
  t.match(await ask(`${base}/nosuch`), { status: 404, body: { error: 'not_found' } })
  t.match(await ask(`${base}/deeper/path?x=1`), { status: 404, body: { error: 'not_found' } })
  // Outside /conformance every path still echoes.
  const ws = new WebSocket(base.replace('/conformance', '/conformancex'))
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  ws.send('hi')
  const [reply] = await new Promise<[Buffer]>((resolve) => ws.once('message', (...args) => resolve(args as unknown as [Buffer])))
  t.equal(JSON.parse(reply.toString()).type, 'echo')
  ws.close()
})

t.test('device mode: a client that only echoes and reconnects finishes the selected suite; max_size skips what it cannot take', async (t) => {
  const dir = await tempDir(t)
  const { base, http } = await suiteServer(t, { dir })
  const run = await device(`${base}/next?agent=esp32&cases=1.1.*,2.1,2.2,R.3&max_size=1000`)
  t.ok(run.done, 'conformance_done came')
  t.same(run.done, { type: 'conformance_done', agent: 'esp32', cases: 11, summary: { OK: 8, 'NON-STRICT': 0, INFORMATIONAL: 0, UNIMPLEMENTED: 0, FAILED: 0, 'WRONG CODE': 0, UNCLEAN: 0, SKIPPED: 3 } })
  t.equal(run.closes.at(-1), 1000)
  const report = (await getJson(`${http}/conformance/agents/esp32`)).body
  t.same(report.cases.map((c: any) => c.behavior), ['OK', 'OK', 'OK', 'OK', 'OK', 'SKIPPED', 'SKIPPED', 'SKIPPED', 'OK', 'OK', 'OK'])
  t.match(caseOf(report, 'R.3'), { behavior: 'OK', result: /reconnected \d+ ms after the drop/, details: { gaps_ms: [Number] } })
  // One more connection: nothing left to run, so the summary again.
  const again = await device(`${base}/next?agent=esp32&cases=1.1.*,2.1,2.2,R.3&max_size=1000`)
  t.equal(again.connections, 1)
  t.same(again.done, run.done)
})

t.test('a restart in the middle loses nothing: device mode carries on where it stopped', async (t) => {
  const dir = await tempDir(t)
  const sel = 'cases=1.1.1,1.1.2,1.1.3,2.1,2.2'
  const first = await suiteServer(t, { dir })
  const part = await device(`${first.base}/next?agent=restart-me&${sel}`, { connections: 2 })
  t.equal(part.done, undefined)
  await first.app.close()
  const second = await suiteServer(t, { dir })
  const kept = (await getJson(`${second.http}/conformance/agents/restart-me`)).body
  t.same(kept.cases.filter((c: any) => c.behavior !== null).map((c: any) => c.id), ['1.1.1', '1.1.2'], 'what ran before the restart is read back')
  const rest = await device(`${second.base}/next?agent=restart-me&${sel}`)
  t.equal(rest.connections, 4, 'three cases left, then the summary')
  t.match(rest.done, { cases: 5, summary: { OK: 5 } })
})

t.test('R.3 reconnect: OK for a client that comes back, FAILED for one that does not', async (t) => {
  const { base, http } = await suiteServer(t, { dir: await tempDir(t), reconnectWindow: 400 })
  const good = await device(`${base}/next?agent=comes-back&cases=R.3`)
  t.match(good.done, { summary: { OK: 1 } })
  const gone = await device(`${base}/next?agent=gone&cases=R.3`, { noReconnect: true })
  t.equal(gone.connections, 1)
  const report = await reportWhen(http, 'gone', (r) => caseOf(r, 'R.3').behavior !== null)
  t.match(caseOf(report, 'R.3'), { behavior: 'FAILED', result: /no reconnect within/ })
})

t.test('R.4 backoff over three drops: OK when the gaps grow, NON-STRICT when they do not, FAILED for a storm', async (t) => {
  const { base, http } = await suiteServer(t, { dir: await tempDir(t), reconnectWindow: 5000 })
  const grows = await device(`${base}/next?agent=backs-off&cases=R.4`, { backoff: [110, 220, 440] })
  t.equal(grows.connections, 4, 'three drops, then the summary')
  t.match(grows.done, { summary: { OK: 1 } })
  const flat = await device(`${base}/next?agent=flat&cases=R.4`, { backoff: [150] })
  t.match(flat.done, { summary: { 'NON-STRICT': 1 } })
  const storm = await device(`${base}/next?agent=storm&cases=R.4`, { backoff: [0] })
  t.match(storm.done, { summary: { FAILED: 1 } })
  const r4 = caseOf((await getJson(`${http}/conformance/agents/backs-off`)).body, 'R.4')
  t.equal(r4.details.gaps_ms.length, 3)
  t.ok(r4.details.gaps_ms.every((g: number, i: number, all: number[]) => i === 0 || g > all[i - 1]!))
  t.match(caseOf((await getJson(`${http}/conformance/agents/storm`)).body, 'R.4'), { behavior: 'FAILED', result: /storm/ })
})

t.test('R.6 close handshake: OK when each close is answered and the client comes back; FAILED when one is not answered; NON-STRICT when it does not come back', async (t) => {
  const { base, http } = await suiteServer(t, { dir: await tempDir(t), reconnectWindow: 400 })
  const good = await device(`${base}/next?agent=polite&cases=R.6`)
  t.same(good.closes, [1001, 1012, 1013, 1000])
  t.match(good.done, { summary: { OK: 1 } })
  t.match(caseOf((await getJson(`${http}/conformance/agents/polite`)).body, 'R.6'), { details: { answered: [true, true, true] } })

  await deafClient(`${base}/next?agent=deaf&cases=R.6`)
  const deaf = await reportWhen(http, 'deaf', (r) => caseOf(r, 'R.6').behavior !== null)
  t.match(caseOf(deaf, 'R.6'), { behavior: 'FAILED', result: /1001 was not answered/ })

  await device(`${base}/next?agent=leaves&cases=R.6`, { noReconnect: true })
  const leaves = await reportWhen(http, 'leaves', (r) => caseOf(r, 'R.6').behavior !== null)
  t.match(caseOf(leaves, 'R.6'), { behavior: 'NON-STRICT', result: /did not come back/ })
})

t.test('a second connection for an agent while its case runs gets 409; in device mode a reconnect during R.5 ends it', async (t) => {
  const { base, http } = await suiteServer(t, { dir: await tempDir(t) })
  // R.5: the server stays silent for up to 60 s; this client sits there.
  const sitting = new WebSocket(`${base}/runCase?casetuple=R.5&agent=busy`)
  await new Promise((resolve, reject) => { sitting.once('open', resolve); sitting.once('error', reject) })
  t.match(await ask(`${base}/runCase?case=1&agent=busy`), { status: 409, body: { error: 'agent_busy', message: /R\.5/ } })
  t.match(await ask(`${base}/next?agent=busy`), { status: 409 }, 'runCase is no device mode: its R.5 takes no reconnect')
  const closed = new Promise((resolve) => sitting.once('close', resolve))
  sitting.close()
  await closed
  t.same(JSON.parse((await ask(`${base}/getCaseStatus?case=${1}&agent=busy&cases=R.5`)).texts[0]!), { behavior: 'OK' }, 'the client gave up on the silent server')

  // Device mode: R.5 runs on the first connection; the device's reconnect is its giving up.
  const first = new WebSocket(`${base}/next?agent=impatient&cases=R.5`)
  t.teardown(() => first.terminate())
  await new Promise((resolve, reject) => { first.once('open', resolve); first.once('error', reject) })
  const rest = await device(`${base}/next?agent=impatient&cases=R.5`)
  t.equal(rest.connections, 1, 'the reconnect ended R.5 and got the summary')
  t.match(rest.done, { summary: { OK: 1 } })
  t.match(caseOf((await getJson(`${http}/conformance/agents/impatient`)).body, 'R.5'), { behavior: 'OK' })
})

t.test('bounds: cases running at once (503 + Retry-After, conformance_busy) and agents kept (the least recently updated is forgotten)', async (t) => {
  const dir = await tempDir(t)
  const { base, http } = await suiteServer(t, { dir, maxRunning: 1, maxAgents: 2 })
  const sitting = new WebSocket(`${base}/runCase?casetuple=R.5&agent=holder`)
  await new Promise((resolve, reject) => { sitting.once('open', resolve); sitting.once('error', reject) })
  const refused = await ask(`${base}/runCase?case=1&agent=other`)
  t.match(refused, { status: 503, body: { error: 'conformance_busy' } })
  t.equal(refused.headers?.['retry-after'], '5')
  const closed = new Promise((resolve) => sitting.once('close', resolve))
  sitting.close()
  await closed
  await ask(`${base}/getCaseStatus?casetuple=R.5&case=1&cases=R.5&agent=holder`)
  await echoCase(`${base}/runCase?casetuple=1.1.1&agent=second`)
  await echoCase(`${base}/runCase?casetuple=1.1.1&agent=third`)
  await ask(`${base}/updateReports`)
  const agents = (await getJson(`${http}/conformance/agents`)).body.agents.map((a: any) => a.agent)
  t.same(agents.sort(), ['second', 'third'], 'holder, the least recently updated, was forgotten')
  t.same((await readdir(dir)).sort(), ['second.json', 'third.json'])
  const s = (await getJson(`${http}/stats`)).body
  t.equal(s.limits.hits.conformance_busy, 1)
  t.equal(s.limits.hits.conformance_evicted, 1)
  t.match(s.limits.settings, { conformance_max_running: 1, conformance_max_agents: 2, conformance_wire_bytes: 16384, conformance_agent_bytes: 8388608 })
  t.match(s.endpoints['echo-conformance'].connections, { current: 0 })
  t.ok(s.endpoints['echo-conformance'].connections.total >= 5)
})

t.test('reports: JUnit per case and DELETE starts an agent over', async (t) => {
  const { base, http } = await suiteServer(t, { dir: await tempDir(t) })
  await device(`${base}/next?agent=ci&cases=1.1.2,R.3&max_size=10`)
  await echoCase(`${base}/runCase?casetuple=R.3&agent=ci2`)
  const junit = await fetch(`${http}/conformance/agents/ci/junit.xml`)
  t.equal(junit.status, 200)
  t.match(junit.headers.get('content-type'), /application\/xml/)
  const xml = await junit.text()
  t.equal(xml.match(/<testcase /g)?.length, 2)
  t.match(xml, /<testsuite name="echohub conformance: ci" tests="2" failures="0" errors="0" skipped="1"/)
  t.match(xml, /name="1\.1\.2 [^"]*"[^>]*><skipped message="SKIPPED: [^"]*max_size/)
  const del = await fetch(`${http}/conformance/agents/ci`, { method: 'DELETE' })
  t.equal(del.status, 204)
  t.equal((await fetch(`${http}/conformance/agents/ci`)).status, 404)
  t.equal((await fetch(`${http}/conformance/agents/ci`, { method: 'DELETE' })).status, 404)
  const crossSite = await fetch(`${http}/conformance/agents/ci2`, { method: 'DELETE', headers: { origin: 'https://evil.example' } })
  t.equal(crossSite.status, 403, 'another site\'s page may not delete')
  // The page and its files on the echo port itself.
  const page = await fetch(`${http}/conformance`)
  t.equal(page.status, 200)
  t.match(await page.text(), /<script type="module" src="conformance\/page\/conformance\.js">/)
  for (const file of ['conformance.js', 'conformance.css', 'app.css', 'common.js']) t.equal((await fetch(`${http}/conformance/page/${file}`)).status, 200, file)
  t.equal((await fetch(`${http}/conformance/page/index.html`)).status, 404)
})

t.test('the token as a path segment, for drivers that only append paths; it never reaches the logs', async (t) => {
  const lines: string[] = []
  const logger = pino({ level: 'info' }, { write: (line: string) => { lines.push(line) } })
  const dir = await tempDir(t)
  const { url } = await listen(t, async (app) => {
    await app.register(echohubRegistry, { authToken: 'sekrit-token-123' })
    await app.register(echo, { conformance: { dir } })
  }, { loggerInstance: logger })
  t.match(await ask(`${url}/conformance/getCaseCount`), { status: 401 })
  t.match(await ask(`${url}/conformance/token/wrong/runCase?case=1&agent=d`), { status: 401 }, 'the same admission as every echo path')
  t.same((await ask(`${url}/conformance/token/sekrit-token-123/getCaseCount?cases=1.1.1`)).texts, ['1'])
  t.equal(await echoCase(`${url}/conformance/token/sekrit-token-123/runCase?case=1&cases=1.1.1&agent=d`), 1000)
  t.ok(lines.some((l) => l.includes('conformance client connected')))
  t.notOk(lines.some((l) => l.includes('sekrit-token-123')), 'no log line holds the token')
})

t.test('the suite\'s upgrades pass the same admission as every echo path: origin and caps', async (t) => {
  const { base } = await suiteServer(t, { dir: await tempDir(t) }, { origins: ['https://ok.example'], maxConnectionsPerIp: 1 })
  t.match(await ask(`${base}/runCase?case=1&agent=a`, { headers: { origin: 'https://evil.example' } }), { status: 403, body: { error: 'origin_not_allowed' } })
  const sitting = new WebSocket(`${base}/runCase?casetuple=R.5&agent=a`)
  t.teardown(() => sitting.terminate())
  await new Promise((resolve, reject) => { sitting.once('open', resolve); sitting.once('error', reject) })
  t.match(await ask(`${base}/runCase?case=1&agent=b`), { status: 429, body: { error: 'too_many_connections' } }, 'a case\'s connection counts against the caps')
})

t.test('shutdown ends a running case at once, judged on what it saw, and its result is on disk', async (t) => {
  const dir = await tempDir(t)
  // Were the case not ended, closing would wait out R.5's 60 s (the shutdown timeout is longer): the test would time out.
  const { app, base } = await suiteServer(t, { dir }, { shutdownTimeout: 120000 })
  const sitting = new WebSocket(`${base}/runCase?casetuple=R.5&agent=late`)
  t.teardown(() => sitting.terminate())
  await new Promise((resolve, reject) => { sitting.once('open', resolve); sitting.once('error', reject) })
  const gone = new Promise((resolve) => sitting.once('close', resolve))
  await app.close()
  await gone
  const kept = JSON.parse(await readFile(join(dir, 'late.json'), 'utf8'))
  t.same(kept.results.map((r: any) => r.id), ['R.5'])
})

t.test('--conformance-port serves the suite at the root of its own port; --no-conformance turns it off', async (t) => {
  const dir = await tempDir(t)
  const parsed = parseConfig(['--host', '127.0.0.1', '--echo-port', '0', '--debug-port', '0', '--only', 'echo,echo-debug', '--conformance-port', '0', '--conformance-dir', dir, '--conformance-cases', '1.1.1,1.1.2'], {})
  if (parsed.help) throw new Error('help')
  const hub = await startEchohub(parsed.config, { logger: pino({ level: 'silent' }) })
  t.teardown(() => hub.close())
  const port = hub.servers.find((s) => s.name === 'conformance')!.port
  t.same((await ask(`ws://127.0.0.1:${port}/getCaseCount`)).texts, ['2'], 'the server\'s selection')
  await echoCase(`ws://127.0.0.1:${port}/runCase?case=2&agent=root`)
  const debugPort = hub.servers.find((s) => s.name === 'echo-debug')!.port
  const report = (await getJson(`http://127.0.0.1:${debugPort}/conformance/agents/root`)).body
  t.match(caseOf(report, '1.1.2'), { behavior: 'OK' }, 'one suite for the whole process, whichever port')

  const off = parseConfig(['--host', '127.0.0.1', '--echo-port', '0', '--only', 'echo', '--no-conformance'], {})
  if (off.help) throw new Error('help')
  const plain = await startEchohub(off.config, { logger: pino({ level: 'silent' }) })
  t.teardown(() => plain.close())
  const echoPort = plain.servers[0]!.port
  const ws = new WebSocket(`ws://127.0.0.1:${echoPort}/conformance/getCaseCount`)
  ws.on('open', () => ws.send('x'))
  const [reply] = await new Promise<[Buffer]>((resolve) => ws.once('message', (...args) => resolve(args as unknown as [Buffer])))
  t.equal(JSON.parse(reply.toString()).type, 'echo', 'off: /conformance echoes like any path')
  ws.close()
})
