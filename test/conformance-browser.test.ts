// The conformance page in Chromium, on the pages' server: it fills in while a device runs, and its
// grid, the JSON report and the JUnit file (parsed by the browser's own XML parser) agree.
import t from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { newPage, portOf, skip, startServers } from './helpers/browser.js'
import { device } from './helpers/device.js'
import { sloppyEcho } from './helpers/conformance.js'
import { verdictOf } from '../src/conformance/report.js'

// The little of the DOM the functions run inside the page touch (this project compiles without lib.dom).
interface PageElement { dataset: Record<string, string | undefined>, getAttribute: (name: string) => string | null, querySelector: (selector: string) => PageElement | null }
declare const document: { querySelectorAll: (selector: string) => ArrayLike<PageElement> }
declare class DOMParser { parseFromString (text: string, type: string): { querySelectorAll: (selector: string) => ArrayLike<PageElement> } }

t.test('the page shows the agent\'s cases as they run, with the verdicts of the JSON report and of JUnit', { skip }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'echohub-conformance-page-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const hub = await startServers(t, ['--echo-port', '0', '--debug-port', '0', '--chat-port', '0', '--conformance-dir', dir])
  const chat = portOf(hub, 'chat')
  const echo = portOf(hub, 'echo')
  const { page, errors } = await newPage(t, `http://127.0.0.1:${chat}/conformance?agent=board-7`)
  await page.waitForSelector('#state[data-state="open"]')
  t.match(await page.textContent('#urls'), new RegExp(`ws://127\\.0\\.0\\.1:${echo}/conformance/next\\?agent=my-device`), 'where to point a device')

  // The page is open before the agent exists: the grid fills in as the device runs.
  const sel = 'cases=1.1.1,1.1.2,1.2.1,2.1,R.3'
  const run = await device(`ws://127.0.0.1:${echo}/conformance/next?agent=board-7&${sel}&max_size=100`, { connections: 2 })
  t.equal(run.connections, 2)
  await page.waitForFunction(() => document.querySelectorAll('#grid [data-verdict]').length >= 2)
  // A sloppy client (echoes binary as text) fails 1.2.1, through a driver's runCase.
  await sloppyEcho(`ws://127.0.0.1:${echo}/conformance/runCase?casetuple=1.2.1&agent=board-7`)
  const rest = await device(`ws://127.0.0.1:${echo}/conformance/next?agent=board-7&${sel}&max_size=100`)
  t.ok(rest.done)

  const report = await (await fetch(`http://127.0.0.1:${chat}/conformance/agents/board-7`)).json() as { cases: Array<{ id: string, behavior: string | null, behaviorClose: string | null }> }
  const expected = Object.fromEntries(report.cases.map((c) => [c.id, c.behavior === null ? null : verdictOf(c as Parameters<typeof verdictOf>[0])]))
  t.same(expected, { '1.1.1': 'OK', '1.1.2': 'SKIPPED', '1.2.1': 'FAILED', 2.1: 'OK', 'R.3': 'OK' }, 'the JSON report')

  await page.waitForFunction((n) => document.querySelectorAll('#grid [data-verdict]').length === n, report.cases.length)
  const shown = await page.$$eval('#grid button.cell', (cells) => Object.fromEntries(cells.map((c) => [(c as unknown as PageElement).dataset.case, (c as unknown as PageElement).dataset.verdict ?? null])))
  t.same(shown, expected, 'the page\'s grid')

  const junit = await page.evaluate(async () => {
    const text = await (await fetch('conformance/agents/board-7/junit.xml')).text()
    const xml = new DOMParser().parseFromString(text, 'application/xml')
    return Array.from(xml.querySelectorAll('testcase'), (tc: PageElement) => ({
      id: (tc.getAttribute('name') ?? '').split(' ')[0],
      failure: tc.querySelector('failure')?.getAttribute('message') ?? null,
      skipped: tc.querySelector('skipped') !== null
    }))
  })
  t.same(junit, [
    { id: '1.1.1', failure: null, skipped: false },
    { id: '1.1.2', failure: null, skipped: true },
    { id: '1.2.1', failure: 'FAILED', skipped: false },
    { id: '2.1', failure: null, skipped: false },
    { id: 'R.3', failure: null, skipped: false }
  ], 'the JUnit file')

  await page.click('#grid button[data-case="1.2.1"]')
  t.equal(await page.textContent('#case-behavior'), 'FAILED')
  t.match(await page.textContent('#case-description'), /binary/i)
  t.ok(await page.$$eval('#wire tbody tr', (rows) => rows.length) > 0, 'the case\'s wire log')
  t.same(errors, [])
})
