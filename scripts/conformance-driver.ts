// Runs one of the clients the conformance suite is compared on against a list of case URLs (an
// Autobahn fuzzingserver's or echohub's), one connection after another, and prints the client's
// name and version first. Used by scripts/conformance-reference.py.
// Usage: node --import @tapjs/typescript/import scripts/conformance-driver.ts ws|sloppy|chromium URL...
import { chromiumEcho, launchChromium, sloppyEcho, wsEcho, wsVersion } from '../test/helpers/conformance.js'

const [client, ...urls] = process.argv.slice(2)
if (client === 'ws') {
  console.log(`ws ${wsVersion}`)
  for (const url of urls) await wsEcho(url)
} else if (client === 'sloppy') {
  console.log('sloppy 1')
  for (const url of urls) await sloppyEcho(url)
} else if (client === 'chromium') {
  const browser = await launchChromium()
  console.log(`chromium ${browser.version()}`)
  try { await chromiumEcho(browser, urls) } finally { await browser.close() }
} else {
  console.error('usage: conformance-driver.ts ws|sloppy|chromium URL...')
  process.exit(2)
}
