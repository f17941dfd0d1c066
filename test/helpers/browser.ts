// Browser-test plumbing shared by every Chromium test: Debian's Chromium (skipped with the reason
// on a user's machine, a failure under CI), one browser per test file, pages in contexts of their
// own, and the servers as `npm start` builds them on 127.0.0.1, all closed in teardown.
import t, { type Test } from 'tap'
import { existsSync } from 'node:fs'
import { pino } from 'pino'
import { chromium, type Browser, type BrowserContextOptions, type Page } from 'playwright-core'
import { parseConfig, startEchohub, type Echohub } from '../../index.js'

const CHROMIUM = '/usr/bin/chromium'
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']

const missing = existsSync(CHROMIUM) ? undefined : `no Chromium at ${CHROMIUM} (apt-get install chromium)`
if (missing !== undefined && process.env.CI) t.fail(`${missing}: CI must run the browser tests`)
/** A test's `skip` option: the reason Chromium cannot run here, or false. */
export const skip = missing ?? false

let browser: Browser | undefined
t.teardown(async () => { await browser?.close() })

/** A new page in its own context at `url` (e.g. a phone's viewport), closed in teardown, with its uncaught errors collected. */
export async function newPage (t: Test, url: string, options: BrowserContextOptions = {}): Promise<{ page: Page, errors: string[] }> {
  browser ??= await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS })
  const context = await browser.newContext(options)
  t.teardown(() => context.close())
  const page = await context.newPage()
  const errors: string[] = []
  page.on('pageerror', (err) => errors.push(err.message))
  await page.goto(url)
  return { page, errors }
}

/** The servers of `echohub <args>` on 127.0.0.1, logging nothing; closed in teardown. */
export async function startServers (t: Test, args: string[]): Promise<Echohub> {
  const parsed = parseConfig(['--host', '127.0.0.1', '--log-level', 'silent', ...args], {})
  if (parsed.help) throw new Error('unexpected --help')
  const hub = await startEchohub(parsed.config, { logger: pino({ level: 'silent' }) })
  t.teardown(() => hub.close())
  return hub
}

export function portOf (hub: Echohub, name: string): number {
  return hub.servers.find((s) => s.name === name)!.port
}
