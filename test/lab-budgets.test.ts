// The device lab's budgets: output produced as the socket drains, the output budget per message,
// the burst budget at the upgrade, burst frames shared between connections.
import t, { type Test } from 'tap'
import http from 'node:http'
import type { FastifyInstance } from 'fastify'
import type { WebSocket } from 'ws'
import { echo, echohubRegistry, stats, type EchoOptions, type RegistryPluginOptions } from '../index.js'
import { burstPayload } from '../src/lab/session.js'
import { listen, until } from './helpers/index.js'
import { frame, isUpgraded, rawClient, rawUpgrade, type FrameReader } from './helpers/raw.js'

const BINARY = 0x2
const CONTINUATION = 0x0
const CLOSE = 0x8
/** The SPEC's "about 64 KiB queued ahead of the client at most". */
const WINDOW = 64 * 1024

async function echoServer (t: Test, registry: RegistryPluginOptions = {}, echoOptions: EchoOptions = {}): Promise<{ app: FastifyInstance, port: number }> {
  return await listen(t, async (app) => {
    await app.register(echohubRegistry, { heartbeatInterval: 0, ...registry })
    await app.register(echo, echoOptions)
    await app.register(stats)
  })
}

function get (port: number, path: string): Promise<{ status: number, body: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (c: string) => { body += c }).on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    }).on('error', reject)
  })
}

/** The server's side of each open connection, in the order they were accepted. */
function serverSockets (app: FastifyInstance): WebSocket[] {
  return [...app.echohub.connections].map((c) => c.socket as unknown as WebSocket)
}

t.test('a lab reply is written as the client reads: a window ahead of a client that never reads, /health free, reading paused', async (t) => {
  const { app, port } = await echoServer(t)
  const size = 1024 * 1024
  const fragment = 1000
  const message = Buffer.alloc(size, 7)
  const readers: FrameReader[] = []
  for (let i = 0; i < 10; i++) {
    const reader = await rawClient(t, port, `/raw?fragment=${fragment}&repeat=10`)
    reader.upgraded.socket.pause()
    readers.push(reader)
  }
  for (const reader of readers) reader.upgraded.socket.write(frame(BINARY, message))
  const sockets = serverSockets(app)
  const conns = [...app.echohub.connections]
  // The kernel's buffers fill first; then the server holds at most a window of frames per client.
  await until(() => conns.every((c) => c.messagesReceived === 1) && sockets.every((s) => s.bufferedAmount > 0), 'every client\'s kernel buffers to fill', 30_000)
  let peak = 0
  for (let i = 0; i < 100; i++) {
    await new Promise((resolve) => setImmediate(resolve))
    for (const s of sockets) peak = Math.max(peak, s.bufferedAmount)
  }
  t.ok(peak <= WINDOW + fragment + 16, `unsent bytes per client stay within a window: at most ${peak}`)
  const health = await get(port, '/health')
  t.equal(health.status, 200, '/health answers while the replies wait')
  t.ok(conns.every((c) => c.messagesSent < 10), `the lab had not finished sending: ${conns.map((c) => c.messagesSent).join(',')} of 10 copies begun`)
  t.ok(sockets.every((s) => s.isPaused), 'the server stops reading from each client while its replies wait')

  // One client starts reading: it gets every copy, whole, then the echo of what it sent meanwhile.
  const reader = readers[0]!
  reader.upgraded.socket.write(frame(BINARY, Buffer.from('after')))
  for (const other of readers.slice(1)) other.upgraded.socket.destroy()
  reader.upgraded.socket.resume()
  for (let copy = 0; copy < 10; copy++) {
    let bytes = 0
    let frames = 0
    for (;;) {
      const f = await reader.next()
      if (f.opcode !== (frames === 0 ? BINARY : CONTINUATION) || f.payload.length > fragment || f.payload.some((b) => b !== 7)) {
        t.fail(`copy ${copy}, frame ${frames}: opcode ${f.opcode}, ${f.payload.length} bytes`)
        return
      }
      bytes += f.payload.length
      frames++
      if (f.fin) break
    }
    if (bytes !== size) t.fail(`copy ${copy} has ${bytes} bytes`)
  }
  t.pass('ten copies of 1 MiB in frames of at most 1000 bytes')
  const after = await reader.next()
  t.equal(after.payload.toString(), 'after', 'then the message sent while the server was not reading')
  t.notOk(sockets[0]!.isPaused, 'reading resumed once the replies were written')
})

t.test('labMaxOutput: a message whose replies would send more closes 1008, counted as lab_output', async (t) => {
  const { app, port } = await echoServer(t, {}, { labMaxOutput: 10_000 })
  const reader = await rawClient(t, port, '/raw?repeat=5')
  reader.send(Buffer.alloc(3000, 1))
  const frames = []
  for (;;) {
    const f = await reader.next()
    frames.push(f)
    if (f.opcode === CLOSE) break
  }
  t.equal(frames.length, 4, 'three copies (3004 bytes each on the wire), then the close')
  const close = frames.at(-1)!
  t.equal(close.payload.readUInt16BE(0), 1008)
  t.equal(close.payload.subarray(2).toString(), 'lab output budget spent')
  const body = (await app.inject('/stats')).json()
  t.equal(body.limits.hits.lab_output, 1, 'counted as lab_output')
  t.equal(body.limits.settings.lab_max_output, 10_000, '/stats shows the budget')

  // Fragment headers count too: 1000 bytes in frames of 10 take 1200 on the wire.
  const fragmented = await rawClient(t, port, '/raw?fragment=10&repeat=9')
  fragmented.send(Buffer.alloc(1000, 2))
  let wire = 0
  for (;;) {
    const f = await fragmented.next()
    if (f.opcode === CLOSE) break
    wire += 2 + f.payload.length
  }
  t.equal(wire, 9996, 'frames up to the budget (833 of 12 wire bytes, headers counted), then the close; the next would pass it')

  // Within the budget nothing is closed.
  const fits = await rawClient(t, port, '/raw?repeat=3')
  fits.send(Buffer.alloc(3000, 3))
  for (let i = 0; i < 3; i++) t.equal((await fits.next()).payload.length, 3000)
  fits.send('more')
  t.equal((await fits.next()).payload.toString(), 'more', 'a message within the budget leaves the connection open')
})

t.test('labMaxBurst: a burst asking for more is refused 400 invalid_control naming burst', async (t) => {
  const { app, port } = await echoServer(t, {}, { labMaxBurst: 1_000_000 })
  const answer = await rawUpgrade(t, port, '/raw?burst=1001&burst_size=1000')
  if (isUpgraded(answer)) {
    t.fail('upgraded')
    return
  }
  t.equal(answer.status, 400)
  const body = JSON.parse(answer.body)
  t.same([body.error, body.control], ['invalid_control', 'burst'])
  t.match(body.message, /1001000 bytes.*1000000/)
  t.ok(isUpgraded(await rawUpgrade(t, port, '/raw?burst=1000&burst_size=1000')), 'exactly the budget is allowed')
  const settings = (await app.inject('/stats')).json().limits
  t.equal(settings.settings.lab_max_burst, 1_000_000)
  t.equal(settings.hits.invalid_control, 1)
})

t.test('the defaults: 16 MiB of output per message, 256 MiB per burst', async (t) => {
  const { app, port } = await echoServer(t)
  const answer = await rawUpgrade(t, port, '/raw?burst=1000000&burst_size=1048576')
  t.equal(isUpgraded(answer) ? 101 : answer.status, 400, 'the issue\'s 1 TB burst is refused')
  const settings = (await app.inject('/stats')).json().limits.settings
  t.same([settings.lab_max_output, settings.lab_max_burst], [16777216, 268435456])
  const Fastify = (await import('fastify')).default
  const bad = Fastify({ logger: false })
  t.teardown(() => bad.close())
  await t.rejects(async () => { await bad.register(echo, { labMaxOutput: 0 }).ready() }, { code: 'ECHOHUB_ERR_INVALID_OPTION', message: /labMaxOutput/ }, 'a wrong budget fails register naming it')
})

t.test('burst frames of one size and kind are the same bytes for every connection', async (t) => {
  const a = burstPayload(4096, false)
  t.equal(burstPayload(4096, false), a, 'the same buffer, not a copy')
  t.not(burstPayload(4096, true), a, 'binary frames are their own')
  t.equal(burstPayload(4096, true)[300], 300 & 0xff)
})

t.test('an operator\'s send to a lab connection waits for the fragmented reply in progress', async (t) => {
  const { app, port } = await echoServer(t)
  const reader = await rawClient(t, port, '/raw?fragment=10&repeat=3')
  reader.upgraded.socket.pause()
  reader.send(Buffer.alloc(200_000, 9))
  const conn = [...app.echohub.connections][0]!
  await until(() => conn.messagesReceived === 1 && (conn.socket as unknown as WebSocket).isPaused, 'the reply to be under way')
  const res = await app.inject({ method: 'POST', url: `/connections/${conn.id}/send`, payload: { text: 'from the operator' } })
  t.equal(res.statusCode, 202)
  reader.upgraded.socket.resume()
  for (let copy = 0; copy < 3; copy++) {
    let bytes = 0
    for (;;) {
      const f = await reader.next()
      if (f.opcode !== (bytes === 0 ? BINARY : CONTINUATION)) {
        t.fail(`copy ${copy}: opcode ${f.opcode} inside the fragmented reply (${f.payload.toString().slice(0, 20)})`)
        return
      }
      bytes += f.payload.length
      if (f.fin) break
    }
    t.equal(bytes, 200_000, `copy ${copy} whole`)
  }
  const sent = await reader.next()
  t.same([sent.opcode, sent.fin, sent.payload.toString()], [0x1, true, 'from the operator'], 'then the operator\'s message, whole')
})

t.test('pushes are whole messages whatever fragment says, and at most one waits for a client that does not read', async (t) => {
  const { app, port } = await echoServer(t)
  const reader = await rawClient(t, port, '/raw?fragment=2&push=10')
  const first = await reader.next()
  t.same([first.opcode, first.fin, first.payload.toString()], [0x1, true, 'push 1'])
  const stalled = await rawClient(t, port, '/raw?push=10&burst=100000&burst_size=1000')
  stalled.upgraded.socket.pause()
  const conn = [...app.echohub.connections][1]!
  const socket = conn.socket as unknown as WebSocket
  await until(() => socket.bufferedAmount > 0 && socket.isPaused, 'the burst to stall')
  const sent = conn.messagesSent
  // Twenty push periods later the stalled client has been given no more than one more message.
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.ok(conn.messagesSent - sent <= 1, `${conn.messagesSent - sent} more messages while stalled`)
})
