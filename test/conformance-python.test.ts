// echohub's verdicts for Python's `websockets` (Debian's python3-websockets) equal the Autobahn
// fuzzingserver's where it was stable: every case of sections 1-7, 9 and 10, and a sample of 12
// and 13 (all of them: test/long/, `npm run test:long`). The client runs in a Python process of
// its own.
import t from 'tap'
import { compareWithReference, DEFLATE_SAMPLE, PLAIN_IDS, pythonEcho, pythonMissing, RACY } from './helpers/conformance.js'

const { version, missing } = await pythonMissing(t)

t.test(`python websockets ${version ?? ''}: sections 1-7, 9 and 10 and a sample of 12 and 13, as the fuzzingserver judged them`, { skip: missing ?? false }, async t => {
  const { compared, agreed } = await compareWithReference(t, 'python', version!, [...PLAIN_IDS, ...DEFLATE_SAMPLE], pythonEcho, RACY)
  t.ok(compared > 320, `${compared} cases compared`)
  t.equal(agreed, compared)
})
