// echohub's verdicts for Chromium's own WebSocket (driven by playwright-core) equal the Autobahn
// fuzzingserver's where it was stable, on a representative subset of the cases (every section,
// the slow ones sampled).
import t from 'tap'
import { existsSync } from 'node:fs'
import { CHROMIUM, chromiumEcho, compareWithReference, launchChromium, selectCases } from './helpers/conformance.js'

const SUBSET = ['1.*', '2.*', '3.*', '4.*', '5.*', '6.1.*', '6.2.*', '6.3.*', '6.4.*', '6.5.*', '6.6.*', '6.12.*', '6.20.*', '6.22.1', '6.23.*',
  '7.*', '9.1.1', '9.2.1', '9.5.6', '9.7.1', '10.*', '12.1.1', '12.2.11', '12.5.2', '13.1.1', '13.2.1', '13.3.2', '13.6.1', '13.7.11']

// A text message, then a bad frame: whether Chromium's page echoes the text before its network
// side fails the connection on the bad frame is a race inside Chromium (OK or NON-STRICT), tipped
// by load; these are reported, not failed, when they differ twice.
const RACY = ['3.2', '3.3', '3.4', '4.1.3', '4.1.4', '4.1.5', '4.2.3', '4.2.4', '4.2.5', '5.15']

const missing = existsSync(CHROMIUM) ? undefined : `no Chromium at ${CHROMIUM} (apt-get install chromium)`
if (missing !== undefined && process.env.CI) t.fail(`${missing}: CI must run the browser tests`)

t.test('Chromium: a subset of the Autobahn cases, as the fuzzingserver judged them', { skip: missing ?? false }, async t => {
  const browser = await launchChromium()
  t.teardown(() => browser.close())
  const version = browser.version()
  const ids = selectCases(SUBSET).map(c => c.id)
  const { compared, agreed } = await compareWithReference(t, 'chromium', version, ids, urls => chromiumEcho(browser, urls), RACY)
  t.ok(compared > 150, `${compared} cases compared`)
  t.equal(agreed, compared)
})
