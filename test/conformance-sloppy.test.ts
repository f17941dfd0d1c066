// A deliberately sloppy client (no UTF-8 check, ignores pings, echoes everything as text,
// always closes 1000) gets FAILED, WRONG CODE and UNCLEAN from echohub exactly where the Autobahn
// fuzzingserver gives them, on every case where the fuzzingserver's own verdict was stable.
import t from 'tap'
import { SUITE } from '../src/conformance/cases.js'
import { compareWithReference, referenceTable, sloppyEcho } from './helpers/conformance.js'

const ids = SUITE.filter(c => !c.id.startsWith('R.')).map(c => c.id)

t.test('the sloppy client: every Autobahn case, as the fuzzingserver judged it', async t => {
  const { compared, agreed } = await compareWithReference(t, 'sloppy', '1', ids, async urls => {
    for (const url of urls) await sloppyEcho(url)
  })
  t.ok(compared > 500, `${compared} cases compared`)
  t.equal(agreed, compared)
  // the comparison means something only if the reference itself condemns the client
  const verdicts = Object.values(referenceTable().clients.sloppy!.cases)
  for (const word of ['FAILED', 'WRONG CODE', 'UNCLEAN']) {
    t.ok(verdicts.some(v => v.stable && (v.behavior === word || v.behaviorClose === word)), `the fuzzingserver gives it ${word} somewhere`)
  }
})
