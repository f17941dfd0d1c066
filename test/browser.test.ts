// The browser pages in a real headless Chromium, against the chat server as `npm start` builds it.
import t, { type Test } from 'tap'
import type { Page } from 'playwright-core'
import { joinChat } from './helpers/chat.js'
import { REDIS_URL, redisMissing, testPrefix } from './helpers/redis.js'
import { newPage, portOf, skip, startServers as start } from './helpers/browser.js'
import { SECRET, token } from './helpers/tokens.js'

// Backoff starts at 1 s and the page may need a second try while the server restarts.
const RECONNECT_WAIT_MS = 20_000
const PHONE = { viewport: { width: 360, height: 740 } }

// The little of the DOM that the functions run inside the page touch (this project compiles without lib.dom).
interface PageElement { textContent: string | null, value?: string, getAttribute: (name: string) => string | null }
declare const document: { querySelector: (selector: string) => PageElement | null, querySelectorAll: (selector: string) => Iterable<PageElement> }
declare const window: { __xss?: number }

const pageErrors = new WeakMap<Page, string[]>()

/** A new page in its own context, closed in teardown; its uncaught errors are kept for noErrors(). */
async function openPage (t: Test, url: string): Promise<Page> {
  const { page, errors } = await newPage(t, url)
  pageErrors.set(page, errors)
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
  // Retries that reach the server while it drains are refused with its reason, which the page
  // puts before the countdown; how many do depends on how long the shutdown takes.
  t.match(await page.textContent('#state-detail'), /(^|; )reconnecting in \d+ s$/, 'the page says when it tries again')
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

t.test('the chat page joins a room, shows its members as they change, and sends to the room', { skip }, async (t) => {
  const hub = await start(t, ['--only', 'chat', '--chat-port', '0'])
  const port = portOf(hub, 'chat')
  const page = await openPage(t, `http://127.0.0.1:${port}/`)
  const pageId = await connected(page)
  await page.fill('#room-name', 'lab')
  await page.press('#room-name', 'Enter')
  await page.locator('#rooms .room', { hasText: `members: ${pageId}` }).waitFor()

  const node = await joinChat(t, `ws://127.0.0.1:${port}/ws`)
  node.ws.send(JSON.stringify({ type: 'join', room: 'lab' }))
  await page.locator('#rooms .room', { hasText: `members: ${pageId}, ${node.clientId}` }).waitFor()
  t.pass('presence join shows in the members list')

  node.ws.send(JSON.stringify({ type: 'message', room: 'lab', payload: 'to the room' }))
  await page.locator('#log .entry.in[data-type="message"]', { hasText: `[lab] client ${node.clientId}: to the room` }).waitFor()
  t.equal(await page.textContent('#rooms .room .seq'), 'seq 1', 'the panel shows the room\'s seq as of its last message')
  await page.selectOption('#message-target', 'lab')
  await page.fill('#message', 'from the page')
  await page.press('#message', 'Enter')
  for (;;) {
    const frame = await node.inbox.next()
    if (frame.type !== 'message' || frame.payload !== 'from the page') continue
    t.same([frame.room, frame.from, frame.seq], ['lab', pageId, 2], 'the page sends to the room it picked')
    break
  }
  await page.locator('#log .entry.in[data-type="message"]', { hasText: '[lab] you: from the page' }).waitFor()
  t.equal(await page.textContent('#rooms .room .seq'), 'seq 2', 'and keeps up with each message')
  node.ws.close()
  await page.locator('#rooms .room', { hasText: `members: ${pageId}` }).filter({ hasNotText: `, ${node.clientId}` }).waitFor()
  t.pass('presence leave shows too')
  await page.click('#rooms .room button')
  await page.locator('#rooms').waitFor({ state: 'hidden' })
  t.pass('leave empties the list')
  noErrors(t, page)
})

t.test('with JWT identity and a bad token, the chat page says why and stops; the echo tester names a bad control', { skip }, async (t) => {
  const hub = await start(t, ['--echo-port', '0', '--debug-port', '0', '--chat-port', '0', '--jwt-secret', SECRET])
  const base = `http://127.0.0.1:${portOf(hub, 'chat')}`
  const page = await openPage(t, base + '/?token=abc.def.ghi')
  await page.waitForSelector('#state[data-state="refused"]')
  t.match(await page.textContent('#state-detail'), /token/, 'the page shows the server\'s reason')
  t.match(await page.locator('#log .entry[data-type="refused"]').first().textContent(), /HTTP 401: /)
  t.equal(await page.isVisible('#reconnect-now'), true, 'and waits for the user instead of retrying')

  // With a good JWT, the echo server's next check is the lab's controls.
  const tester = await openPage(t, base + '/echo.html?token=' + await token({ sub: 'ada' }))
  const echoUrl = `ws://127.0.0.1:${portOf(hub, 'echo')}/`
  await tester.waitForFunction((url) => [...document.querySelectorAll('#target option')].some((o) => o.value === url), echoUrl)
  await tester.fill('#url', echoUrl + '?delay=soon')
  await tester.click('#connect')
  await tester.waitForFunction(() => /^HTTP 400: /.test(document.querySelector('#state-detail')?.textContent ?? ''))
  t.match(await tester.textContent('#state-detail'), /^HTTP 400: delay: must be a whole number/, 'the echo tester names the control')
  noErrors(t, page, tester)
})

t.test('laid out for 1280 and 390 px: the inspector in every nav, its table whole, no field cut', { skip }, async (t) => {
  const hub = await start(t, ['--echo-port', '0', '--debug-port', '0', '--chat-port', '0'])
  const base = `http://127.0.0.1:${portOf(hub, 'chat')}`
  const device = await joinChat(t, `ws://127.0.0.1:${portOf(hub, 'chat')}/ws`)
  for (const width of [1280, 390]) {
    const viewport = { width, height: 800 }
    for (const path of ['/', '/echo.html', '/inspect']) {
      const { page } = await newPage(t, base + path, { viewport })
      t.equal(await page.locator('nav a[href="inspect"]').count(), 1, `${width} px ${path}: the inspector is in the nav`)
      // Elements reaching past the page's right edge (the page itself never scrolls sideways).
      const past = await page.evaluate('[...document.querySelectorAll(\'main *\')].filter((e) => e.getBoundingClientRect().width > 0 && e.getBoundingClientRect().right > document.documentElement.clientWidth + 1).length')
      t.equal(past, 0, `${width} px ${path}: nothing reaches past the right edge`)
    }
    const { page: inspector } = await newPage(t, base + '/inspect', { viewport })
    await inspector.locator('#connections tbody tr').first().waitFor()
    const cut = await inspector.evaluate('(() => { const wrap = document.querySelector(\'.table-wrap\'); return wrap.scrollWidth - wrap.clientWidth })()')
    t.equal(cut, 0, `${width} px: the connections table is whole, RTT included, without scrolling`)
    await inspector.locator('#connections tbody tr button.watch').first().click()
    await inspector.locator('#close-reason').waitFor()
    const reason = await inspector.locator('#close-reason').boundingBox()
    t.ok(reason !== null && reason.width >= 100, `${width} px: the close reason field is usable (${reason?.width} px)`)
    const { page: chat } = await newPage(t, base + '/', { viewport })
    const message = await chat.locator('#message').boundingBox()
    t.ok(message !== null && message.width >= 150, `${width} px: the message field is usable (${message?.width} px)`)
    const picker = await chat.evaluate('(() => { const s = document.querySelector(\'#message-target\'); const ctx = document.createElement(\'canvas\').getContext(\'2d\'); const st = getComputedStyle(s); ctx.font = st.fontWeight + \' \' + st.fontSize + \' \' + st.fontFamily; return s.clientWidth - parseFloat(st.paddingLeft) - parseFloat(st.paddingRight) - 24 - ctx.measureText(s.options[0].text).width })()')
    t.ok((picker as number) >= 0, `${width} px: the room picker shows its whole text`)
  }
  device.ws.close()
})

const noRedis = await redisMissing()
if (noRedis !== undefined && process.env.CI) t.fail(`${noRedis}: CI must run the Redis browser test`)

t.test('on Redis, a page whose server restarts rejoins its room with since and shows what it missed once', { skip: skip || (noRedis ?? false) }, async (t) => {
  const redis = ['--redis', REDIS_URL, '--redis-prefix', testPrefix(t), '--only', 'chat']
  const first = await start(t, [...redis, '--chat-port', '0'])
  const other = await start(t, [...redis, '--chat-port', '0'])
  const port = portOf(first, 'chat')
  const page = await openPage(t, `http://127.0.0.1:${port}/`)
  await connected(page)
  await page.fill('#room-name', 'lab')
  await page.press('#room-name', 'Enter')
  await page.locator('#rooms .room', { hasText: 'members:' }).waitFor()
  const publish = (payload: string) => fetch(`http://127.0.0.1:${portOf(other, 'chat')}/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ room: 'lab', payload }) })
  t.equal((await publish('before')).status, 202)
  await page.locator('#log .entry.in[data-type="message"]', { hasText: '[lab] server: before' }).waitFor()

  await first.close()
  await page.waitForSelector('#state[data-state="waiting"]')
  t.equal((await publish('while away')).status, 202, 'published on the other instance meanwhile')
  await start(t, [...redis, '--chat-port', String(port)])
  await connected(page, RECONNECT_WAIT_MS)
  const resumed = page.locator('#log .entry.in[data-type="message"]', { hasText: '[lab] server: while away' })
  await resumed.waitFor()
  t.equal(await page.locator('#log .entry.out[data-type="join"]', { hasText: 'lab since 1' }).count(), 1, 'the page rejoined with since')
  t.equal((await publish('after')).status, 202)
  await page.locator('#log .entry.in[data-type="message"]', { hasText: '[lab] server: after' }).waitFor()
  t.equal(await resumed.count(), 1, 'the missed message appears once')
  t.equal(await page.locator('#log .entry.in[data-type="message"]', { hasText: '[lab] server: before' }).count(), 1, 'and what it had seen is not repeated')
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
  t.equal(await plain.textContent(), '5 bytes — same text as sent', '/raw echoes the text as is')
  await page.fill('#text', 'héllo ✓')
  await page.click('#send-text')
  t.equal(await page.locator('#log .entry.out[data-type="text"] .entry-summary').last().textContent(), '10 bytes', 'sizes are UTF-8 bytes, as the server and a device count them')
  await plain.nth(1).waitFor()
  t.equal(await plain.nth(1).textContent(), '10 bytes — same text as sent')
  noErrors(t, page)
})

t.test('with ?token=, the links between the pages keep it, and the echo tester never shows it', { skip }, async (t) => {
  const hub = await start(t, ['--echo-port', '0', '--debug-port', '0', '--chat-port', '0', '--auth-token', 's3cret-token_42'])
  const chat = await openPage(t, `http://127.0.0.1:${portOf(hub, 'chat')}/?token=s3cret-token_42`)
  await connected(chat)
  t.notMatch(await chat.textContent('#url'), 's3cret', 'the chat page shows its WebSocket URL without the token')
  await chat.click('nav a[href*="echo.html"]')
  await chat.waitForURL(/\/echo\.html\?token=s3cret-token_42$/)
  t.pass('the echo tester link carried the token')
  const echoUrl = `ws://127.0.0.1:${portOf(hub, 'echo')}/`
  await chat.waitForFunction((url) => [...document.querySelectorAll('#target option')].some((o) => o.value === url), echoUrl)
  await chat.selectOption('#target', echoUrl)
  t.equal(await chat.inputValue('#url'), echoUrl, 'the URL field holds no token')
  await chat.click('#connect')
  await chat.waitForSelector('#state[data-state="open"]')
  t.equal(await chat.textContent('#state-detail'), echoUrl, 'connected (the page added the token), and the status line holds none')
  await chat.fill('#url', echoUrl + '?token=typed-by-hand')
  await chat.click('#connect')
  await chat.waitForSelector('#state[data-state="closed"]')
  await chat.waitForFunction(() => /^HTTP 401: /.test(document.querySelector('#state-detail')?.textContent ?? ''))
  t.pass('a wrong token typed in is used as typed, and the server says why it refused it')
  t.notMatch(await chat.textContent('#log'), /s3cret|typed-by-hand/, 'the log shows no token')
  t.match(await chat.getAttribute('nav a[href*="./"], nav a:not([href*="echo"])', 'href'), /\?token=s3cret-token_42$/, 'the link back to the chat keeps it too')
  noErrors(t, chat)
})

t.test('on a phone, the frames come first and every server fits the drop-down', { skip }, async (t) => {
  const hub = await start(t, ['--echo-port', '0', '--debug-port', '0', '--chat-port', '0'])
  for (const path of ['/', '/echo.html']) {
    const { page } = await newPage(t, `http://127.0.0.1:${portOf(hub, 'chat')}${path}`, PHONE)
    const log = await page.locator('.log-panel').boundingBox()
    const firstPanel = await page.locator('.column .panel').first().boundingBox()
    t.ok(log !== null && firstPanel !== null && log.y < firstPanel.y, `${path}: the frame log is above the controls`)
  }
  const { page } = await newPage(t, `http://127.0.0.1:${portOf(hub, 'chat')}/echo.html`, PHONE)
  await page.waitForFunction(() => [...document.querySelectorAll('#target option')].length === 4)
  // The text of each option, measured in the select's font, against the room the closed select has
  // (a string, as this project compiles without the DOM's types).
  const overflowing = await page.evaluate(`(() => {
    const select = document.querySelector('#target')
    const style = getComputedStyle(select)
    const ctx = document.createElement('canvas').getContext('2d')
    ctx.font = style.fontWeight + ' ' + style.fontSize + ' ' + style.fontFamily
    const room = select.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) - 24
    return [...select.options].filter((o) => ctx.measureText(o.text).width > room).map((o) => o.text)
  })()`)
  t.same(overflowing, [], 'no option is cut off')
})

t.test('with --auth-token, the page passes its ?token= on to the WebSocket and to /stats', { skip }, async (t) => {
  const hub = await start(t, ['--only', 'chat', '--chat-port', '0', '--auth-token', 's3cret-token_42'])
  const base = `http://127.0.0.1:${portOf(hub, 'chat')}`
  const refused = await openPage(t, base + '/')
  await refused.waitForSelector('#state[data-state="refused"]')
  t.match(await refused.textContent('#state-detail'), /^a valid token is required/, 'without the token: the page says why it cannot connect')
  t.equal(await refused.isVisible('#reconnect-now'), true, 'and waits for the user instead of retrying')
  t.match(await refused.textContent('#stats-state'), /HTTP 401/, 'no figures')
  t.match(await refused.locator('#log .entry[data-type="close"]').first().textContent(), /could not connect/, 'and no connection')
  t.match(await refused.locator('#log .entry[data-type="refused"]').first().textContent(), /HTTP 401: a valid token is required/)

  const page = await openPage(t, base + '/?token=' + encodeURIComponent('s3cret-token_42'))
  await connected(page)
  await page.waitForFunction(() => document.querySelector('#stats-chat-clients')?.textContent === '1')
  t.pass('with it: connected, and the figures show')
  noErrors(t, refused, page)
})

t.test('from an origin not on --origins, the pages say so and the chat page stops retrying', { skip }, async (t) => {
  const hub = await start(t, ['--echo-port', '0', '--debug-port', '0', '--chat-port', '0', '--origins', 'https://app.example.com'])
  const base = `http://127.0.0.1:${portOf(hub, 'chat')}`
  const page = await openPage(t, base + '/')
  await page.waitForSelector('#state[data-state="refused"]')
  t.equal(await page.textContent('#state-detail'), `origin ${base} is not allowed (see --origins)`)
  t.equal(hub.registry.connections.size, 0)

  const tester = await openPage(t, base + '/echo.html')
  const echoUrl = `ws://127.0.0.1:${portOf(hub, 'echo')}/`
  await tester.waitForFunction((url) => [...document.querySelectorAll('#target option')].some((o) => o.value === url), echoUrl)
  await tester.selectOption('#target', echoUrl)
  await tester.click('#connect')
  await tester.waitForFunction(() => /^HTTP 403: /.test(document.querySelector('#state-detail')?.textContent ?? ''))
  t.equal(await tester.textContent('#state-detail'), `HTTP 403: origin ${base} is not allowed (see --origins)`, 'the echo tester says why too, from another port')
  noErrors(t, page, tester)
})
