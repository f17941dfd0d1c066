// The chat page with identity on, in a real headless Chromium: names in place of client ids, and
// expiry, forbidden rooms and non-admin figures said in words.
import t, { type Test } from 'tap'
import type { Page } from 'playwright-core'
import { newPage as openPage, portOf, skip, startServers } from './helpers/browser.js'
import { SECRET, now, token } from './helpers/tokens.js'

// The little of the DOM that the functions run inside the page touch (this project compiles without lib.dom).
declare const document: { querySelector: (selector: string) => { textContent: string | null } | null }

async function chatPort (t: Test): Promise<number> {
  return portOf(await startServers(t, ['--only', 'chat', '--chat-port', '0', '--jwt-secret', SECRET]), 'chat')
}

/** Waits for the welcome: `#client-id` then reads "7 (Ana)". */
async function welcomed (page: Page, name: string): Promise<number> {
  await page.waitForFunction((n) => new RegExp(`^\\d+ \\(${n}\\)$`).test(document.querySelector('#client-id')?.textContent ?? ''), name, { timeout: 10_000 })
  return Number((await page.textContent('#client-id'))!.split(' ')[0])
}

t.test('two pages with two tokens see each other\'s names in messages and room members', { skip }, async (t) => {
  const port = await chatPort(t)
  const ana = await openPage(t, `http://127.0.0.1:${port}/?token=${await token({ sub: 'u1', name: 'Ana' })}`)
  const bob = await openPage(t, `http://127.0.0.1:${port}/?token=${await token({ sub: 'u2', name: 'Bob' })}`)
  await welcomed(ana.page, 'Ana')
  await welcomed(bob.page, 'Bob')

  await ana.page.fill('#message', 'hello from Ana')
  await ana.page.press('#message', 'Enter')
  await bob.page.locator('#log .entry.in[data-type="message"] .entry-summary', { hasText: 'Ana: hello from Ana' }).waitFor()
  t.pass('Bob sees Ana\'s name on her message')

  for (const { page } of [ana, bob]) {
    await page.fill('#room-name', 'lab')
    await page.click('#join-room')
    await page.locator('#rooms .room', { hasText: 'members: Ana' }).waitFor()
  }
  for (const { page } of [ana, bob]) await page.locator('#rooms .room', { hasText: 'members: Ana, Bob' }).waitFor()
  t.pass('both pages list the room\'s members by name')
  await bob.page.selectOption('#message-target', 'lab')
  await bob.page.fill('#message', 'to the lab')
  await bob.page.press('#message', 'Enter')
  await ana.page.locator('#log .entry.in[data-type="message"] .entry-summary', { hasText: '[lab] Bob: to the lab' }).waitFor()
  t.pass('Ana sees Bob\'s name on his room message')
  t.same([...ana.errors, ...bob.errors], [], 'no uncaught errors in the pages')
})

t.test('the page says "not allowed in this room", hides admin figures, and says "token expired"', { skip }, async (t) => {
  const port = await chatPort(t)
  const { page, errors } = await openPage(t, `http://127.0.0.1:${port}/?token=${await token({ sub: 'u3', name: 'Cy', rooms: ['lab-*'], exp: now() + 4 })}`)
  await welcomed(page, 'Cy')
  await page.fill('#room-name', 'ops')
  await page.click('#join-room')
  await page.locator('#room-error', { hasText: 'You are not allowed in this room (ops)' }).waitFor()
  t.pass('a forbidden room is refused in words')
  await page.locator('#stats-state', { hasText: 'server figures are for admins' }).waitFor()
  t.ok(await page.locator('#stats').isHidden(), 'a token without admin: the figures are hidden')
  await page.locator('#state-detail', { hasText: 'token expired' }).waitFor({ timeout: 10_000 })
  t.equal(await page.textContent('#state'), 'disconnected')
  await page.locator('#log .entry[data-type="close"]', { hasText: '4401 token expired' }).waitFor()
  t.pass('expiry is said in words, with no retry loop')
  t.same(errors, [], 'no uncaught errors in the page')
})
