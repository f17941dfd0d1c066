// echohub's verdicts for Python's `websockets` on sections 12 and 13 (permessage-deflate, 1000
// compressed messages a case) equal the Autobahn fuzzingserver's on every case where it was
// stable. Not part of `npm test`, which compares a sample of them: `npm run test:long`.
import t from 'tap'
import { compareWithReference, DEFLATE_IDS, pythonEcho, pythonMissing } from '../helpers/conformance.js'

const { version, missing } = await pythonMissing(t)

t.test(`python websockets ${version ?? ''}: sections 12 and 13, as the fuzzingserver judged them`, { skip: missing ?? false }, async t => {
  const { compared, agreed } = await compareWithReference(t, 'python', version!, DEFLATE_IDS, pythonEcho)
  t.equal(agreed, compared)
})
