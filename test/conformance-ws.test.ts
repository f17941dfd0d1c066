// echohub's verdicts for Node's `ws` equal the Autobahn fuzzingserver's on every case recorded
// for it where the fuzzingserver's own verdict was stable (test/fixtures/conformance-reference.json,
// written by scripts/conformance-reference.py): all of sections 1-7, 9 and 10, and of 12 and 13
// the first two sizes and the first fragmented one of each group (the fuzzingserver needs hours
// for all of them).
import t from 'tap'
import { readFileSync } from 'node:fs'
import { SUITE } from '../src/conformance/cases.js'
import { compareWithReference, referenceTable, wsEcho } from './helpers/conformance.js'

const version = (JSON.parse(readFileSync(new URL('../node_modules/ws/package.json', import.meta.url), 'utf8')) as { version: string }).version
const recorded = referenceTable().clients.ws?.cases ?? {}
const ids = SUITE.map(c => c.id).filter(id => recorded[id] !== undefined)

t.test(`ws ${version}: every recorded Autobahn case, as the fuzzingserver judged it`, async t => {
  const { compared, agreed } = await compareWithReference(t, 'ws', version, ids, async urls => {
    for (const url of urls) await wsEcho(url)
  })
  t.ok(compared > 300, `${compared} cases compared`)
  t.equal(agreed, compared)
})
