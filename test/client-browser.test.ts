// echohub/client in a real headless Chromium, loaded from /client.js as a page loads it: a send
// retried across a forced disconnect delivered once, a resume on another instance with no gap and
// no duplicate, a token refreshed past its first exp, and a Redis restarted empty reported as epoch.
import t, { type Test } from 'tap'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import type { Page } from 'playwright-core'
import { newPage, skip as chromiumSkip } from './helpers/browser.js'
import { drop, startChat, type Hub } from './helpers/client.js'
import { expiryOf } from '../src/client/index.js'
import { joinChat, drain } from './helpers/chat.js'
import { eventually } from './helpers/index.js'
import { REDIS_URL, ownRedis, redisMissing, redisServerMissing, testPrefix } from './helpers/redis.js'
import { SECRET, now, token } from './helpers/tokens.js'

const redisSkip = chromiumSkip === false ? await redisMissing() : chromiumSkip
if (redisSkip !== undefined && process.env.CI) t.fail(`${redisSkip}: CI must run the browser client tests on Redis`)
const serverSkip = redisSkip ?? await redisServerMissing()
if (serverSkip !== undefined && process.env.CI) t.fail(`${serverSkip}: CI must run the browser Redis restart test`)

// What the page-side functions touch (this project compiles without lib.dom).
declare const window: Record<string, any>
declare const WebSocket: new (url: string) => any

const pageErrors = new Map<Test, string[]>()
function noPageErrors (t: Test): void {
  t.same(pageErrors.get(t), [], 'no uncaught errors in the page')
}

/**
 * A page of `hub`'s origin with the client imported from /client.js as `window.echohub`, and a
 * page-side log: every delivered message, joined event and state in `window.seen`.
 */
async function clientPage (t: Test, hub: Hub): Promise<Page> {
  const { page, errors } = await newPage(t, `${hub.http}/health`)
  pageErrors.set(t, errors)
  await page.evaluate(async () => {
    window.echohub = await import('/client.js' as string)
    window.seen = { messages: [], joined: [], states: [] }
    // A WebSocket that loses the server's acks on its first connection, as a connection that dies
    // between the server taking a message and its ack arriving.
    let first = true
    window.LossySocket = class {
      ws: any
      lossy: boolean
      constructor (url: string) { this.ws = new WebSocket(url); this.lossy = first; first = false }
      get readyState () { return this.ws.readyState }
      send (data: string) { this.ws.send(data) }
      close (code?: number, reason?: string) { this.ws.close(code, reason) }
      addEventListener (type: string, listener: (event: any) => void) {
        this.ws.addEventListener(type, (event: any) => {
          if (type === 'message' && this.lossy && String(event.data).startsWith('{"type":"ack"')) return
          listener(event)
        })
      }
    }
    window.watch = (chat: any) => {
      chat.on('message', (m: any) => window.seen.messages.push(m))
      chat.on('joined', (j: any) => window.seen.joined.push(j))
      chat.on('state', (s: any) => window.seen.states.push(s))
      return chat
    }
  })
  t.teardown(() => page.evaluate(() => window.chat?.close()).catch(() => {}))
  return page
}

t.test('in Chromium, a send retried across a forced disconnect is delivered exactly once', { skip: chromiumSkip }, async (t) => {
  const hub = await startChat(t)
  const observer = await joinChat(t, hub.ws)
  observer.ws.send('{"type":"join","room":"lab"}')
  t.equal((await observer.inbox.next()).type, 'joined')
  const page = await clientPage(t, hub)
  const clientId = await page.evaluate(async () => {
    window.chat = window.watch(window.echohub.connect('/ws', { WebSocket: window.LossySocket, reconnectDelay: 50 }))
    await window.chat.join('lab')
    window.sent = window.chat.send('lab', 'once', { key: 'browser-once' })
    return window.chat.clientId
  })
  let seen = await observer.inbox.next()
  while (seen.type === 'presence') seen = await observer.inbox.next()
  t.match(seen, { type: 'message', payload: 'once', seq: 1 }, 'the server took it')
  await drop(hub.http, clientId)
  const result = await page.evaluate(async () => await window.sent)
  t.same(result, { id: seen.id, seq: 1, duplicate: true }, 'acked after the reconnect, as a duplicate')
  const after = await page.evaluate(async () => await window.chat.send('lab', 'next'))
  t.equal(after.seq, 2)
  const rest = await drain(observer)
  t.same(rest.filter((f) => f.type === 'message').map((f) => f.payload), ['next'], 'the observer got each once')
  t.same(await page.evaluate(() => window.seen.messages.map((m: any) => m.seq)), [1, 2], 'the page delivered each once, in order')
  noPageErrors(t)
})

t.test('in Chromium, a client that reconnects to another instance resumes with no gap and no duplicate', { skip: redisSkip ?? false }, async (t) => {
  const prefix = testPrefix(t)
  const args = ['--redis', REDIS_URL, '--redis-prefix', prefix, '--rate-limit', '1000', '--rate-burst', '1000']
  const one = await startChat(t, args)
  const two = await startChat(t, args)
  const page = await clientPage(t, one)
  await page.evaluate(async (urls) => {
    window.target = urls[0]
    window.chat = window.watch(window.echohub.connect(() => window.target, { reconnectDelay: 50 }))
    await window.chat.join('feed')
    window.writer = window.echohub.connect(urls[1], { reconnectDelay: 50 })
    await window.writer.join('feed')
    window.acked = []
    window.sendSome = async (n: number) => {
      for (let i = 0; i < n; i++) window.acked.push((await window.writer.send('feed', i)).seq)
    }
    await window.sendSome(20)
  }, [one.ws, two.ws])
  await page.evaluate((url) => { window.target = url }, two.ws)
  await one.close()
  await page.evaluate(async () => await window.sendSome(20))
  await page.waitForFunction(() => window.seen.joined.some((j: any) => j.rejoined), undefined, { timeout: 10_000 })
  await page.evaluate(async () => await window.sendSome(20))
  await page.waitForFunction(() => window.seen.messages.length >= 60, undefined, { timeout: 10_000 })
  const { acked, seqs, rejoined } = await page.evaluate(() => ({ acked: window.acked, seqs: window.seen.messages.map((m: any) => m.seq), rejoined: window.seen.joined.find((j: any) => j.rejoined) }))
  t.equal(rejoined.recovered, true, 'resumed on the other instance')
  t.same(acked, Array.from({ length: 60 }, (_, i) => i + 1))
  t.same(seqs, acked, 'every acked message once, in order')
  await page.evaluate(() => window.writer.close())
  noPageErrors(t)
})

t.test('in Chromium, a token refresh keeps the connection past the first token\'s exp', { skip: chromiumSkip }, async (t) => {
  const hub = await startChat(t, ['--jwt-secret', SECRET])
  const page = await clientPage(t, hub)
  let issued = 0
  await page.exposeFunction('newToken', async () => { issued++; return await token({ sub: 'u1' }) })
  const first = await token({ sub: 'u1', exp: now() + 3 })
  const clientId = await page.evaluate(async (first) => {
    window.chat = window.watch(window.echohub.connect('/ws', { token: first, getToken: window.newToken, reconnectDelay: 50 }))
    await new Promise((resolve) => window.chat.on('state', (s: any) => { if (s.state === 'open') resolve(s) }))
    return window.chat.clientId
  }, first)
  t.equal(issued, 0, 'connected with the first token')
  // Past the first token's exp, with a second to spare for the server's check.
  await new Promise((resolve) => setTimeout(resolve, expiryOf(first)! + 1500 - Date.now()))
  t.ok(issued >= 1, 'the page asked for a new token')
  const state = await page.evaluate(() => ({ state: window.chat.state.state, clientId: window.chat.clientId, states: window.seen.states.map((s: any) => s.state) }))
  t.same(state, { state: 'open', clientId, states: ['connecting', 'open'] }, 'still on its first connection')
  const sent = await page.evaluate(async () => await window.chat.send(null, 'after exp'))
  t.equal(sent.duplicate, false, 'and it still sends')
  noPageErrors(t)
})

t.test('in Chromium, after Redis restarts empty the client reports recovered:false with reason epoch', { skip: serverSkip ?? false }, async (t) => {
  const redis = await ownRedis(t)
  const hub = await startChat(t, ['--redis', redis.url])
  const page = await clientPage(t, hub)
  await page.evaluate(async () => {
    window.chat = window.watch(window.echohub.connect('/ws', { reconnectDelay: 50 }))
    await window.chat.join('lab')
    for (const text of ['a', 'b', 'c']) await window.chat.send('lab', text)
    window.chat.stop()
  })
  const redisState = async () => ((await (await fetch(`${hub.http}/health`)).json()) as { redis?: string }).redis
  await redis.stop()
  await eventually(async () => await redisState() === 'down', 'echohub to see Redis gone', 15_000)
  await redis.start()
  await eventually(async () => await redisState() !== 'down', 'echohub back on Redis', 15_000)
  const joined = await page.evaluate(async () => {
    const rejoined = new Promise((resolve) => window.chat.on('joined', (j: any) => { if (j.rejoined) resolve(j) }))
    window.chat.reconnect()
    return await rejoined
  }) as { recovered: boolean, reason?: string }
  t.equal(joined.recovered, false)
  t.equal(joined.reason, 'epoch')
  t.equal((await page.evaluate(async () => await window.chat.send('lab', 'new'))).seq, 1, 'seq starts again')
  noPageErrors(t)
})

t.test('the chat page runs on the client: its sends carry a key and are acked, and a dropped connection rejoins with since and epoch', { skip: chromiumSkip }, async (t) => {
  const hub = await startChat(t)
  const { page, errors } = await newPage(t, `${hub.http}/`)
  await page.waitForSelector('#state[data-state="open"]')
  const pageId = Number(await page.textContent('#client-id'))
  await page.fill('#room-name', 'lab')
  await page.press('#room-name', 'Enter')
  await page.locator('#rooms .room', { hasText: 'members:' }).waitFor()
  await page.selectOption('#message-target', 'lab')
  await page.fill('#message', 'first')
  await page.press('#message', 'Enter')
  await page.locator('#log .entry.in[data-type="ack"]', { hasText: 'stored: id' }).waitFor()
  const sent = JSON.parse((await page.locator('#log .entry.out[data-type="message"] .entry-raw').first().textContent())!) as Record<string, unknown>
  t.match(sent, { type: 'message', room: 'lab', payload: 'first', key: /^[0-9a-f]{32}$/, ref: Number }, 'a key and a ref on the page\'s send')

  const publisher = await joinChat(t, hub.ws)
  publisher.ws.send('{"type":"join","room":"lab"}')
  await drop(hub.http, pageId)
  await page.waitForSelector('#state[data-state="waiting"]')
  publisher.ws.send('{"type":"message","room":"lab","payload":"while away"}')
  await page.waitForSelector('#state[data-state="open"]', { timeout: 10_000 })
  await page.locator('#log .entry.in[data-type="message"]', { hasText: '[lab] client' }).filter({ hasText: 'while away' }).waitFor()
  const rejoin = JSON.parse((await page.locator('#log .entry.out[data-type="join"] .entry-raw').last().textContent())!) as Record<string, unknown>
  t.match(rejoin, { type: 'join', room: 'lab', since: 1, epoch: String }, 'rejoined with since and epoch')
  await page.locator('#rooms .room .seq', { hasText: 'seq 2' }).waitFor()
  t.pass('the panel follows the seq the client delivered')
  t.same(errors, [], 'no uncaught errors in the page')
})

t.test('the browser example of docs/client.md works as written, from a page of another origin', { skip: chromiumSkip }, async (t) => {
  const hub = await startChat(t)
  const doc = readFileSync(fileURLToPath(new URL('../docs/client.md', import.meta.url)), 'utf8')
  const html = /## In a browser[\s\S]*?```html\n([\s\S]*?)```/.exec(doc)![1]!.replaceAll('localhost:5000', `127.0.0.1:${hub.port}`)
  const site = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(html))
  await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => site.close(() => resolve())))
  const { page, errors } = await newPage(t, `http://127.0.0.1:${(site.address() as AddressInfo).port}/`)
  await page.locator('#state', { hasText: /^connected as client \d+$/ }).waitFor()
  await page.waitForFunction(() => window.document.querySelector('#text') !== null)
  await page.fill('#text', 'hello from the example')
  await page.press('#text', 'Enter')
  await page.locator('#log li', { hasText: 'you: "hello from the example"' }).waitFor()
  t.pass('it connects, joins, sends and shows the message')
  t.same(errors, [], 'no uncaught errors in the page')
})
