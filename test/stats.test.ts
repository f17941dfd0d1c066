import t from 'tap'
import { echo, stats, ConnectionRegistry, echohubRegistry } from '../index.js'
import { closed, connect, listen, nextMessage, until } from './helpers/index.js'

t.test('GET /health answers ok with uptime and the connection count', async (t) => {
  const { app, url } = await listen(t, async (app) => {
    await app.register(echo)
    await app.register(stats)
  })
  await connect(t, url)
  await until(() => app.echohub.connections.size === 1, 'the connection to register')
  const res = await app.inject('/health')
  t.equal(res.statusCode, 200)
  t.same(Object.keys(res.json()), ['status', 'uptime_s', 'connections'])
  t.equal(res.json().status, 'ok')
  t.equal(res.json().connections, 1)
  t.type(res.json().uptime_s, 'number')
})

t.test('GET /health answers 503 draining once shutdown has begun', async (t) => {
  const { app } = await listen(t, async (app) => { await app.register(stats) })
  app.echohub.startDraining()
  const res = await app.inject('/health')
  t.equal(res.statusCode, 503)
  t.equal(res.json().status, 'draining')
})

t.test('GET /stats counts connections, messages and bytes per endpoint and in total', async (t) => {
  const { app, url } = await listen(t, async (app) => {
    await app.register(echo, { name: 'main' })
    await app.register(echo, { name: 'second', path: '/second', welcome: true })
    await app.register(stats)
  })
  const a = await connect(t, url + '/raw')
  a.send('12345')
  await nextMessage(a)
  a.send(Buffer.alloc(10))
  await nextMessage(a)
  const b = await connect(t, url + '/second')
  await nextMessage(b) // welcome
  const res = await app.inject('/stats')
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.same(Object.keys(body), ['server_info', 'started_at', 'uptime_s', 'connections', 'messages', 'bytes', 'endpoints', 'limits', 'memory'])
  t.same(body.endpoints.main, {
    connections: { current: 1, peak: 1, total: 1 },
    messages: { received: 2, sent: 2 },
    bytes: { received: 15, sent: 15 },
    limits: { max_payload: 1048576 }
  })
  t.equal(body.endpoints.second.messages.sent, 1, 'the welcome counts as sent')
  t.same(body.connections, { current: 2, peak: 2, total: 2 })
  t.equal(body.messages.received, 2)
  t.equal(body.messages.sent, 3, 'process totals are the sum of the endpoints')
  t.equal(body.bytes.sent, 15 + body.endpoints.second.bytes.sent)
  t.match(body.started_at, /Z$/)
  t.ok(body.memory.rss > 0 && body.memory.heap_used > 0)
  a.close()
  b.close()
  await Promise.all([closed(a), closed(b)])
  await until(() => app.echohub.connections.size === 0, 'both to leave')
  t.equal((await app.inject('/stats')).json().connections.current, 0, 'counts return to 0')
})

t.test('one registry handed to several apps: /stats on either shows both', async (t) => {
  const registry = new ConnectionRegistry({ serverInfo: 'shared' })
  const one = await listen(t, async (app) => {
    await app.register(echohubRegistry, { registry })
    await app.register(echo, { name: 'one' })
    await app.register(stats)
  })
  const two = await listen(t, async (app) => {
    await app.register(echohubRegistry, { registry })
    await app.register(echo, { name: 'two' })
    await app.register(stats)
  })
  const ws = await connect(t, two.url)
  ws.send('hi')
  await nextMessage(ws)
  const body = (await one.app.inject('/stats')).json()
  t.equal(body.server_info, 'shared')
  t.same(Object.keys(body.endpoints), ['one', 'two'])
  t.equal(body.endpoints.two.messages.received, 1)
})

t.test('GET /metrics is Prometheus text with per-endpoint figures and process metrics', async (t) => {
  const { app, url } = await listen(t, async (app) => {
    await app.register(echo, { name: 'my-echo' })
    await app.register(stats)
  })
  const ws = await connect(t, url)
  ws.send('abc')
  await nextMessage(ws)
  app.echohub.hit('rate_limited')
  const res = await app.inject('/metrics')
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/plain/)
  t.match(res.body, /^echohub_messages_received_total\{endpoint="my-echo"\} 1$/m)
  t.match(res.body, /^echohub_messages_sent_total\{endpoint="my-echo"\} 1$/m)
  t.match(res.body, /^echohub_bytes_received_total\{endpoint="my-echo"\} 3$/m)
  t.match(res.body, /^echohub_connections\{endpoint="my-echo"\} 1$/m)
  t.match(res.body, /^echohub_limit_hits_total\{limit="rate_limited"\} 1$/m)
  t.match(res.body, /^process_cpu_user_seconds_total \d/m, 'default process metrics')
  t.match(res.body, /^nodejs_heap_size_used_bytes \d/m)
})

t.test('stats works alone and under a prefix', async (t) => {
  const { app } = await listen(t, async (app) => { await app.register(stats, { prefix: '/admin' }) })
  t.equal((await app.inject('/admin/health')).statusCode, 200)
  t.equal((await app.inject('/admin/stats')).json().connections.current, 0)
})
