// Budgets every echohub connection has, whatever its endpoint: control frames per second, TCP
// keep-alive on the socket, a heartbeat that spreads its pings over its period.
import t, { type Test } from 'tap'
import { Socket } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { pino } from 'pino'
import { chat, echo, echohubRegistry, parseConfig, startEchohub, stats, type RegistryPluginOptions } from '../index.js'
import { listen, until } from './helpers/index.js'
import { frame, rawClient } from './helpers/raw.js'

const PING = 0x9
const PONG = 0xa
const CLOSE = 0x8

async function server (t: Test, registry: RegistryPluginOptions = {}): Promise<{ app: FastifyInstance, port: number, logs: Array<Record<string, unknown>> }> {
  const logs: Array<Record<string, unknown>> = []
  const stream = { write: (line: string) => { logs.push(JSON.parse(line) as Record<string, unknown>) } }
  const { app, port } = await listen(t, async (app) => {
    await app.register(echohubRegistry, { heartbeatInterval: 0, ...registry })
    await app.register(echo)
    await app.register(chat, { path: '/chat' })
    await app.register(stats)
  }, { logger: { level: 'warn', stream } })
  return { app, port, logs }
}

t.test('150 pings in one write: pongs up to the limit, then close 1008 "too many control frames", counted and logged', async (t) => {
  const { app, port, logs } = await server(t)
  for (const path of ['/raw', '/chat']) {
    const reader = await rawClient(t, port, path)
    reader.upgraded.socket.write(Buffer.concat(Array.from({ length: 150 }, (_, i) => frame(PING, Buffer.from(String(i))))))
    const got = []
    for (;;) {
      const f = await reader.next()
      if (f.opcode === PONG) {
        got.push(f.payload.toString())
        continue
      }
      if (path === '/chat' && f.opcode !== CLOSE) continue // the chat's welcome
      t.equal(f.opcode, CLOSE, `${path}: a close frame, not a cut TCP connection`)
      t.equal(f.payload.readUInt16BE(0), 1008)
      t.equal(f.payload.subarray(2).toString(), 'too many control frames')
      break
    }
    t.equal(got.length, 101, `${path}: every ping up to the one past the limit was answered`)
    t.same(got.slice(0, 3), ['0', '1', '2'], 'with its own payload')
  }
  const body = (await app.inject('/stats')).json()
  t.equal(body.limits.hits.control_flood, 2, 'counted as control_flood')
  t.equal(body.limits.settings.max_control_frames, 100, '/stats shows the limit')
  t.equal(logs.filter((l) => /more than 100 pings and pongs/.test(String(l.msg))).length, 2, 'one warn line each')
})

t.test('maxControlFrames: pongs count too, a client within the limit stays, 0 turns it off', async (t) => {
  const { app, port } = await server(t, { maxControlFrames: 5 })
  const pongs = await rawClient(t, port, '/raw')
  pongs.upgraded.socket.write(Buffer.concat(Array.from({ length: 6 }, () => frame(PONG, Buffer.alloc(0)))))
  const close = await pongs.next()
  t.same([close.opcode, close.payload.readUInt16BE(0)], [CLOSE, 1008], 'six unsolicited pongs close it')
  const within = await rawClient(t, port, '/raw')
  within.upgraded.socket.write(Buffer.concat(Array.from({ length: 5 }, () => frame(PING, Buffer.alloc(0)))))
  for (let i = 0; i < 5; i++) t.equal((await within.next()).opcode, PONG)
  within.send('still open')
  t.equal((await within.next()).payload.toString(), 'still open')
  t.equal(app.echohub.limitHits.control_flood, 1)

  const { port: offPort } = await server(t, { maxControlFrames: 0 })
  const off = await rawClient(t, offPort, '/raw')
  off.upgraded.socket.write(Buffer.concat(Array.from({ length: 50 }, () => frame(PING, Buffer.alloc(0)))))
  for (let i = 0; i < 50; i++) t.equal((await off.next()).opcode, PONG, `pong ${i}`)
})

t.test('every accepted WebSocket has TCP keep-alive on, idle 60 s', async (t) => {
  const { app, port } = await server(t, { heartbeatInterval: 0 })
  const calls: Array<[boolean | undefined, number | undefined]> = []
  app.server.on('connection', (socket: Socket) => {
    const own = socket.setKeepAlive.bind(socket)
    socket.setKeepAlive = (enable?: boolean, delay?: number) => {
      calls.push([enable, delay])
      return own(enable, delay)
    }
  })
  const reader = await rawClient(t, port, '/raw?ping=0')
  reader.send('hi')
  await reader.next()
  t.same(calls, [[true, 60000]], 'set on the socket of the upgrade, even with ping=0')
  await rawClient(t, port, '/chat')
  t.same(calls.length, 2, 'and on the chat\'s')
})

t.test('the heartbeat spreads its pings over its period', async (t) => {
  const { app, port } = await server(t, { heartbeatInterval: 1000 })
  for (let i = 0; i < 30; i++) {
    const reader = await rawClient(t, port, '/raw')
    // Each client answers its pings, so it is pinged once a period.
    void (async () => {
      for (;;) {
        const f = await reader.next()
        if (f.opcode === PING) reader.send(f.payload, PONG)
      }
    })().catch(() => {})
  }
  // When each connection is pinged first from now on, by the server's clock.
  const firstPing = new Map<number, number>()
  for (const conn of app.echohub.connections) {
    const own = conn.ping.bind(conn)
    conn.ping = () => {
      if (!firstPing.has(conn.id)) firstPing.set(conn.id, performance.now())
      own()
    }
  }
  await until(() => firstPing.size === 30, 'every connection to be pinged', 5000)
  const times = [...firstPing.values()]
  const spread = Math.max(...times) - Math.min(...times)
  // All in one turn of the event loop would be a spread of about 0 ms; over the period, most of 1000.
  t.ok(spread >= 300, `the 30 pings spread over ${Math.round(spread)} ms of the 1000 ms period`)
  t.equal(app.echohub.limitHits.heartbeat_timeout, undefined, 'no client that answers is cut off')
})

t.test('the CLI flags reach every server: /stats shows them and the echo servers enforce them', async (t) => {
  const parsed = parseConfig(['--host', '127.0.0.1', '--echo-port', '0', '--debug-port', '0', '--chat-port', '0',
    '--lab-max-output', '5000', '--lab-max-burst', '1000', '--max-control-frames', '7'], {})
  if (parsed.help) throw new Error('help')
  const hub = await startEchohub(parsed.config, { logger: pino({ level: 'silent' }) })
  t.teardown(() => hub.close())
  for (const s of hub.servers) {
    const settings = (await s.app.inject('/stats')).json().limits.settings
    t.same([settings.lab_max_output, settings.lab_max_burst, settings.max_control_frames], [5000, 1000, 7], `${s.name}: /stats`)
  }
  for (const s of hub.servers.filter((x) => x.name !== 'chat')) {
    const reader = await rawClient(t, s.port, '/raw?repeat=2')
    reader.send(Buffer.alloc(3000))
    t.equal((await reader.next()).payload.length, 3000)
    const close = await reader.next()
    t.same([close.opcode, close.payload.readUInt16BE(0)], [CLOSE, 1008], `${s.name}: the output budget`)
  }
})

t.test('echohub\'s servers set keep-alive on every accepted socket, a plain HTTP one included', async (t) => {
  const parsed = parseConfig(['--host', '127.0.0.1', '--echo-port', '0', '--debug-port', '0', '--chat-port', '0'], {})
  if (parsed.help) throw new Error('help')
  const calls: Array<[boolean | undefined, number | undefined]> = []
  const own = Socket.prototype.setKeepAlive
  // Only sockets a server accepted: an HTTP client's agent sets keep-alive on its own sockets too.
  Socket.prototype.setKeepAlive = function (this: Socket & { server?: unknown }, enable?: boolean, delay?: number) {
    if (this.server !== undefined && this.server !== null) calls.push([enable, delay])
    return own.call(this, enable, delay)
  }
  t.teardown(() => { Socket.prototype.setKeepAlive = own })
  const hub = await startEchohub(parsed.config, { logger: pino({ level: 'silent' }) })
  t.teardown(() => hub.close())
  for (const s of hub.servers) {
    const before = calls.length
    const res = await fetch(`http://127.0.0.1:${s.port}/health`)
    t.equal(res.status, 200)
    t.same(calls.slice(before), [[true, 60000]], `${s.name}: on accept`)
  }
})
