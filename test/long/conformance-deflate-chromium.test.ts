// echohub's verdicts for Chromium's own WebSocket on sections 12 and 13 (permessage-deflate, 1000
// compressed messages a case) equal the Autobahn fuzzingserver's on every case where it was
// stable. Not part of `npm test`, which compares a sample of them: `npm run test:long`.
import t from 'tap'
import { skip } from '../helpers/browser.js'
import { chromiumEcho, compareWithReference, DEFLATE_IDS, launchChromium } from '../helpers/conformance.js'

t.test('Chromium: sections 12 and 13, as the fuzzingserver judged them', { skip }, async t => {
  const browser = await launchChromium()
  t.teardown(() => browser.close())
  const { compared, agreed } = await compareWithReference(t, 'chromium', browser.version(), DEFLATE_IDS, urls => chromiumEcho(browser, urls))
  t.equal(agreed, compared)
})
