// The browser pages in a real headless Chromium, against the chat server as `npm start` builds it.
import t, { type Test } from 'tap'
import { existsSync } from 'node:fs'
import { pino } from 'pino'
import { chromium, type Browser, type Page } from 'playwright-core'
import { parseConfig, startEchohub, type Echohub } from '../src/index.js'
import { joinChat } from './helpers/chat.js'

const CHROMIUM = '/usr/bin/chromium'
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']
// Backoff starts at 1 s and the page may need a second try while the server restarts.
const RECONNECT_WAIT_MS = 20_000
const silent = pino({ level: 'silent' })

// The little of the DOM that the functions run inside the page touch (this project compiles without lib.dom).
interface PageElement { textContent: string | null, value?: string, getAttribute: (name: string) => string | null }
declare const document: { querySelector: (selector: string) => PageElement | null, querySelectorAll: (selector: string) => Iterable<PageElement> }
declare const window: { __xss?: number }

const missing = existsSync(CHROMIUM) ? undefined : `no Chromium at ${CHROMIUM} (apt-get install chromium)`
if (missing !== undefined && process.env.CI) t.fail(`${missing}: CI must run the browser tests`)
const skip = missing ?? false

let browser: Browser | undefined
async function getBrowser (): Promise<Browser> {
  browser ??= await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS })
  return browser
}
t.teardown(async () => { await browser?.close() })

/** The servers on 127.0.0.1, port 0 unless given; closed in teardown unless closed before. */
async function start (t: Test, args: string[]): Promise<Echohub> {
  const parsed = parseConfig(['--host', '127.0.0.1', '--log-level', 'silent', ...args], {})
  if (parsed.help) throw new Error('unexpected --help')
  const hub = await startEchohub(parsed.config, { logger: silent })
  t.teardown(() => hub.close())
  return hub
}

function portOf (hub: Echohub, name: string): number {
  return hub.servers.find((s) => s.name === name)!.port
}

const pageErrors = new WeakMap<Page, string[]>()

/** A new page in its own context, closed in teardown; its uncaught errors are kept for noErrors(). */
async function openPage (t: Test, url: string): Promise<Page> {
  const context = await (await getBrowser()).newContext()
  t.teardown(() => context.close())
  const page = await context.newPage()
  const errors: string[] = []
  pageErrors.set(page, errors)
  page.on('pageerror', (err) => errors.push(err.message))
  await page.goto(url)
  return page
}

function noErrors (t: Test, ...pages: Page[]): void {
  t.same(pages.flatMap((page) => pageErrors.get(page) ?? []), [], 'no uncaught errors in the page')
}

/** Waits until the chat page is connected and has its welcome; returns the client_id it shows. */
async function connected (page: Page, timeout = 10_000): Promise<number> {
  await page.waitForSelector('#state[data-state="open"]', { timeout })
  await page.waitForFunction(() => /^\d+$/.test(document.querySelector('#client-id')?.textContent ?? ''), undefined, { timeout })
  return Number(await page.textContent('#client-id'))
}

t.test('the chat page connects, shows its client_id and the live figures', { skip }, async (t) => {
  const hub = await start(t, ['--only', 'chat', '--chat-port', '0'])
  const page = await openPage(t, `http://127.0.0.1:${portOf(hub, 'chat')}/`)
  const clientId = await connected(page)
  t.same([...hub.registry.connections].map((c) => c.id), [clientId], 'the id shown is the server connection\'s')
  t.equal(await page.textContent('#state'), 'connected')
  t.match(await page.textContent('#url'), new RegExp(`^ws://127\\.0\\.0\\.1:${portOf(hub, 'chat')}/ws$`), 'the ws URL comes from the page location')
  await page.waitForFunction(() => document.querySelector('#stats-chat-clients')?.textContent === '1')
  t.pass('the figures from /stats show one chat client')
  noErrors(t, page)
})

t.test('a message typed in page A appears in page B and in a Node ws client', { skip }, async (t) => {
  const hub = await start(t, ['--only', 'chat', '--chat-port', '0'])
  const base = `http://127.0.0.1:${portOf(hub, 'chat')}`
  const node = await joinChat(t, `ws://127.0.0.1:${portOf(hub, 'chat')}/ws`)
  const a = await openPage(t, base + '/')
  const b = await openPage(t, base + '/')
  const idA = await connected(a)
  await connected(b)
  await a.fill('#message', 'hello from page A')
  await a.press('#message', 'Enter')
  const inB = b.locator('#log .entry.in[data-type="message"] .entry-summary')
  await inB.filter({ hasText: 'hello from page A' }).waitFor()
  t.equal(await inB.last().textContent(), `client ${idA}: hello from page A`, 'page B shows who sent it')
  const frame = await node.inbox.next()
  t.same([frame.type, frame.payload, frame.from], ['message', 'hello from page A', idA], 'the Node client got the broadcast')
  t.equal(await a.inputValue('#message'), '', 'the input is cleared after sending')
  await a.locator('#log .entry.in.mine[data-type="message"]').waitFor()
  t.pass('page A sees its own message, marked as its own')

  await a.click('#send')
  t.equal(await a.locator('#log .entry.out').count(), 1, 'an empty message is not sent')
  noErrors(t, a, b)
})

t.test('a received <img onerror> payload is shown as text and never runs', { skip }, async (t) => {
  const hub = await start(t, ['--only', 'chat', '--chat-port', '0'])
  const page = await openPage(t, `http://127.0.0.1:${portOf(hub, 'chat')}/`)
  await connected(page)
  const node = await joinChat(t, `ws://127.0.0.1:${portOf(hub, 'chat')}/ws`)
  const attack = '<img src=x onerror="window.__xss = 1"><script>window.__xss = 2</script>'
  node.ws.send(JSON.stringify({ type: 'message', payload: attack }))
  node.ws.send(JSON.stringify({ type: 'message', payload: { html: attack } }))
  const entries = page.locator('#log .entry.in[data-type="message"]')
  await entries.nth(1).waitFor()
  t.equal(await entries.nth(0).locator('.entry-summary').textContent(), `client ${node.clientId}: ${attack}`, 'the markup is shown as text')
  t.match(await entries.nth(1).locator('.entry-raw').textContent(), '<img src=x', 'inside an object too')
  t.equal(await page.locator('#log img, #log script').count(), 0, 'no element was created from the payload')
  // An <img src=x> that had been inserted would have fired onerror by the time a later frame is shown.
  node.ws.send(JSON.stringify({ type: 'message', payload: 'after' }))
  await entries.nth(2).waitFor()
  t.equal(await page.evaluate(() => window.__xss), undefined, 'the handler never ran')
  noErrors(t, page)
})

t.test('the page sends custom events and shows the server\'s replies and errors', { skip }, async (t) => {
  const hub = await start(t, ['--only', 'chat', '--chat-port', '0'])
  const page = await openPage(t, `http://127.0.0.1:${portOf(hub, 'chat')}/`)
  await connected(page)
  await page.fill('#event-json', '{"action": "wave", "n": 1}')
  await page.click('#send-event')
  const reply = page.locator('#log .entry.in[data-type="custom_event"] .entry-summary')
  await reply.waitFor()
  t.equal(await reply.textContent(), 'reply: {"status":"received","data":{"action":"wave","n":1}}')
  await page.fill('#event-json', '[1, 2]')
  await page.click('#send-event')
  t.match(await page.textContent('#event-error'), /must be a JSON object/, 'a non-object is refused in the page')
  t.equal(await page.getAttribute('#event-json', 'aria-invalid'), 'true')

  await page.click('.raw-send summary')
  await page.fill('#raw-text', 'not json')
  await page.click('#send-raw')
  const error = page.locator('#log .entry.in[data-type="error"] .entry-summary')
  await error.waitFor()
  t.match(await error.textContent(), /^invalid_json: The message is not valid JSON/)
  t.equal(await page.getAttribute('#state', 'data-state'), 'open', 'still connected')
  noErrors(t, page)
})

t.test('the page reconnects by itself after the server stops and starts again on the same port', { skip }, async (t) => {
  const first = await start(t, ['--only', 'chat', '--chat-port', '0'])
  const port = portOf(first, 'chat')
  const page = await openPage(t, `http://127.0.0.1:${port}/`)
  await connected(page)
  await first.close()
  await page.waitForSelector('#state[data-state="waiting"]')
  t.equal(await page.textContent('#state'), 'disconnected')
  t.match(await page.textContent('#state-detail'), /^reconnecting in \d+ s$/, 'the page says when it tries again')
  t.equal(await page.isVisible('#reconnect-now'), true, 'and offers to try now')
  t.match(await page.locator('#log .entry[data-type="close"]').first().textContent(), /1001/, 'the close code is logged')

  const second = await start(t, ['--only', 'chat', '--chat-port', String(port)])
  const clientId = await connected(page, RECONNECT_WAIT_MS)
  t.same([...second.registry.connections].map((c) => c.id), [clientId], 'connected to the new server, with a new client_id')
  t.equal(await page.locator('#log .entry[data-type="welcome"]').count(), 2, 'welcomed twice')
  await page.fill('#message', 'back again')
  await page.press('#message', 'Enter')
  await page.locator('#log .entry.in[data-type="message"]', { hasText: 'back again' }).waitFor()
  t.pass('and chats again')
  noErrors(t, page)
})

t.test('the echo page learns the echo ports, shows the welcome, envelopes and binary echoes', { skip }, async (t) => {
  const hub = await start(t, ['--echo-port', '0', '--debug-port', '0', '--chat-port', '0'])
  const page = await openPage(t, `http://127.0.0.1:${portOf(hub, 'chat')}/echo.html`)
  const debugUrl = `ws://127.0.0.1:${portOf(hub, 'echo-debug')}/`
  await page.waitForFunction((url) => [...document.querySelectorAll('#target option')].some((o) => o.value === url), debugUrl)
  await page.selectOption('#target', debugUrl)
  t.equal(await page.inputValue('#url'), debugUrl)
  await page.click('#connect')
  await page.waitForSelector('#state[data-state="open"]')
  const welcome = page.locator('#log .entry.in[data-type="welcome"] .entry-summary')
  await welcome.waitFor()
  t.match(await welcome.textContent(), /^client_id \d+ — Welcome to the echohub echo server!/)

  await page.fill('#text', 'from the echo page')
  await page.click('#send-text')
  const envelope = page.locator('#log .entry.in[data-type="echo"]')
  await envelope.waitFor()
  t.match(await envelope.locator('.entry-summary').textContent(), /^message 1 from 127\.0\.0\.1:\d+, same text as sent$/)
  t.match(await envelope.locator('.entry-raw').textContent(), '"original_message": "from the echo page"')

  await page.fill('#hex', 'de ad be ef 00 ff')
  await page.click('#send-binary')
  const binary = page.locator('#log .entry.in[data-type="binary"]')
  await binary.waitFor()
  t.equal(await binary.locator('.entry-summary').textContent(), '6 bytes — same bytes as sent')
  t.equal(await binary.locator('.entry-raw').textContent(), 'de ad be ef 00 ff')

  await page.fill('#hex', 'abc')
  await page.click('#send-binary')
  t.match(await page.textContent('#hex-error'), /even number of digits/, 'bad hex is explained, not sent')

  const rawUrl = `ws://127.0.0.1:${portOf(hub, 'echo')}/raw`
  await page.selectOption('#target', rawUrl)
  await page.click('#connect')
  await page.waitForFunction((url) => document.querySelector('#state')?.getAttribute('data-state') === 'open' && document.querySelector('#state-detail')?.textContent === url, rawUrl)
  await page.fill('#text', 'plain')
  await page.click('#send-text')
  const plain = page.locator('#log .entry.in[data-type="text"] .entry-summary')
  await plain.waitFor()
  t.equal(await plain.textContent(), '5 characters — same text as sent', '/raw echoes the text as is')
  noErrors(t, page)
})

t.test('with --auth-token, the page passes its ?token= on to the WebSocket and to /stats', { skip }, async (t) => {
  const hub = await start(t, ['--only', 'chat', '--chat-port', '0', '--auth-token', 's3cret-token_42'])
  const base = `http://127.0.0.1:${portOf(hub, 'chat')}`
  const refused = await openPage(t, base + '/')
  await refused.waitForSelector('#state[data-state="waiting"]')
  t.match(await refused.textContent('#stats-state'), /HTTP 401/, 'without the token: no figures')
  t.match(await refused.locator('#log .entry[data-type="close"]').first().textContent(), /could not connect/, 'and no connection')

  const page = await openPage(t, base + '/?token=' + encodeURIComponent('s3cret-token_42'))
  await connected(page)
  await page.waitForFunction(() => document.querySelector('#stats-chat-clients')?.textContent === '1')
  t.pass('with it: connected, and the figures show')
  noErrors(t, refused, page)
})
