// echohub's verdicts for Chromium's own WebSocket (driven by playwright-core) equal the Autobahn
// fuzzingserver's where it was stable: every case of sections 1-7, 9 and 10, and a sample of 12
// and 13 (all of them: test/long/, `npm run test:long`).
import t from 'tap'
import { skip } from './helpers/browser.js'
import { chromiumEcho, compareWithReference, DEFLATE_SAMPLE, launchChromium, PLAIN_IDS, RACY } from './helpers/conformance.js'

t.test('Chromium: sections 1-7, 9 and 10 and a sample of 12 and 13, as the fuzzingserver judged them', { skip }, async t => {
  const browser = await launchChromium()
  t.teardown(() => browser.close())
  const { compared, agreed } = await compareWithReference(t, 'chromium', browser.version(), [...PLAIN_IDS, ...DEFLATE_SAMPLE], urls => chromiumEcho(browser, urls), RACY)
  t.ok(compared > 320, `${compared} cases compared`)
  t.equal(agreed, compared)
})
