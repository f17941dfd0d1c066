// echohub's verdicts for Node's `ws` equal the Autobahn fuzzingserver's where the fuzzingserver's
// own verdict was stable (test/fixtures/conformance-reference.json, written by
// scripts/conformance-reference.py): every case of sections 1-7, 9 and 10, and a sample of 12 and
// 13 (all of them: test/long/, `npm run test:long`).
import t from 'tap'
import { compareWithReference, DEFLATE_SAMPLE, PLAIN_IDS, wsEcho, wsVersion } from './helpers/conformance.js'

t.test(`ws ${wsVersion}: sections 1-7, 9 and 10 and a sample of 12 and 13, as the fuzzingserver judged them`, async t => {
  const { compared, agreed } = await compareWithReference(t, 'ws', wsVersion, [...PLAIN_IDS, ...DEFLATE_SAMPLE], async urls => {
    for (const url of urls) await wsEcho(url)
  })
  t.ok(compared > 320, `${compared} cases compared`)
  t.equal(agreed, compared)
})
