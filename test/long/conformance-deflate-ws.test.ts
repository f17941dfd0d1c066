// echohub's verdicts for Node's `ws` on sections 12 and 13 (permessage-deflate, 1000 compressed
// messages a case) equal the Autobahn fuzzingserver's on every case where it was stable. Not
// part of `npm test`, which compares a sample of them: `npm run test:long`.
import t from 'tap'
import { compareWithReference, DEFLATE_IDS, wsEcho, wsVersion } from '../helpers/conformance.js'

t.test(`ws ${wsVersion}: sections 12 and 13, as the fuzzingserver judged them`, async t => {
  const { compared, agreed } = await compareWithReference(t, 'ws', wsVersion, DEFLATE_IDS, async urls => {
    for (const url of urls) await wsEcho(url)
  })
  t.equal(agreed, compared)
})
