import t, { type Test } from 'tap'
import { Writable } from 'node:stream'
import net from 'node:net'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import Fastify from 'fastify'
import { pino } from 'pino'
import { chat, echo, stats, CustomEventError, CHAT_ERROR_CODES, type ChatOptions } from '../index.js'
import { listen } from './helpers/index.js'
import { drain, joinChat, type Frame } from './helpers/chat.js'

const ISO_MS_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

/** An app with one chat endpoint on 127.0.0.1:0, closed in teardown; `url` is the chat's ws URL. */
async function chatServer (t: Test, options: ChatOptions = {}) {
  const server = await listen(t, async (app) => { await app.register(chat, options) })
  return { ...server, url: server.url + (options.path ?? '/ws') }
}

t.test('welcome on connect: client_id, message and server_info in payload, then timestamp', async (t) => {
  const { url, app } = await chatServer(t, { serverInfo: 'test chat' })
  const before = Date.now()
  const a = await joinChat(t, url)
  const b = await joinChat(t, url)
  t.same(Object.keys(a.welcome), ['type', 'payload', 'timestamp'])
  t.same(Object.keys(a.welcome.payload), ['client_id', 'message', 'server_info'])
  t.equal(a.welcome.payload.message, 'Welcome to the echohub chat!')
  t.equal(a.welcome.payload.server_info, 'test chat')
  t.match(a.welcome.timestamp, ISO_MS_UTC)
  t.ok(Date.parse(a.welcome.timestamp) >= before - 1, 'timestamp is now')
  t.same([a.clientId, b.clientId], [1, 2], 'client_id numbers connections of the registry from 1')
  t.equal(app.echohub.snapshot().endpoints.chat!.connections.current, 2)
})

t.test('a message is broadcast to every chat client, the sender included, with from, id and timestamp', async (t) => {
  const { url } = await chatServer(t)
  const clients = [await joinChat(t, url), await joinChat(t, url), await joinChat(t, url)]
  const [a, b, c] = clients as [typeof clients[0], typeof clients[0], typeof clients[0]]
  a.ws.send(JSON.stringify({ type: 'message', payload: 'hello from a' }))
  const copies = await Promise.all(clients.map((x) => x.inbox.nextRaw()))
  const frame = copies[0]!.frame
  t.same(Object.keys(frame), ['type', 'payload', 'from', 'id', 'timestamp'], 'keys in the SPEC order')
  t.equal(frame.type, 'message')
  t.equal(frame.payload, 'hello from a')
  t.equal(frame.from, a.clientId)
  t.equal(frame.id, 1)
  t.match(frame.timestamp, ISO_MS_UTC)
  t.ok(copies.every((x) => x.text === copies[0]!.text && !x.isBinary), 'every client gets the same text frame, byte for byte')

  b.ws.send(JSON.stringify({ type: 'message', payload: { n: 2 } }))
  c.ws.send(JSON.stringify({ type: 'message', payload: [3] }))
  for (const x of clients) {
    const second = await x.inbox.next()
    const third = await x.inbox.next()
    t.same([second.from, second.id, second.payload], [b.clientId, 2, { n: 2 }], 'id is one sequence for the whole endpoint')
    t.same([third.from, third.id, third.payload], [c.clientId, 3, [3]])
  }
})

t.test('broadcasts that arrive together go out in order, and a reply never overtakes them', async (t) => {
  const { url, app } = await chatServer(t)
  const a = await joinChat(t, url)
  const b = await joinChat(t, url)
  // Three frames in one write, so the server reads them in one go and batches the two broadcasts.
  const frames = [{ type: 'message', payload: 'one' }, { type: 'message', payload: 'two' }, { type: 'ping' }]
  a.ws.send(JSON.stringify(frames[0]))
  a.ws.send(JSON.stringify(frames[1]))
  a.ws.send(JSON.stringify(frames[2]))
  const seenByA = [await a.inbox.next(), await a.inbox.next(), await a.inbox.next()]
  t.same(seenByA.map((f) => f.type === 'message' ? f.payload : f.type), ['one', 'two', 'pong'], 'the sender sees its messages, then the pong')
  const seenByB = [await b.inbox.next(), await b.inbox.next()]
  t.same(seenByB.map((f) => [f.payload, f.id]), [['one', 1], ['two', 2]])
  const figures = app.echohub.snapshot().endpoints.chat!
  t.equal(figures.messages.sent, 2 + 4 + 1, 'welcomes, two broadcasts to two clients, one pong: each counted once')
})

t.test('a client joining while a broadcast is queued gets its welcome first', async (t) => {
  const { url, port } = await chatServer(t)
  const a = await joinChat(t, url)
  for (let round = 0; round < 5; round++) {
    // Line up, in one turn of the server's event loop, A's message and B's upgrade request.
    const b = net.connect(port, '127.0.0.1')
    t.teardown(() => b.destroy())
    await once(b, 'connect')
    a.ws.send(JSON.stringify({ type: 'message', payload: round }))
    b.write(`GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`)
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 30) // both are in the server's socket buffers when it looks
    let buffer = Buffer.alloc(0)
    for await (const chunk of b) {
      buffer = Buffer.concat([buffer, chunk as Buffer])
      const head = buffer.indexOf('\r\n\r\n')
      if (head !== -1 && buffer.length >= head + 6) break
    }
    const frames = buffer.subarray(buffer.indexOf('\r\n\r\n') + 4)
    const length = frames[1]! & 0x7f
    const offset = length === 126 ? 4 : 2
    const first = frames.subarray(offset).toString()
    t.match(first, /^\{"type":"welcome"/, `round ${round}: the welcome comes first`)
    b.destroy()
    await a.inbox.next() // A's own copy
  }
})

t.test('the payload comes back as sent, whatever JSON value it is', async (t) => {
  const { url } = await chatServer(t)
  const a = await joinChat(t, url)
  const payloads = ['', 'ünïcödé 😀 <b>&amp;</b> \u2028', 0, -1.5e300, true, false, null, [], {}, { nested: { list: [1, 'two', null, { three: 3 }] } }]
  for (const payload of payloads) {
    a.ws.send(JSON.stringify({ type: 'message', payload }))
    const frame = await a.inbox.next()
    // (the assertion name is escaped: a raw U+2028 would break the TAP output)
    t.same(frame.payload, payload, JSON.stringify(payload).replace(/\u2028/g, '\\u2028'))
    t.equal(typeof frame.payload, typeof payload)
  }
})

t.test('custom_event is acknowledged to the sender alone, with the data as sent', async (t) => {
  const { url } = await chatServer(t)
  const a = await joinChat(t, url)
  const b = await joinChat(t, url)
  const payload = { action: 'wave', to: ['everyone'], n: 1 }
  a.ws.send(JSON.stringify({ type: 'custom_event', payload }))
  const reply = await a.inbox.next()
  t.same(Object.keys(reply), ['type', 'payload', 'timestamp'])
  t.equal(reply.type, 'custom_event')
  t.same(reply.payload, { status: 'received', data: payload })
  t.match(reply.timestamp, ISO_MS_UTC)
  t.same(await drain(b), [], 'the other client got nothing')
})

t.test('ping is answered with pong to the sender alone', async (t) => {
  const { url } = await chatServer(t)
  const a = await joinChat(t, url)
  const b = await joinChat(t, url)
  a.ws.send('{"type":"ping"}')
  const pong = await a.inbox.next()
  t.same(Object.keys(pong), ['type', 'timestamp'])
  t.equal(pong.type, 'pong')
  t.match(pong.timestamp, ISO_MS_UTC)
  a.ws.send('{"type":"ping","payload":"ignored"}')
  t.equal((await a.inbox.next()).type, 'pong', 'a payload on ping does no harm')
  t.same(await drain(b), [], 'the other client got no pong')
})

const BAD_INPUT: Array<[string, string | Buffer, string]> = [
  ['not JSON', 'hello', 'invalid_json'],
  ['truncated JSON', '{"type":"message","payload":', 'invalid_json'],
  ['empty frame', '', 'invalid_json'],
  ['a number', '42', 'invalid_message'],
  ['a string', '"message"', 'invalid_message'],
  ['null', 'null', 'invalid_message'],
  ['an array', '[{"type":"ping"}]', 'invalid_message'],
  ['no type', '{"payload":"x"}', 'invalid_message'],
  ['type not a string', '{"type":7,"payload":"x"}', 'invalid_message'],
  ['message without payload', '{"type":"message"}', 'invalid_message'],
  ['custom_event without payload', '{"type":"custom_event"}', 'invalid_message'],
  ['custom_event with a string payload', '{"type":"custom_event","payload":"x"}', 'invalid_message'],
  ['custom_event with an array payload', '{"type":"custom_event","payload":[1]}', 'invalid_message'],
  ['custom_event with a null payload', '{"type":"custom_event","payload":null}', 'invalid_message'],
  ['an unknown type', '{"type":"dance","payload":"x"}', 'unknown_type'],
  ['a server-to-client type', '{"type":"welcome","payload":{}}', 'unknown_type'],
  ['a binary frame', Buffer.from([0x7b, 0x7d, 0x00, 0xff]), 'binary_not_supported']
]

t.test('bad input gets an error frame with the right code, keeps the connection and reaches no one else', async (t) => {
  const { url, app } = await chatServer(t)
  const a = await joinChat(t, url)
  const b = await joinChat(t, url)
  for (const [what, input, code] of BAD_INPUT) {
    a.ws.send(input)
    const raw = await a.inbox.nextRaw()
    t.equal(raw.isBinary, false, `${what}: answered in a text frame`)
    t.same(Object.keys(raw.frame), ['type', 'payload'], `${what}: error frame shape`)
    t.same(Object.keys(raw.frame.payload), ['code', 'message'])
    t.equal(raw.frame.type, 'error')
    t.equal(raw.frame.payload.code, code, `${what} → ${code}`)
    t.match(raw.frame.payload.message, /^["A-Z].{10,}\.$/s, `${what}: the message is a sentence: ${raw.frame.payload.message}`)
  }
  t.same(await drain(a), [], 'the sender is still connected and served')
  t.same(await drain(b), [], 'the other client saw none of it')
  t.equal(app.echohub.snapshot().endpoints.chat!.connections.current, 2)
})

t.test('error messages say in plain words what was wrong', async (t) => {
  const { url } = await chatServer(t)
  const a = await joinChat(t, url)
  const cases: Array<[string, RegExp]> = [
    ['nope', /not valid JSON/],
    ['[]', /JSON object.*not an array/],
    ['{"type":true}', /"type" must be a string, not a boolean/],
    ['{"type":"message"}', /needs a "payload"/],
    ['{"type":"custom_event","payload":3}', /JSON object, not a number/],
    ['{"type":"shout"}', /Unknown type "shout"; use "message", "custom_event", "ping", "join", "leave" or "history"/]
  ]
  for (const [input, message] of cases) {
    a.ws.send(input)
    t.match((await a.inbox.next()).payload.message, message, input)
  }
})

t.test('every error code the server sends is one of the documented ones', async (t) => {
  t.same([...CHAT_ERROR_CODES].slice(0, 5), ['invalid_json', 'invalid_message', 'unknown_type', 'binary_not_supported', 'rate_limited'])
})

t.test('a payload nested deeper than JSON can write back is refused, not broadcast, and nothing breaks', async (t) => {
  const { url } = await chatServer(t, { maxPayload: 200_000 })
  const a = await joinChat(t, url)
  const b = await joinChat(t, url)
  const depth = 60_000
  a.ws.send('{"type":"message","payload":' + '['.repeat(depth) + ']'.repeat(depth) + '}')
  const reply = await a.inbox.next()
  t.equal(reply.payload.code, 'invalid_message')
  t.match(reply.payload.message, /nested too deeply/)
  t.same(await drain(b), [], 'nothing was broadcast')
  a.ws.send('{"type":"custom_event","payload":{"a":' + '['.repeat(depth) + ']'.repeat(depth) + '}}')
  const answer = await a.inbox.next()
  t.equal(answer.payload.code, 'invalid_message', 'a custom_event too deep to answer is bad input too, not a handler failure')
  t.match(answer.payload.message, /nested too deeply/)
})

t.test('custom event handlers: by payload.action, sync or async, the result becomes the payload', async (t) => {
  const seen: unknown[] = []
  const { url } = await chatServer(t, {
    customEvents: {
      add: (payload) => Number(payload.a) + Number(payload.b),
      whoami: (_payload, context) => ({ client_id: context.clientId, client: context.client }),
      later: async (payload) => {
        await new Promise((resolve) => setImmediate(resolve))
        return { later: payload.value ?? null }
      },
      quiet: (payload) => { seen.push(payload); return undefined }
    }
  })
  const a = await joinChat(t, url)
  const b = await joinChat(t, url)

  a.ws.send(JSON.stringify({ type: 'custom_event', payload: { action: 'add', a: 2, b: 40 } }))
  const sum = await a.inbox.next()
  t.equal(sum.type, 'custom_event')
  t.equal(sum.payload, 42, 'a sync handler answers')

  a.ws.send(JSON.stringify({ type: 'custom_event', payload: { action: 'whoami' } }))
  const me = await a.inbox.next()
  t.equal(me.payload.client_id, a.clientId, 'the handler knows the sender')
  t.match(me.payload.client, /^127\.0\.0\.1:\d+$/)

  a.ws.send(JSON.stringify({ type: 'custom_event', payload: { action: 'later', value: [1, 2] } }))
  t.same((await a.inbox.next()).payload, { later: [1, 2] }, 'an async handler answers with what it resolves to')

  a.ws.send(JSON.stringify({ type: 'custom_event', payload: { action: 'quiet', x: 1 } }))
  t.same((await a.inbox.next()).payload, { status: 'received', data: { action: 'quiet', x: 1 } }, 'undefined sends the default acknowledgement')
  t.same(seen, [{ action: 'quiet', x: 1 }])

  a.ws.send(JSON.stringify({ type: 'custom_event', payload: { action: 'nobody-handles-this' } }))
  t.same((await a.inbox.next()).payload, { status: 'received', data: { action: 'nobody-handles-this' } }, 'other actions get the default acknowledgement')

  a.ws.send(JSON.stringify({ type: 'custom_event', payload: { action: 'toString' } }))
  t.same((await a.inbox.next()).payload.status, 'received', 'inherited object keys are not handlers')

  t.same(await drain(b), [], 'replies go to the sender alone')
})

t.test('onCustomEvent answers every event no action handler takes', async (t) => {
  const { url } = await chatServer(t, {
    customEvents: { known: () => 'known' },
    onCustomEvent: (payload) => ({ fallback: true, keys: Object.keys(payload) })
  })
  const a = await joinChat(t, url)
  a.ws.send(JSON.stringify({ type: 'custom_event', payload: { action: 'known' } }))
  t.equal((await a.inbox.next()).payload, 'known')
  a.ws.send(JSON.stringify({ type: 'custom_event', payload: { kind: 'no action' } }))
  t.same((await a.inbox.next()).payload, { fallback: true, keys: ['kind'] })
})

t.test('a failing handler sends the sender an error, never crashes, and the chat goes on', async (t) => {
  const lines: Frame[] = []
  const sink = new Writable({ write (chunk, _enc, done) { lines.push(JSON.parse(String(chunk))); done() } })
  const app = Fastify({ loggerInstance: pino({ level: 'info' }, sink) })
  t.teardown(() => app.close())
  await app.register(chat, {
    customEvents: {
      throws: () => { throw new Error('secret internal detail') },
      rejects: async () => { throw new TypeError('also internal') },
      refuses: () => { throw new CustomEventError('Room "x" does not exist.') },
      unserializable: () => ({ big: 10n } as never)
    }
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const url = `ws://127.0.0.1:${(app.server.address() as { port: number }).port}/ws`
  const a = await joinChat(t, url)
  const b = await joinChat(t, url)
  for (const action of ['throws', 'rejects', 'unserializable']) {
    a.ws.send(JSON.stringify({ type: 'custom_event', payload: { action } }))
    const error = await a.inbox.next()
    t.equal(error.type, 'error', action)
    t.equal(error.payload.code, 'custom_event_failed')
    t.equal(error.payload.message, 'The server could not handle this custom_event.', `${action}: no internals leak to the client`)
  }
  a.ws.send(JSON.stringify({ type: 'custom_event', payload: { action: 'refuses' } }))
  t.same((await a.inbox.next()).payload, { code: 'custom_event_failed', message: 'Room "x" does not exist.' }, 'a CustomEventError tells the client why')
  a.ws.send(JSON.stringify({ type: 'message', payload: 'still here' }))
  t.equal((await b.inbox.next()).payload, 'still here', 'the chat goes on')
  const failures = lines.filter((l) => l.msg === 'custom event handler failed')
  t.equal(failures.length, 4, 'each failure is logged')
  t.ok(failures.some((l) => l.level === 50 && /secret internal detail/.test(l.err.message)), 'the server log has the real error')
})

t.test('a message over maxPayload closes the connection with 1009 and is counted', async (t) => {
  const { url, app } = await chatServer(t, { maxPayload: 200 })
  const a = await joinChat(t, url)
  const atCap = JSON.stringify({ type: 'message', payload: 'x'.repeat(200 - 31) })
  t.equal(Buffer.byteLength(atCap), 200)
  a.ws.send(atCap)
  t.equal((await a.inbox.next()).type, 'message', 'a message at the cap is broadcast')
  a.ws.send(JSON.stringify({ type: 'message', payload: 'x'.repeat(200) }))
  t.equal((await a.inbox.closed()).code, 1009)
  t.equal(app.echohub.limitHits.oversize, 1)
})

t.test('the default cap is 64 KiB', async (t) => {
  const { url } = await chatServer(t, { rateLimit: 0 })
  const a = await joinChat(t, url)
  const envelope = JSON.stringify({ type: 'message', payload: '' })
  a.ws.send(JSON.stringify({ type: 'message', payload: 'y'.repeat(65536 - envelope.length) }))
  t.equal((await a.inbox.next()).type, 'message', '65536 bytes pass')
  a.ws.send(JSON.stringify({ type: 'message', payload: 'y'.repeat(65537 - envelope.length) }))
  t.equal((await a.inbox.closed()).code, 1009, '65537 bytes close with 1009')
})

t.test('over the rate limit a message is dropped with rate_limited; the others are not affected', async (t) => {
  const { url, app } = await chatServer(t, { rateLimit: 1, rateBurst: 3 })
  const a = await joinChat(t, url)
  const b = await joinChat(t, url)
  for (let i = 1; i <= 4; i++) a.ws.send(JSON.stringify({ type: 'message', payload: i }))
  const got = [await a.inbox.next(), await a.inbox.next(), await a.inbox.next(), await a.inbox.next()]
  t.same(got.slice(0, 3).map((f) => f.payload), [1, 2, 3], 'the burst goes through')
  t.equal(got[3]!.type, 'error')
  t.equal(got[3]!.payload.code, 'rate_limited')
  t.match(got[3]!.payload.message, /at most 1 per second/)
  t.equal(app.echohub.limitHits.rate_limited, 1, 'counted')
  const seenByB = [await b.inbox.next(), await b.inbox.next(), await b.inbox.next()]
  t.same(seenByB.map((f) => f.payload), [1, 2, 3], 'the dropped message reached no one')
  b.ws.send(JSON.stringify({ type: 'message', payload: 'b is fine' }))
  t.equal((await b.inbox.next()).payload, 'b is fine', 'each connection has its own bucket')
  t.equal(a.ws.readyState, a.ws.OPEN, 'one drop does not close the connection')
  t.same(app.echohub.snapshot().endpoints.chat!.limits, { max_payload: 65536, rate_limit: 1, rate_burst: 3, max_buffered: 4194304, history_size: 100, max_rooms_per_client: 32, max_rooms: 10000, room_ttl_ms: 300000, history_max_bytes: 67108864, dedupe_window_ms: 120000, dedupe_max_keys: 100000 }, 'the limits show in /stats')
})

t.test('a client that keeps flooding (2 × burst dropped in a row) is closed with 1008', async (t) => {
  const { url, app } = await chatServer(t, { rateLimit: 1, rateBurst: 3 })
  const a = await joinChat(t, url)
  const b = await joinChat(t, url)
  for (let i = 1; i <= 3 + 6 + 5; i++) a.ws.send(JSON.stringify({ type: 'message', payload: i }))
  const { code, reason } = await a.inbox.closed()
  t.equal(code, 1008)
  t.match(reason, /rate limit/)
  const frames = a.inbox.received.slice(1).map((x) => x.frame)
  t.same(frames.filter((f) => f.type === 'message').map((f) => f.payload), [1, 2, 3])
  t.equal(frames.filter((f) => f.type === 'error' && f.payload.code === 'rate_limited').length, 5, 'five drops answered, the sixth closes')
  t.equal(app.echohub.limitHits.rate_flood, 1)
  t.equal(app.echohub.limitHits.rate_limited, 6)
  t.same((await drain(b)).map((f) => f.payload), [1, 2, 3], 'the other client got the burst and nothing else')
})

t.test('rateLimit 0 turns the rate limit off', async (t) => {
  const { url, app } = await chatServer(t, { rateLimit: 0, rateBurst: 1 })
  const a = await joinChat(t, url)
  for (let i = 0; i < 200; i++) a.ws.send(JSON.stringify({ type: 'message', payload: i }))
  for (let i = 0; i < 200; i++) t.equal((await a.inbox.next()).payload, i)
  t.equal(app.echohub.limitHits.rate_limited, undefined)
})

t.test('a client that does not read is dropped as a slow consumer once its unsent bytes pass maxBuffered', async (t) => {
  const lines: Frame[] = []
  const sink = new Writable({ write (chunk, _enc, done) { lines.push(JSON.parse(String(chunk))); done() } })
  const app = Fastify({ loggerInstance: pino({ level: 'warn' }, sink) })
  t.teardown(() => app.close())
  await app.register(chat, { rateLimit: 0, maxBuffered: 256 * 1024 })
  await app.register(stats)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const url = `ws://127.0.0.1:${(app.server.address() as { port: number }).port}/ws`
  const slow = await joinChat(t, url)
  const fast = await joinChat(t, url)
  slow.ws.pause() // stops reading: the kernel buffers fill, then the server's
  const chunk = JSON.stringify({ type: 'message', payload: 'z'.repeat(60_000) })
  // Bounded: ~60 MB at most, far past any loopback socket buffer.
  for (let i = 0; i < 1000 && app.echohub.limitHits.slow_consumer === undefined; i++) {
    fast.ws.send(chunk)
    await fast.inbox.next()
  }
  t.equal(app.echohub.limitHits.slow_consumer, 1, 'counted once')
  t.ok(lines.some((l) => l.msg.startsWith('slow consumer') && l.max_buffered === 256 * 1024), 'logged with the cap')
  fast.ws.send(JSON.stringify({ type: 'message', payload: 'after' }))
  t.equal((await fast.inbox.next()).payload, 'after', 'the others go on')
  const res = await app.inject('/stats')
  t.equal(res.json().endpoints.chat.connections.current, 1, 'the slow client left the registry')
  t.equal(res.json().limits.hits.slow_consumer, 1, 'visible in /stats')
})

t.test('closed chat clients leave the registry and get no more broadcasts', async (t) => {
  const { url, app } = await chatServer(t)
  const a = await joinChat(t, url)
  const b = await joinChat(t, url)
  const c = await joinChat(t, url)
  b.ws.close(1000)
  c.ws.terminate()
  await b.inbox.closed()
  await c.inbox.closed()
  while (app.echohub.connections.size !== 1) await new Promise((resolve) => setImmediate(resolve))
  a.ws.send(JSON.stringify({ type: 'message', payload: 'alone' }))
  t.equal((await a.inbox.next()).payload, 'alone')
  t.same(app.echohub.snapshot().endpoints.chat!.connections, { current: 1, peak: 3, total: 3 })
  const traffic = app.echohub.snapshot().endpoints.chat!
  t.equal(traffic.messages.received, 1, 'the message is counted in')
  t.equal(traffic.messages.sent, 4, 'three welcomes and one broadcast copy counted out')
})

t.test('a plain HTTP GET on the chat path answers 426 with how to connect', async (t) => {
  const { app } = await chatServer(t)
  const res = await app.inject({ method: 'GET', url: '/ws' })
  t.equal(res.statusCode, 426)
  t.equal(res.json().error, 'upgrade_required')
})

t.test('logs connects, disconnects, received messages and limit hits, one line each', async (t) => {
  const lines: Frame[] = []
  const sink = new Writable({ write (chunk, _enc, done) { lines.push(JSON.parse(String(chunk))); done() } })
  const app = Fastify({ loggerInstance: pino({ level: 'info' }, sink) })
  t.teardown(() => app.close())
  await app.register(chat, { rateLimit: 1, rateBurst: 1 })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const url = `ws://127.0.0.1:${(app.server.address() as { port: number }).port}/ws`
  const a = await joinChat(t, url)
  a.ws.send(JSON.stringify({ type: 'message', payload: 'line\nbreak' }))
  await a.inbox.next()
  a.ws.send('{"type":"ping"}')
  t.equal((await a.inbox.next()).payload.code, 'rate_limited')
  a.ws.close()
  await a.inbox.closed()
  while (!lines.some((l) => l.msg === 'chat client disconnected')) await new Promise((resolve) => setImmediate(resolve))
  t.ok(lines.some((l) => l.msg === 'chat client connected' && l.client_id === a.clientId && typeof l.connections === 'number'))
  t.ok(lines.some((l) => l.msg === 'message received' && l.text === '{"type":"message","payload":"line\\nbreak"}'), 'control characters escaped')
  t.equal(lines.filter((l) => l.msg.startsWith('rate limit hit')).length, 1)
  t.ok(lines.some((l) => l.msg === 'chat client disconnected' && l.code === 1005))
})

t.test('as a library: chat under a prefix next to echo and stats in one app', async (t) => {
  const { url, app } = await listen(t, async (app) => {
    await app.register(echo)
    await app.register(chat, { prefix: '/v1', path: '/chat', name: 'room' })
    await app.register(chat, { path: '/other', name: 'other' })
    await app.register(stats)
  })
  const a = await joinChat(t, url + '/v1/chat')
  const other = await joinChat(t, url + '/other')
  a.ws.send(JSON.stringify({ type: 'message', payload: 'hi' }))
  t.equal((await a.inbox.next()).id, 1)
  t.same(await drain(other), [], 'each chat endpoint broadcasts to its own clients')
  other.ws.send(JSON.stringify({ type: 'message', payload: 'x' }))
  t.equal((await other.inbox.next()).id, 1, 'and numbers its own messages')
  t.same(Object.keys(app.echohub.snapshot().endpoints), ['echo', 'room', 'other'])
  t.equal(app.server.listeners('upgrade').length, 1, '@fastify/websocket registered once')
})

t.test('a wrong option fails register with an error naming the option', async (t) => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ path: 'ws' }, /option "path"/],
    [{ name: '' }, /option "name"/],
    [{ maxPayload: 0 }, /option "maxPayload"/],
    [{ rateLimit: -1 }, /option "rateLimit"/],
    [{ rateBurst: 0 }, /option "rateBurst"/],
    [{ rateLimit: 1.5 }, /option "rateLimit"/],
    [{ maxBuffered: 'lots' }, /option "maxBuffered"/],
    [{ customEvents: [] }, /option "customEvents"/],
    [{ customEvents: { add: 'not a function' } }, /option "customEvents.add" must be a function/],
    [{ onCustomEvent: {} }, /option "onCustomEvent"/],
    [{ historyMaxBytes: -1 }, /option "historyMaxBytes"/],
    [{ dedupeWindow: 1.5 }, /option "dedupeWindow"/],
    [{ dedupeMaxKeys: '10' }, /option "dedupeMaxKeys"/]
  ]
  for (const [opts, message] of cases) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(chat, opts) }, { code: 'ECHOHUB_ERR_INVALID_OPTION', message }, JSON.stringify(opts))
  }
  const app = Fastify()
  t.teardown(() => app.close())
  app.register(chat)
  app.register(chat, { path: '/second' })
  await t.rejects(async () => { await app.ready() }, { code: 'ECHOHUB_ERR_INVALID_OPTION', message: /option "name"/ }, 'two endpoints need two names')
})
