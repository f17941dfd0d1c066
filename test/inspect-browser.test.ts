// The inspector page in a real headless Chromium, against the servers as `npm start` builds them.
import t, { type Test } from 'tap'
import type { Page } from 'playwright-core'
import { closed, connect, nextJson } from './helpers/index.js'
import { newPage, portOf, skip, startServers } from './helpers/browser.js'

// The little of the DOM the functions run inside the page touch (this project compiles without lib.dom).
declare const window: { __xss?: number }

const start = (t: Test) => startServers(t, ['--only', 'echo,chat', '--echo-port', '0', '--chat-port', '0'])

async function openInspector (t: Test, url: string): Promise<{ page: Page, errors: string[] }> {
  const { page, errors } = await newPage(t, url)
  await page.waitForSelector('#state[data-state="open"]')
  return { page, errors }
}

t.test('the inspector shows a device\'s frames both ways and closes it with the code and reason asked', { skip }, async (t) => {
  const hub = await start(t)
  const device = await connect(t, `ws://127.0.0.1:${portOf(hub, 'echo')}/device/1?delay=50`)
  const id = [...hub.registry.connections][0]!.id
  const { page, errors } = await openInspector(t, `http://127.0.0.1:${portOf(hub, 'chat')}/inspect`)

  const row = page.locator(`#connections tbody tr[data-id="${id}"]`)
  await row.waitFor()
  t.match(await row.textContent(), '/device/1', 'the list shows its path')
  t.match(await row.textContent(), 'delay=50', 'and its controls')
  await row.locator('button.watch').click()
  await page.locator('#watching', { hasText: `Connection ${id}` }).waitFor()

  const attack = 'hello <img src=x onerror="window.__xss = 1">'
  device.send(attack)
  const reply = await nextJson(device)
  t.equal(reply.original_message, attack, 'the device got its (late) echo')
  const incoming = page.locator('#log li.entry.in[data-type="text"]')
  const outgoing = page.locator('#log li.entry.out[data-type="text"]')
  await incoming.first().waitFor()
  await outgoing.first().waitFor()
  t.equal(await incoming.first().locator('.entry-raw').textContent(), attack, 'the frame from the device, as text')
  t.match(await outgoing.first().locator('.entry-raw').textContent(), `"original_message":${JSON.stringify(attack)}`, 'the envelope back to it')
  t.match(await incoming.first().locator('.entry-summary').textContent(), `${Buffer.byteLength(attack)} bytes`, 'with its size')
  t.equal(await page.locator('#log img').count(), 0, 'no element was made from the payload')
  t.equal(await page.evaluate(() => window.__xss), undefined, 'its handler never ran')

  await page.fill('#close-code', '4001')
  await page.fill('#close-reason', 'closed from the inspector')
  await page.click('#close')
  t.same(await closed(device), { code: 4001, reason: 'closed from the inspector' }, 'exactly that code and reason')
  await page.locator('#log li.entry.out[data-type="close"]').waitFor()
  t.same(errors, [], 'no uncaught errors in the page')
})

t.test('the inspector sends text and binary, pings and drops', { skip }, async (t) => {
  const hub = await start(t)
  const device = await connect(t, `ws://127.0.0.1:${portOf(hub, 'echo')}/raw`)
  const pinged = new Promise((resolve) => device.once('ping', resolve))
  const id = [...hub.registry.connections][0]!.id
  const { page, errors } = await openInspector(t, `http://127.0.0.1:${portOf(hub, 'chat')}/inspect`)
  await page.locator(`#connections tbody tr[data-id="${id}"] button.watch`).click()
  await page.locator('#watching', { hasText: `Connection ${id}` }).waitFor()
  const inbox: Array<{ data: Buffer, isBinary: boolean }> = []
  const got = new Promise<void>((resolve) => device.on('message', (data: Buffer, isBinary: boolean) => { inbox.push({ data, isBinary }); if (inbox.length === 2) resolve() }))
  await page.fill('#text', 'from the page')
  await page.click('#send-text')
  await page.fill('#hex', 'de ad be ef')
  await page.click('#send-binary')
  await got
  t.same(inbox.map((m) => [m.isBinary, m.isBinary ? m.data.toString('hex') : m.data.toString()]), [[false, 'from the page'], [true, 'deadbeef']])
  await page.locator('#log li.entry.out[data-type="binary"] .entry-raw', { hasText: 'de ad be ef' }).waitFor()
  await page.fill('#hex', 'xyz')
  await page.click('#send-binary')
  t.match(await page.textContent('#hex-error'), /hex digits/, 'bad hex is refused in the page')
  // The heartbeat may have pinged the device already: the button's pong is one more than those.
  const pongs = '#log li.entry.in[data-type="pong"]'
  const before = await page.locator(pongs).count()
  await page.click('#ping')
  await pinged
  await page.locator(pongs).nth(before).waitFor()
  t.pass('the ping went out and its pong shows')
  await page.click('#drop')
  t.equal((await closed(device)).code, 1006, 'dropped: no close frame')
  t.same(errors, [], 'no uncaught errors in the page')
})

t.test('with --auth-token, the inspector passes its ?token= on; without it, it says why and stops', { skip }, async (t) => {
  const hub = await startServers(t, ['--only', 'echo,chat', '--echo-port', '0', '--chat-port', '0', '--auth-token', 's3cret-token_42'])
  const base = `http://127.0.0.1:${portOf(hub, 'chat')}`
  const device = await connect(t, `ws://127.0.0.1:${portOf(hub, 'echo')}/?token=s3cret-token_42`)
  const id = [...hub.registry.connections][0]!.id
  const { page, errors } = await openInspector(t, `${base}/inspect?token=s3cret-token_42`)
  await page.locator(`#connections tbody tr[data-id="${id}"]`).waitFor()
  t.pass('with the token: connected, and the list shows the device')
  t.notMatch(await page.textContent('body'), 's3cret', 'the token is not shown')

  const refused = await newPage(t, `${base}/inspect`)
  await refused.page.waitForSelector('#state[data-state="refused"]')
  t.match(await refused.page.textContent('#state-detail'), /^a valid token is required.*\(HTTP 401; reload the page to try again\)$/, 'without it: the server\'s reason, and no retrying')
  t.same([...errors, ...refused.errors], [], 'no uncaught errors in the pages')
  device.close()
})
