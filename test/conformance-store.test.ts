// The suite's results per agent (src/conformance/store.ts) and what the reports make of them
// (src/conformance/report.ts): files, bounds, verdicts, summaries and JUnit.
import t, { type Test } from 'tap'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AgentStore, agentFileName, trimWire } from '../src/conformance/store.js'
import { junitXml, summarize, verdictOf } from '../src/conformance/report.js'
import type { CaseResult, WireEntry } from '../src/conformance/types.js'

async function tempDir (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'echohub-store-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

function entry (bytes: number): WireEntry {
  return { t: 0, dir: 'out', opcode: 1, fin: true, rsv: 0, length: bytes, data: 'x'.repeat(bytes) }
}

function result (id: string, behavior: CaseResult['behavior'] = 'OK', behaviorClose: CaseResult['behaviorClose'] = 'OK', wire: WireEntry[] = []): CaseResult {
  return { id, description: `case ${id}`, expectation: 'echo', behavior, behaviorClose, duration_ms: 3, result: 'r', resultClose: 'rc', remoteCloseCode: 1000, started_at: new Date().toISOString(), wire }
}

t.test('file names keep letters, digits, - and _, and encode every other byte', async (t) => {
  t.equal(agentFileName('esp32-board_7'), 'esp32-board_7.json')
  t.equal(agentFileName('../etc/passwd'), '%2E%2E%2Fetc%2Fpasswd.json')
  t.equal(agentFileName('é'), '%C3%A9.json')
})

t.test('the wire log: 16 KiB per case, none for sections 9, 12 and 13', async (t) => {
  const wire = Array.from({ length: 40 }, () => entry(1024))
  t.equal(trimWire('1.1.1', wire, 16 * 1024).length, 16)
  t.equal(trimWire('9.1.1', wire, 16 * 1024).length, 0)
  t.equal(trimWire('12.1.1', wire, 16 * 1024).length, 0)
  t.equal(trimWire('13.1.1', wire, 16 * 1024).length, 0)
  t.equal(trimWire('R.2', wire.slice(0, 3), 16 * 1024).length, 3)
})

t.test('results are written per agent and read back; a file that is not an agent\'s is skipped', async (t) => {
  const dir = await tempDir(t)
  const errors: string[] = []
  const store = new AgentStore({ dir, maxAgents: 10, maxAgentBytes: 1 << 20, maxWireBytes: 16384, onError: (what) => errors.push(what) })
  store.record('dev/1', result('1.1.1', 'OK', 'OK', [entry(10)]))
  store.record('dev/1', result('1.1.2', 'FAILED'))
  store.record('dev/1', result('1.1.1', 'NON-STRICT'))
  await store.flush()
  await writeFile(join(dir, 'junk.json'), '{"no":1}')
  const again = new AgentStore({ dir, maxAgents: 10, maxAgentBytes: 1 << 20, maxWireBytes: 16384, onError: (what) => errors.push(what) })
  await again.load()
  const record = again.get('dev/1')!
  t.same([...record.results.keys()], ['1.1.1', '1.1.2'])
  t.equal(record.results.get('1.1.1')!.behavior, 'NON-STRICT', 'the last run of a case is kept')
  t.same(errors, ['cannot read junk.json'])
})

t.test('past maxAgentBytes a result is kept without its wire log; past maxAgents the least recently updated agent is forgotten', async (t) => {
  const dir = await tempDir(t)
  const evicted: string[] = []
  const store = new AgentStore({ dir, maxAgents: 2, maxAgentBytes: 6000, maxWireBytes: 16384, onEvict: (a) => evicted.push(a) })
  store.record('a', result('1.1.1', 'OK', 'OK', [entry(3000)]))
  store.record('a', result('1.1.2', 'OK', 'OK', [entry(3000)]))
  t.equal(store.get('a')!.results.get('1.1.1')!.wire.length, 1)
  t.same(store.get('a')!.results.get('1.1.2')!.wire, [], 'over the bound: no wire log')
  t.match(store.get('a')!.results.get('1.1.2')!.details, { wire_dropped: /size bound/ })
  t.ok(store.get('a')!.bytes <= 6000)
  store.record('b', result('1.1.1'))
  store.record('c', result('1.1.1'))
  t.same(evicted, ['a'])
  t.same(store.list().map((r) => r.agent).sort(), ['b', 'c'])
  await store.flush()
  // The forgotten agent's file goes too (deleted once its own write is done).
  for (let files = await readdir(dir); files.includes('a.json'); files = await readdir(dir)) await new Promise((resolve) => setImmediate(resolve))
  t.same((await readdir(dir)).sort(), ['b.json', 'c.json'])
})

t.test('verdicts: the worse of behavior and behaviorClose; summaries count every verdict; JUnit fails, skips and explains', async (t) => {
  t.equal(verdictOf({ behavior: 'OK', behaviorClose: 'WRONG CODE' }), 'WRONG CODE')
  t.equal(verdictOf({ behavior: 'NON-STRICT', behaviorClose: 'OK' }), 'NON-STRICT')
  t.equal(verdictOf({ behavior: 'FAILED', behaviorClose: 'UNCLEAN' }), 'FAILED')
  t.equal(verdictOf({ behavior: 'UNIMPLEMENTED', behaviorClose: 'UNIMPLEMENTED' }), 'UNIMPLEMENTED')
  t.equal(verdictOf({ behavior: 'INFORMATIONAL', behaviorClose: 'INFORMATIONAL' }), 'INFORMATIONAL')
  const results = [result('1.1.1'), result('2.1', 'OK', 'UNCLEAN'), result('6.1.1', 'NON-STRICT'), result('12.1.1', 'UNIMPLEMENTED', 'UNIMPLEMENTED'), result('R.2', 'SKIPPED', 'SKIPPED')]
  t.same(summarize(results), { OK: 1, 'NON-STRICT': 1, INFORMATIONAL: 0, UNIMPLEMENTED: 1, FAILED: 0, 'WRONG CODE': 0, UNCLEAN: 1, SKIPPED: 1 })
  const xml = junitXml('dev<1>', [...results, { id: '7.1.1', description: 'd & e', expectation: 'x', behavior: null, behaviorClose: null }], '2026-01-01T00:00:00.000Z')
  t.match(xml, /<testsuite name="echohub conformance: dev&lt;1&gt;" tests="6" failures="1" errors="0" skipped="3"/)
  t.match(xml, /name="2\.1 case 2\.1"[^>]*><failure message="UNCLEAN" type="UNCLEAN">/)
  t.match(xml, /name="6\.1\.1 case 6\.1\.1"[^>]*><system-out>NON-STRICT\n/)
  t.match(xml, /name="12\.1\.1 [^"]*"[^>]*><skipped message="UNIMPLEMENTED: r"\/>/)
  t.match(xml, /name="7\.1\.1 d &amp; e"[^>]*><skipped message="not run"\/>/)
  t.match(xml, /name="1\.1\.1 case 1\.1\.1" classname="echohub\.conformance\.1" time="0\.003"><\/testcase>/)
})
