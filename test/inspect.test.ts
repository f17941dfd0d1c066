// The inspector's WebSocket: the live list, the watched connection's frames, actions, and its guards.
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { WebSocket } from 'ws'
import { echo, chat, stats, ui, echohubRegistry, type RegistryPluginOptions } from '../index.js'
import { inspectorHub } from '../src/lab/inspector.js'
import { closed, connect, inboxOf, listen, nextMessage, until, type Frame, type Inbox } from './helpers/index.js'
import { joinChat } from './helpers/chat.js'
import { isUpgraded, rawUpgrade } from './helpers/raw.js'

async function lab (t: Test, registry: RegistryPluginOptions = {}): Promise<{ app: FastifyInstance, port: number, url: string }> {
  return await listen(t, async (app) => {
    await app.register(echohubRegistry, { heartbeatInterval: 0, ...registry })
    await app.register(echo, { path: '/echo' })
    await app.register(chat)
    await app.register(ui)
    await app.register(stats)
  })
}

/** Reads the inspector's frames until one passes `check`. */
async function nextWhere (inbox: Inbox, check: (f: Frame) => boolean): Promise<Frame> {
  for (;;) {
    const f = await inbox.next()
    if (check(f)) return f
  }
}

async function inspector (t: Test, url: string): Promise<{ ws: WebSocket, inbox: Inbox, watch: (id: number) => Promise<void> }> {
  const ws = await connect(t, url + '/inspect/ws')
  const inbox = inboxOf(ws)
  const watch = async (id: number) => {
    ws.send(JSON.stringify({ type: 'watch', id }))
    const answer = await nextWhere(inbox, (f) => f.type === 'watching')
    if (answer.id !== id) throw new Error(`not watching ${id}: ${JSON.stringify(answer)}`)
  }
  return { ws, inbox, watch }
}

t.test('GET /inspect serves the page', async (t) => {
  const { app } = await lab(t)
  const res = await app.inject('/inspect')
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/html/)
  t.match(res.body, /<script type="module" src="inspect.js">/)
  t.equal((await app.inject('/inspect.js')).statusCode, 200)
})

t.test('an inspector gets the live list at once, then the watched connection\'s frames both ways', async (t) => {
  const { url } = await lab(t)
  const device = await connect(t, url + '/echo/raw?fragment=4')
  const { inbox, watch } = await inspector(t, url)
  const first = await nextWhere(inbox, (f) => f.type === 'connections')
  t.equal(first.total, 2, 'the device, and the inspector itself: a connection too')
  t.same(first.connections.map((c: Frame) => c.endpoint), ['echo', 'inspector'])
  const id = first.connections[0].id as number
  t.same(first.connections[0].controls, { fragment: 4 })
  await watch(id)
  device.send('hello!')
  t.equal((await nextMessage(device)).text, 'hello!')
  const frames: Frame[] = []
  for (let i = 0; i < 3; i++) frames.push(await nextWhere(inbox, (f) => f.type === 'frame'))
  t.same(frames.map((f) => [f.id, f.dir, f.opcode, f.size, f.fin, f.text]), [
    [id, 'in', 'text', 6, true, 'hello!'],
    [id, 'out', 'text', 4, false, 'hell'],
    [id, 'out', 'continuation', 2, true, 'o!']
  ], 'the message, then the reply frame by frame')
  t.match(frames[0]!.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
  device.send(Buffer.from([1, 2, 3]))
  const binary = await nextWhere(inbox, (f) => f.type === 'frame')
  t.same([binary.opcode, binary.hex], ['binary', '010203'])
})

t.test('only the watched connection\'s frames are sent, and an unwatched one is untapped', async (t) => {
  const { app, url } = await lab(t)
  const watched = await connect(t, url + '/echo/raw')
  const other = await connect(t, url + '/echo/raw')
  const { ws, inbox, watch } = await inspector(t, url)
  const [a, b] = [...app.echohub.connections]
  await watch(a!.id)
  t.ok(Object.hasOwn(a!.socket, 'send'), 'the watched socket is tapped')
  t.notOk(Object.hasOwn(b!.socket, 'send'), 'the other is not')
  other.send('not me')
  await nextMessage(other)
  watched.send('me')
  await nextMessage(watched)
  const f = await nextWhere(inbox, (x) => x.type === 'frame')
  t.same([f.id, f.text], [a!.id, 'me'], 'the first frame seen is the watched one\'s')
  ws.close()
  await until(() => inspectorHub(app.echohub).attached === 0, 'the inspector to detach')
  t.notOk(Object.hasOwn(a!.socket, 'send'), 'untapped once nobody watches')
  t.equal(inspectorHub(app.echohub).watched, 0)
})

t.test('chat broadcasts, written as pre-framed bytes, show for a watched chat client', async (t) => {
  const { url } = await lab(t)
  const alice = await joinChat(t, url + '/ws')
  const bob = await joinChat(t, url + '/ws')
  const { inbox, watch } = await inspector(t, url)
  await watch(bob.clientId)
  alice.ws.send(JSON.stringify({ type: 'message', payload: 'to all' }))
  const out = await nextWhere(inbox, (f) => f.type === 'frame' && f.dir === 'out')
  t.equal(out.id, bob.clientId)
  t.same(JSON.parse(out.text).payload, 'to all', 'bob\'s copy of the broadcast')
  t.equal((await bob.inbox.next()).payload, 'to all', 'and bob got it')
})

t.test('echo replies, written as pre-framed bytes, show for a watched plain connection', async (t) => {
  const { url } = await lab(t)
  const device = await connect(t, url + '/echo/raw')
  const { inbox, watch } = await inspector(t, url)
  const list = await nextWhere(inbox, (f) => f.type === 'connections')
  await watch(list.connections[0].id as number)
  for (const text of ['one', 'two']) {
    device.send(text)
    t.equal((await nextMessage(device)).text, text)
  }
  const frames: Frame[] = []
  for (let i = 0; i < 4; i++) frames.push(await nextWhere(inbox, (f) => f.type === 'frame'))
  t.same(frames.map((f) => [f.dir, f.opcode, f.text]), [['in', 'text', 'one'], ['out', 'text', 'one'], ['in', 'text', 'two'], ['out', 'text', 'two']])
})

t.test('actions from the inspector: send, ping, close with code and reason, drop', async (t) => {
  const { app, url } = await lab(t)
  const device = await connect(t, url + '/echo')
  const dropped = await connect(t, url + '/echo')
  const { ws, inbox } = await inspector(t, url)
  const [a, b] = [...app.echohub.connections]
  const act = async (id: number, action: string, body?: unknown) => {
    ws.send(JSON.stringify({ type: 'action', id, action, body }))
    return await nextWhere(inbox, (f) => f.type === 'result')
  }
  t.same(await act(a!.id, 'send', { text: 'hi device' }), { type: 'result', id: a!.id, action: 'send', ok: true })
  t.equal((await nextMessage(device)).text, 'hi device')
  t.same(await act(a!.id, 'send', { binary: Buffer.from([9]).toString('base64') }), { type: 'result', id: a!.id, action: 'send', ok: true })
  t.same([...(await nextMessage(device)).data], [9])
  t.equal((await act(a!.id, 'ping')).ok, true)
  await until(() => a!.rttMs !== undefined, 'the pong')
  const bad = await act(a!.id, 'close', { code: 1006 })
  t.same([bad.ok, bad.error], [false, 'invalid_body'])
  t.equal((await act(999, 'ping')).error, 'not_found')
  t.equal((await act(a!.id, 'close', { code: 4001, reason: 'from the inspector' })).ok, true)
  t.same(await closed(device), { code: 4001, reason: 'from the inspector' })
  t.equal((await act(b!.id, 'drop')).ok, true)
  t.equal((await closed(dropped)).code, 1006)
  ws.send('not json')
  t.match((await nextWhere(inbox, (f) => f.type === 'error')).message, /JSON/)
})

t.test('the inspector WebSocket takes the token and refuses other sites\' pages', async (t) => {
  const { port } = await lab(t, { authToken: 's3cret' })
  const noToken = await rawUpgrade(t, port, '/inspect/ws')
  t.equal(isUpgraded(noToken) ? 101 : noToken.status, 401)
  const evil = await rawUpgrade(t, port, '/inspect/ws?token=s3cret', { Origin: 'https://evil.example' })
  t.equal(isUpgraded(evil) ? 101 : evil.status, 403)
  const own = await rawUpgrade(t, port, '/inspect/ws?token=s3cret', { Origin: `http://127.0.0.1:${port}` })
  t.ok(isUpgraded(own), 'the page\'s own origin on an IP address is let in')
})

t.test('a slow inspector loses events, counted, and never slows the client', async (t) => {
  const { app, port, url } = await lab(t)
  const device = await connect(t, url + '/echo/raw')
  const conn = [...app.echohub.connections][0]!
  const up = await rawUpgrade(t, port, '/inspect/ws')
  if (!isUpgraded(up)) throw new Error('no upgrade')
  // A masked client frame, by hand: this inspector then never reads again.
  const { frame } = await import('./helpers/raw.js')
  up.socket.write(frame(0x1, Buffer.from(JSON.stringify({ type: 'watch', id: conn.id }))))
  up.socket.pause()
  await until(() => inspectorHub(app.echohub).watched === 1, 'the watch')
  const payload = 'y'.repeat(1000)
  let echoed = 0
  device.on('message', () => { echoed++ })
  for (let i = 0; i < 6000; i++) device.send(payload)
  await until(() => echoed === 6000, 'every echo', 30_000)
  t.pass('the client got all 6000 echoes while the inspector read nothing')
  const hits = (await app.inject('/stats')).json().limits.hits
  t.ok(hits.inspector_dropped > 0, `inspector_dropped: ${hits.inspector_dropped}`)
})

t.test('the list holds at most maxListed connections and always says the total; its timer stops with the last inspector', async (t) => {
  const { app, url } = await lab(t)
  for (let i = 0; i < 3; i++) await connect(t, url + '/echo/raw')
  const { InspectorHub } = await import('../src/lab/inspector.js')
  const hub = new InspectorHub(app.echohub, { maxListed: 2, listInterval: 10 })
  const sent: string[] = []
  const page = hub.attach({ readyState: 1, bufferedAmount: 0, send: (data) => { sent.push(data.toString()) } })
  const first = JSON.parse(sent[0]!)
  t.same([first.type, first.total, first.connections.length], ['connections', 3, 2])
  await until(() => sent.length >= 3, 'the list to be sent again')
  hub.detach(page)
  const count = sent.length
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(sent.length, count, 'nothing is sent once the last inspector has gone')
})

t.test('inspectorMaxBuffered: a plugin option, checked at register, shown in /stats', async (t) => {
  const { app } = await listen(t, async (app) => {
    await app.register(echohubRegistry, { heartbeatInterval: 0 })
    await app.register(ui, { inspectorMaxBuffered: 4096 })
    await app.register(stats)
  })
  t.equal((await app.inject('/stats')).json().limits.settings.inspector_max_buffered, 4096)
  t.equal(inspectorHub(app.echohub).maxBuffered, 4096)
  const { default: Fastify } = await import('fastify')
  const bad = Fastify({ logger: false })
  t.teardown(() => bad.close())
  await t.rejects(async () => { await bad.register(ui, { inspectorMaxBuffered: -1 }).ready() }, { code: 'ECHOHUB_ERR_INVALID_OPTION', message: /inspectorMaxBuffered/ })
})

t.test('inspector sockets are connections: counted against both caps, refused like any client, shown in /stats', async (t) => {
  const { app, port, url } = await lab(t, { maxConnectionsPerIp: 2, maxConnections: 3 })
  await connect(t, url + '/echo/raw')
  const { ws } = await inspector(t, url)
  const stats = (await app.inject('/stats')).json()
  t.same(stats.endpoints.inspector.connections, { current: 1, peak: 1, total: 1 }, 'the endpoint inspector')
  t.equal(stats.connections.current, 2)
  const second = await rawUpgrade(t, port, '/inspect/ws')
  t.equal(isUpgraded(second) ? 101 : second.status, 429, 'a third socket from this address, an inspector, is over the per-address cap')
  if (!isUpgraded(second)) {
    t.equal(second.headers['retry-after'], '5')
    t.equal(JSON.parse(second.body).error, 'too_many_connections')
  }
  const device = await rawUpgrade(t, port, '/echo/raw')
  t.equal(isUpgraded(device) ? 101 : device.status, 429, 'and the inspector counts against the cap for the devices too')
  t.equal((await app.inject('/stats')).json().limits.hits.max_connections_per_ip, 2)
  ws.close()
  await until(() => app.echohub.connections.size === 1, 'the inspector to leave the registry')
  t.equal((await app.inject('/stats')).json().endpoints.inspector.connections.current, 0)
})

t.test('inspector sockets count against the process-wide cap: 503', async (t) => {
  const { port, url } = await lab(t, { maxConnections: 1 })
  await connect(t, url + '/echo/raw')
  const refused = await rawUpgrade(t, port, '/inspect/ws')
  t.equal(isUpgraded(refused) ? 101 : refused.status, 503)
  if (!isUpgraded(refused)) t.equal(JSON.parse(refused.body).error, 'server_full')
})

t.test('an inspector cannot be watched (it would be fed its own frames)', async (t) => {
  const { url } = await lab(t)
  const { ws, inbox } = await inspector(t, url)
  const list = await nextWhere(inbox, (f) => f.type === 'connections')
  const self = list.connections.find((c: Frame) => c.endpoint === 'inspector')
  ws.send(JSON.stringify({ type: 'watch', id: self.id }))
  const answer = await nextWhere(inbox, (f) => f.type === 'watching')
  t.equal(answer.id, null)
  t.match(answer.message, /inspector/)
})

t.test('the list is built once per update for all inspectors, not once per inspector', async (t) => {
  const { app, url } = await lab(t)
  for (let i = 0; i < 3; i++) await connect(t, url + '/echo/raw')
  const { InspectorHub } = await import('../src/lab/inspector.js')
  // Counts the walks over the registry's connections: building a list is one walk.
  let walks = 0
  const connections = app.echohub.connections
  const counted = new Proxy(connections, {
    get (target, key) {
      if (key === Symbol.iterator) walks++
      const value = Reflect.get(target, key, target) as unknown
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
    }
  })
  const registry = Object.create(app.echohub, { connections: { value: counted } }) as typeof app.echohub
  const hub = new InspectorHub(registry, { listInterval: 20 })
  const pages = Array.from({ length: 5 }, () => {
    const sent: string[] = []
    const raw: Array<string | Buffer> = []
    return { sent, raw, inspector: hub.attach({ readyState: 1, bufferedAmount: 0, send: (data) => { raw.push(data); sent.push(data.toString()) } }) }
  })
  t.teardown(() => { for (const p of pages) hub.detach(p.inspector) })
  await until(() => pages.every((p) => p.sent.length >= 3), 'two more lists for every page')
  const before = walks
  const sentBefore = pages[0]!.sent.length
  await until(() => pages[0]!.sent.length >= sentBefore + 2, 'two more updates')
  const updates = pages[0]!.sent.length - sentBefore
  t.ok(walks - before <= updates + 1, `${walks - before} walks for ${updates} updates of 5 inspectors`)
  const last = JSON.parse(pages[4]!.sent.at(-1)!)
  t.same(Object.keys(last), ['type', 'total', 'connections', 'watching', 'dropped'])
  t.same([last.total, last.connections.length, last.watching, last.dropped], [3, 3, null, 0])
  // Encoded once: each page gets the list's UTF-8 bytes, not a string for ws to encode again.
  t.ok(pages.every((p) => Buffer.isBuffer(p.raw.at(-1))), 'every page is sent bytes')
})
