// Hardening at the wire level: caps, origin, token, protocol faults, heartbeat, a client that never reads.
import t, { type Test } from 'tap'
import net from 'node:net'
import { randomBytes } from 'node:crypto'
import { Writable } from 'node:stream'
import Fastify from 'fastify'
import { pino } from 'pino'
import { echo, stats, echohubRegistry, ECHO_HIGH_WATER, type RegistryPluginOptions } from '../index.js'
import { closed, connect, listen, nextJson, nextMessage, until } from './helpers/index.js'
import { closeCode, frame, isUpgraded, rawUpgrade, readFrames, type HttpAnswer } from './helpers/raw.js'

async function echoServer (t: Test, options: RegistryPluginOptions = {}, echoOptions = {}) {
  return await listen(t, async (app) => {
    await app.register(echohubRegistry, options)
    await app.register(echo, echoOptions)
    await app.register(stats)
  })
}

function refused (answer: Awaited<ReturnType<typeof rawUpgrade>>): HttpAnswer {
  if (isUpgraded(answer)) throw new Error('the upgrade was accepted')
  return answer
}

t.test('over the global cap an upgrade gets 503 with Retry-After and a JSON body', async (t) => {
  const { app, port, url } = await echoServer(t, { maxConnections: 2 })
  const first = await connect(t, url)
  await connect(t, url)
  const answer = refused(await rawUpgrade(t, port))
  t.equal(answer.status, 503)
  t.ok(Number(answer.headers['retry-after']) > 0, 'Retry-After')
  t.equal(JSON.parse(answer.body).error, 'server_full')
  t.match(JSON.parse(answer.body).message, /maximum of 2 connections/)
  const body = (await app.inject('/stats')).json()
  t.equal(body.limits.settings.max_connections, 2, 'the limit is visible in /stats')
  t.equal(body.limits.hits.max_connections, 1, 'and so is the hit')
  first.close()
  await closed(first)
  await until(() => app.echohub.connections.size === 1, 'a slot to free up')
  t.ok(isUpgraded(await rawUpgrade(t, port)), 'a freed slot is usable again')
})

t.test('over the per-address cap an upgrade gets 429 with Retry-After', async (t) => {
  const { app, port, url } = await echoServer(t, { maxConnections: 100, maxConnectionsPerIp: 1 })
  await connect(t, url)
  const answer = refused(await rawUpgrade(t, port))
  t.equal(answer.status, 429)
  t.ok(Number(answer.headers['retry-after']) > 0)
  t.equal(JSON.parse(answer.body).error, 'too_many_connections')
  t.equal(app.echohub.limitHits.max_connections_per_ip, 1)
})

t.test('the Origin allowlist refuses other origins with 403 and lets devices without Origin in', async (t) => {
  const { app, port } = await echoServer(t, { origins: ['https://good.example'] })
  const bad = refused(await rawUpgrade(t, port, '/', { Origin: 'https://evil.example' }))
  t.equal(bad.status, 403)
  t.equal(JSON.parse(bad.body).error, 'origin_not_allowed')
  t.ok(isUpgraded(await rawUpgrade(t, port, '/', { Origin: 'https://good.example' })), 'listed origin')
  t.ok(isUpgraded(await rawUpgrade(t, port, '/')), 'no Origin: a device or CLI tool')
  t.ok(isUpgraded(await rawUpgrade(t, port, '/', { Origin: 'HTTPS://GOOD.EXAMPLE' })), 'origins compare without case')
  // Nothing is inferred from Host: a DNS-rebinding page sets both to its own name.
  t.equal(refused(await rawUpgrade(t, port, '/', { Origin: 'http://evil.example:8080', Host: 'evil.example:8080' })).status, 403, 'an unlisted page whose Host matches')
  t.equal(refused(await rawUpgrade(t, port, '/', { Origin: `http://127.0.0.1:${port}` })).status, 403, 'a page on this host that is not listed')
  t.equal(app.echohub.limitHits.origin, 3)
})

t.test('with a token, upgrades and the figures need it; /health stays open', async (t) => {
  const { app, port } = await echoServer(t, { authToken: 's3cret' })
  const none = refused(await rawUpgrade(t, port))
  t.equal(none.status, 401)
  t.equal(JSON.parse(none.body).error, 'unauthorized')
  t.equal(refused(await rawUpgrade(t, port, '/', { Authorization: 'Bearer wrong' })).status, 401)
  t.equal(refused(await rawUpgrade(t, port, '/?token=s3cre')).status, 401, 'a prefix of the token is not the token')
  t.ok(isUpgraded(await rawUpgrade(t, port, '/', { Authorization: 'Bearer s3cret' })), 'Bearer header')
  t.ok(isUpgraded(await rawUpgrade(t, port, '/raw?token=s3cret')), '?token= query')
  const spaced = await echoServer(t, { authToken: 'two words' })
  t.ok(isUpgraded(await rawUpgrade(t, spaced.port, '/', { Authorization: 'Bearer two words' })), 'a token with a space works as a Bearer header')

  t.equal((await app.inject('/health')).statusCode, 200)
  t.equal((await app.inject('/stats')).statusCode, 401)
  t.equal((await app.inject('/metrics')).statusCode, 401)
  t.equal((await app.inject({ url: '/stats', headers: { authorization: 'Bearer s3cret' } })).statusCode, 200)
  t.equal((await app.inject('/metrics?token=s3cret')).statusCode, 200)
  t.equal((await app.inject('/stats?token=s3cret')).json().limits.settings.auth, true, '/stats says auth is on, never the token')
  t.notMatch((await app.inject('/stats?token=s3cret')).body, 's3cret')
})

t.test('the token never reaches the logs', async (t) => {
  const lines: string[] = []
  const sink = new Writable({ write (chunk, _enc, done) { lines.push(String(chunk)); done() } })
  const app = Fastify({ loggerInstance: pino({ level: 'trace' }, sink) })
  t.teardown(() => app.close())
  await app.register(echohubRegistry, { authToken: 's3cret' })
  await app.register(echo)
  await app.register(stats)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as { port: number }
  t.ok(isUpgraded(await rawUpgrade(t, port, '/?token=s3cret')))
  t.equal(refused(await rawUpgrade(t, port, '/?token=wrong&x=1')).status, 401)
  await app.inject('/stats?token=nope')
  await until(() => lines.some((l) => l.includes('client connected')), 'the connect line')
  // Fastify's own request lines follow the app's logger serializers (the CLI's hide the token too).
  const echohubLines = lines.filter((l) => !/"msg":"(incoming request|request completed)"/.test(l))
  t.ok(echohubLines.some((l) => l.includes('token=[redacted]')), 'the URL is logged with the token hidden')
  t.notOk(echohubLines.some((l) => l.includes('s3cret') || l.includes('token=wrong') || l.includes('token=nope')), 'no token in any line of echohub')
})

t.test('invalid UTF-8 in a text frame closes with 1007 and is counted', async (t) => {
  const { app, port } = await echoServer(t)
  const up = await rawUpgrade(t, port)
  if (!isUpgraded(up)) throw new Error('not upgraded')
  const code = closeCode(up)
  up.socket.write(frame(0x1, Buffer.from([0x68, 0xc3, 0x28])))
  t.equal(await code, 1007)
  await until(() => app.echohub.limitHits.invalid_utf8 === 1, 'the hit to be counted')
})

t.test('an unmasked client frame is a protocol error: close 1002', async (t) => {
  const { app, port } = await echoServer(t)
  const up = await rawUpgrade(t, port)
  if (!isUpgraded(up)) throw new Error('not upgraded')
  const code = closeCode(up)
  up.socket.write(frame(0x1, Buffer.from('hi'), false))
  t.equal(await code, 1002)
  await until(() => app.echohub.limitHits.protocol_error === 1, 'the hit to be counted')
})

t.test('a frame larger than the WebSocket cap closes with 1009 before it is buffered', async (t) => {
  const { app, port } = await echoServer(t, {}, { maxPayload: 2048 })
  const up = await rawUpgrade(t, port)
  if (!isUpgraded(up)) throw new Error('not upgraded')
  const code = closeCode(up)
  // Only the header: it announces 1 GiB and the server must refuse without waiting for it.
  up.socket.write(Buffer.from([0x82, 0xff, 0, 0, 0, 0, 0x40, 0, 0, 0, 1, 2, 3, 4]))
  t.equal(await code, 1009)
  await until(() => app.echohub.limitHits.oversize === 1, 'the hit to be counted')
})

t.test('heartbeat: a client that does not answer pings is cut off; one that does stays', async (t) => {
  const { app, port, url } = await echoServer(t, { heartbeatInterval: 20 })
  const silent = await rawUpgrade(t, port)
  if (!isUpgraded(silent)) throw new Error('not upgraded')
  const healthy = await connect(t, url) // ws answers pings by itself
  let pings = 0
  healthy.on('ping', () => { pings++ })
  await new Promise((resolve) => silent.socket.once('close', resolve))
  t.pass('the silent client was terminated')
  t.equal(app.echohub.limitHits.heartbeat_timeout, 1)
  await until(() => pings >= 4, 'more pings to the healthy client')
  t.equal(healthy.readyState, healthy.OPEN, 'the answering client is still connected')
  healthy.send('still here')
  t.equal((await nextJson(healthy)).original_message, 'still here')
})

t.test('heartbeat pings are whole frames among the echoes, and their pongs time the round trip', async (t) => {
  // The pings are written pre-framed to the TCP socket where echoes are: each must land between
  // two frames, never inside one.
  const { app, port } = await echoServer(t, { heartbeatInterval: 20 })
  for (const path of ['/raw', '/']) {
    const client = await rawUpgrade(t, port, path)
    if (!isUpgraded(client)) throw new Error('not upgraded')
    const frames: Array<{ opcode: number, payload: Buffer }> = []
    readFrames(client, (f) => {
      frames.push(f)
      if (f.opcode === 0x9) client.socket.write(frame(0xa, f.payload))
    })
    const conn = [...app.echohub.connections].at(-1)!
    const texts = Array.from({ length: 200 }, (_, i) => `message ${i}`)
    // in tens, each ten once the ten before are echoed, so heartbeats fall among them
    const echoed = () => frames.filter((f) => f.opcode === 0x1).length
    for (let i = 0; i < texts.length; i += 10) {
      for (const text of texts.slice(i, i + 10)) client.socket.write(frame(0x1, Buffer.from(text)))
      await until(() => echoed() === i + 10, `${path}: echoes up to ${i + 10}`)
    }
    await until(() => frames.some((f) => f.opcode === 0x9), `${path}: a ping`)
    await until(() => conn.rttMs !== undefined, `${path}: a round trip timed`)
    const echoes = frames.filter((f) => f.opcode === 0x1).map((f) => f.payload.toString())
    t.same(path === '/raw' ? echoes : echoes.map((e) => (JSON.parse(e) as { original_message: string }).original_message), texts, `${path}: the echoes, whole and in order`)
    t.same(frames.filter((f) => f.opcode !== 0x1).map((f) => [f.opcode, f.payload.length]), frames.filter((f) => f.opcode === 0x9).map(() => [0x9, 0]), `${path}: nothing else but empty pings`)
  }
  t.equal(app.echohub.limitHits.heartbeat_timeout, undefined)
})

t.test('heartbeat 0 sends no pings at all', async (t) => {
  const off = await echoServer(t, { heartbeatInterval: 0 })
  const on = await echoServer(t, { heartbeatInterval: 10 })
  const quiet = await rawUpgrade(t, off.port)
  const pinged = await rawUpgrade(t, on.port)
  if (!isUpgraded(quiet) || !isUpgraded(pinged)) throw new Error('not upgraded')
  const quietFrames: number[] = []
  readFrames(quiet, (f) => quietFrames.push(f.opcode))
  // The other server pings and then cuts off its silent client: by then the quiet one would have had pings too.
  await new Promise((resolve) => pinged.socket.once('close', resolve))
  t.same(quietFrames, [], 'no ping reached the client of the server with heartbeat 0')
  t.equal(quiet.socket.destroyed, false, 'and it is still connected')
  t.equal((await off.app.inject('/stats')).json().limits.settings.heartbeat_interval_ms, 0)
})

t.test('echo stops reading from a client that never reads, resumes when it does, and loses nothing', async (t) => {
  const { app, port } = await echoServer(t)
  const up = await rawUpgrade(t, port, '/raw')
  if (!isUpgraded(up)) throw new Error('not upgraded')
  up.socket.pause() // the client reads nothing
  let maxBuffered = 0
  const [server] = app.websocketServer.clients
  server!.on('message', () => { maxBuffered = Math.max(maxBuffered, server!.bufferedAmount) })

  const size = 64 * 1024
  const count = 320 // 20 MiB
  const message = frame(0x2, randomBytes(size))
  for (let i = 0; i < count; i++) up.socket.write(message)
  await until(() => (app.echohub.limitHits.echo_backpressure ?? 0) >= 1, 'the echo to stop reading', 20000)
  t.equal(server!.isPaused, true, 'the server stopped reading from it')

  let echoed = 0
  const all = new Promise<void>((resolve) => readFrames(up, (f) => {
    if (f.opcode === 0x2) echoed += f.payload.length
    if (echoed === size * count) resolve()
  }))
  up.socket.resume()
  await all
  t.equal(echoed, size * count, 'every byte came back once the client read')
  t.ok(maxBuffered <= ECHO_HIGH_WATER + size + 14, `unsent bytes stayed bounded (${maxBuffered})`)
})

t.test('hostile input: garbage, abrupt disconnects; the process stays healthy and counts return to 0', async (t) => {
  const { app, port, url } = await echoServer(t)
  const bystander = await connect(t, url)

  // Random bytes instead of a handshake.
  for (let i = 0; i < 20; i++) {
    const s = net.connect(port, '127.0.0.1')
    t.teardown(() => s.destroy())
    s.on('error', () => {})
    s.end(randomBytes(512))
  }
  // Random bytes after the handshake, then the end of the stream: random bytes can also be a
  // valid frame whose payload has not all arrived, which the server rightly waits for.
  for (let i = 0; i < 20; i++) {
    const up = await rawUpgrade(t, port)
    if (!isUpgraded(up)) throw new Error('not upgraded')
    up.socket.on('error', () => {})
    up.socket.end(randomBytes(1024))
  }
  // Hundreds of clients that vanish without a close frame, some mid-handshake.
  for (let i = 0; i < 300; i++) {
    if (i % 3 === 0) {
      const s = net.connect(port, '127.0.0.1')
      s.on('error', () => {})
      s.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n')
      s.destroy()
    } else {
      const up = await rawUpgrade(t, port)
      if (isUpgraded(up)) up.socket.destroy()
    }
  }
  await until(() => app.echohub.connections.size === 1, 'every hostile connection to leave the registry', 20000)
  bystander.send('unaffected')
  t.equal((await nextJson(bystander)).original_message, 'unaffected', 'another client was not affected')
  bystander.close()
  await closed(bystander)
  await until(() => app.echohub.connections.size === 0, 'the bystander to leave')
  const health = await app.inject('/health')
  t.equal(health.statusCode, 200)
  t.equal(health.json().connections, 0)
  t.equal((await app.inject('/stats')).json().connections.current, 0)
  const fresh = await connect(t, url + '/raw')
  fresh.send('ok')
  t.equal((await nextMessage(fresh)).text, 'ok', 'new clients are still served')
})

t.test('a wrong registry option fails register naming it', async (t) => {
  for (const [opts, name] of [[{ maxConnections: 0 }, 'maxConnections'], [{ heartbeatInterval: -1 }, 'heartbeatInterval'], [{ origins: 'x' }, 'origins'], [{ authToken: '' }, 'authToken']] as const) {
    await t.rejects(listen(t, async (app) => { await app.register(echohubRegistry, opts as RegistryPluginOptions) }), { code: 'ECHOHUB_ERR_INVALID_OPTION', message: new RegExp(`option "${name}"`) })
  }
})
