// Several echohub instances on one Redis, as a load balancer would spread clients over them: real
// processes (`node dist/app/cli.js --redis ...`), one killed with SIGKILL mid-stream, and a Redis
// of the test's own stopped and started under running instances.
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { pino } from 'pino'
import { parseConfig, startEchohub, type Echohub } from '../index.js'
import { eventually } from './helpers/index.js'
import { joinChat, type ChatClient, type Frame } from './helpers/chat.js'
import { CLIENT_ID_SPAN } from '../src/chat/redis-adapter.js'
import { REDIS_URL, ownRedis, redisMissing, redisServerMissing, testPrefix } from './helpers/redis.js'

const CLI = fileURLToPath(new URL('../dist/app/cli.js', import.meta.url))
if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first (npm test does)`)
/** The SPEC's bound for a dead instance's members to leave. */
const LEAVE_WITHIN_MS = 30_000

const missing = await redisMissing()
if (missing !== undefined && process.env.CI) t.fail(`${missing}: CI must run the multi-instance tests`)
const skip = missing ?? false
const serverMissing = missing ?? await redisServerMissing()
if (serverMissing !== undefined && process.env.CI) t.fail(`${serverMissing}: CI must run the Redis restart test`)

interface Instance {
  child: ChildProcess
  port: number
  ws: string
  http: string
}

/** One echohub process with only the chat, on a free port, on the given Redis and prefix; killed in teardown. At info, so its banner says the port. */
async function instance (t: Test, prefix: string, redisUrl = REDIS_URL): Promise<Instance> {
  const args = ['--redis', redisUrl, '--redis-prefix', prefix, '--chat-port', '0', '--only', 'chat', '--host', '127.0.0.1', '--log-format', 'json', '--log-level', 'info']
  // Settings come from the flags alone, whatever this machine's environment says.
  const env = { ...process.env, REDIS_URL: '', REDIS_PREFIX: '', CHAT_PORT: '', SERVERS: '', _TAPJS_PROCESSINFO_COVERAGE_: '0' }
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const lines = createInterface({ input: child.stdout! })
  const port = await new Promise<number>((resolve, reject) => {
    lines.on('line', (line) => {
      const entry = JSON.parse(line) as { msg?: string, servers?: Array<{ name: string, port: number }> }
      const chat = entry.msg === 'echohub listening' ? entry.servers?.find((s) => s.name === 'chat') : undefined
      if (chat !== undefined) resolve(chat.port)
    })
    child.once('exit', (code) => reject(new Error(`echohub exited with ${String(code)} before listening`)))
  })
  return { child, port, ws: `ws://127.0.0.1:${port}/ws`, http: `http://127.0.0.1:${port}` }
}

/** The next frame that `match` accepts; the ones before it are returned too, in order. */
async function readUntil (client: ChatClient, match: (frame: Frame) => boolean, what: string, ms = 10_000): Promise<{ frame: Frame, before: Frame[] }> {
  const before: Frame[] = []
  const deadline = Date.now() + ms
  for (;;) {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), Math.max(1, deadline - Date.now())) })
    try {
      const frame = await Promise.race([client.inbox.next(), timeout])
      if (match(frame)) return { frame, before }
      before.push(frame)
    } finally {
      clearTimeout(timer)
    }
  }
}

async function joinRoom (client: ChatClient, room: string, since?: number): Promise<Frame> {
  client.ws.send(JSON.stringify(since === undefined ? { type: 'join', room } : { type: 'join', room, since }))
  return (await readUntil(client, (f) => f.type === 'joined' && f.room === room, `joined ${room}`)).frame
}

async function json (url: string): Promise<{ status: number, body: Record<string, any> }> {
  const res = await fetch(url)
  return { status: res.status, body: await res.json() as Record<string, any> }
}

t.test('three instances on one Redis are one chat', { skip }, async (t) => {
  const prefix = testPrefix(t)
  const hubs = await Promise.all([instance(t, prefix), instance(t, prefix), instance(t, prefix)])
  const clients = await Promise.all([...hubs, hubs[0]!].map((h) => joinChat(t, h.ws)))
  const ids = clients.map((c) => c.clientId)
  t.equal(new Set(ids).size, 4, 'client_ids never collide')
  t.equal(new Set(ids.slice(0, 3).map((id) => Math.floor(id / CLIENT_ID_SPAN))).size, 3, 'each instance numbers in its own range')

  const joined: Frame[] = []
  for (const client of clients) joined.push(await joinRoom(client, 'lab'))
  t.same(joined.at(-1)!.payload.members, ids, 'members across every instance, in join order')
  const presence = await readUntil(clients[0]!, (f) => f.type === 'presence' && f.payload.client_id === ids[3], 'the last join on the first client')
  t.same([...presence.before, presence.frame].map((f) => [f.payload.event, f.payload.client_id, f.payload.count]), [['join', ids[1], 2], ['join', ids[2], 3], ['join', ids[3], 4]], 'joins on other instances arrive as presence, with counts')

  for (const [i, client] of clients.entries()) {
    for (let n = 0; n < 10; n++) client.ws.send(JSON.stringify({ type: 'message', room: 'lab', payload: { from: i, n } }))
  }
  const seen = await Promise.all(clients.map(async (client) => {
    const texts: string[] = []
    while (texts.length < 40) {
      const raw = await client.inbox.nextRaw()
      if (raw.frame.type === 'message' && raw.frame.room === 'lab') texts.push(raw.text)
    }
    return texts
  }))
  t.same(seen[0]!.map((text) => JSON.parse(text).seq), Array.from({ length: 40 }, (_, i) => i + 1), 'every message once, in seq order')
  for (const texts of seen.slice(1)) t.same(texts, seen[0], 'the same frames in the same order on every instance')
  for (let i = 0; i < 4; i++) {
    const own = seen[0]!.map((text) => JSON.parse(text)).filter((f) => f.from === ids[i]).map((f) => f.payload.n)
    t.same(own, Array.from({ length: 10 }, (_, n) => n), `client ${i}'s messages keep their order`)
  }

  clients[2]!.ws.send(JSON.stringify({ type: 'history', room: 'lab', limit: 100 }))
  const history = (await readUntil(clients[2]!, (f) => f.type === 'history', 'history')).frame
  t.same(history.payload.map((f: Frame) => JSON.stringify(f)), seen[0], 'history from any instance holds what was delivered')
  for (const hub of hubs) {
    t.same((await json(`${hub.http}/rooms`)).body, { rooms: [{ room: 'lab', members: 4, seq: 40 }] }, '/rooms is cluster-wide')
    t.same((await json(`${hub.http}/stats`)).body.rooms, { count: 1, members: 4 }, '/stats rooms too')
  }
})

t.test('an instance killed with SIGKILL: its clients resume on a survivor, its members leave', { skip }, async (t) => {
  const prefix = testPrefix(t)
  const [doomed, survivor] = await Promise.all([instance(t, prefix), instance(t, prefix)])
  const x = await joinChat(t, doomed.ws)
  const y = await joinChat(t, survivor.ws)
  await joinRoom(x, 'k')
  await joinRoom(y, 'k')

  // x sends steadily; y reads everything. The doomed instance dies once x has seen ten of its own.
  const seqs: number[] = []
  let sent = 0
  const sender = setInterval(() => {
    if (x.ws.readyState === x.ws.OPEN) x.ws.send(JSON.stringify({ type: 'message', room: 'k', payload: ++sent }))
  }, 5)
  t.teardown(() => clearInterval(sender))
  let killedAt = 0
  for (;;) {
    let frame: Frame
    try {
      frame = await x.inbox.next()
    } catch {
      break // closed: the instance is gone
    }
    if (frame.type === 'message' && frame.room === 'k') {
      seqs.push(frame.seq)
      if (seqs.length === 10 && killedAt === 0) {
        killedAt = Date.now()
        doomed.child.kill('SIGKILL')
      }
    }
  }
  clearInterval(sender)
  t.ok(killedAt > 0, 'the instance was killed mid-stream')
  t.same(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1), 'before the kill: no gap')

  // y keeps talking while x is away.
  for (let n = 0; n < 5; n++) y.ws.send(JSON.stringify({ type: 'message', room: 'k', payload: `y${n}` }))
  const since = seqs.at(-1)!
  const x2 = await joinChat(t, survivor.ws)
  const resumed = await joinRoom(x2, 'k', since)
  t.equal(resumed.payload.recovered, true, 'nothing was lost from the history')
  const afterKill = resumed.payload.history.map((f: Frame) => f.seq)
  y.ws.send(JSON.stringify({ type: 'message', room: 'k', payload: 'last' }))
  const rest = await readUntil(x2, (f) => f.type === 'message' && f.payload === 'last', "y's last message")
  const live = [...rest.before, rest.frame].filter((f) => f.type === 'message' && f.room === 'k').map((f) => f.seq)
  const all = [...seqs, ...afterKill, ...live]
  t.same(all, Array.from({ length: all.length }, (_, i) => i + 1), 'every message exactly once, in seq order, across the kill')
  const yTexts = [...resumed.payload.history, ...rest.before, rest.frame].filter((f: Frame) => typeof f.payload === 'string').map((f: Frame) => f.payload)
  t.same(yTexts, ['y0', 'y1', 'y2', 'y3', 'y4', 'last'], "y's messages sent meanwhile all arrive")

  const leave = await readUntil(y, (f) => f.type === 'presence' && f.payload.event === 'leave' && f.payload.client_id === x.clientId, "the dead instance's client to leave", LEAVE_WITHIN_MS)
  const after = Date.now() - killedAt
  t.ok(after <= LEAVE_WITHIN_MS, `the survivor sent leave ${(after / 1000).toFixed(1)} s after the kill`)
  t.equal(leave.frame.payload.count, 2, 'y and the resumed x remain')
  t.same((await json(`${survivor.http}/rooms`)).body.rooms[0].members, 2)
})

t.test('Redis unreachable at start: exit 1 with one line naming the URL, without its password', async (t) => {
  const blocker = (await import('node:net')).createServer()
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
  const port = (blocker.address() as { port: number }).port
  await new Promise<void>((resolve) => blocker.close(() => resolve()))
  const env = { ...process.env, REDIS_URL: '', _TAPJS_PROCESSINFO_COVERAGE_: '0' }
  const child = spawn(process.execPath, [CLI, '--redis', `redis://app:s3cret@127.0.0.1:${port}`, '--chat-port', '0', '--only', 'chat', '--host', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'pipe'], env })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)))
  t.equal(code, 1)
  t.equal(stderr.trim().split('\n').length, 1, 'one line, no stack trace')
  t.match(stderr, `echohub: Redis at redis://app:***@127.0.0.1:${port} is unreachable`)
  t.notMatch(stderr, 's3cret', 'the password stays out')
})

const silent = pino({ level: 'silent' })

async function hub (t: Test, redisUrl: string, prefix: string): Promise<{ hub: Echohub, ws: string, http: string }> {
  const parsed = parseConfig(['--host', '127.0.0.1', '--only', 'chat', '--chat-port', '0', '--redis', redisUrl, '--redis-prefix', prefix], {})
  if (parsed.help) throw new Error('unexpected --help')
  const started = await startEchohub(parsed.config, { logger: silent })
  t.teardown(() => started.close())
  const port = started.servers[0]!.port
  return { hub: started, ws: `ws://127.0.0.1:${port}/ws`, http: `http://127.0.0.1:${port}` }
}

async function healthIs (http: string, status: string, ms = 15_000): Promise<Record<string, any>> {
  let body: Record<string, any> = {}
  await eventually(async () => (body = (await json(`${http}/health`)).body).status === status, `/health to say ${status}`, ms)
  return body
}

t.test('Redis stopped and started under two instances: degraded, local chat, then back by itself', { skip: serverMissing ?? false }, async (t) => {
  const redis = await ownRedis(t)
  const a = await hub(t, redis.url, 'restart:')
  const b = await hub(t, redis.url, 'restart:')
  const a1 = await joinChat(t, a.ws)
  const a2 = await joinChat(t, a.ws)
  const b1 = await joinChat(t, b.ws)
  for (const c of [a1, a2, b1]) await joinRoom(c, 'lab')
  const healthy = await json(`${a.http}/health`)
  t.same([healthy.status, healthy.body.status, healthy.body.redis], [200, 'ok', undefined], '/health: ok while Redis is there')

  await redis.stop()
  const degraded = await healthIs(a.http, 'degraded')
  t.equal(degraded.redis, 'down', '/health: 200 degraded, redis down')
  t.same(Object.keys(degraded), ['status', 'redis', 'uptime_s', 'connections'])
  t.equal((await json(`${a.http}/health`)).status, 200, 'still in service: local chat goes on')
  a1.ws.send(JSON.stringify({ type: 'message', room: 'lab', payload: 'local only' }))
  const local = (await readUntil(a2, (f) => f.type === 'message' && f.payload === 'local only', 'the local message')).frame
  t.equal(local.seq, null, 'delivered locally, with seq null: it cannot be resumed')
  t.same((await json(`${a.http}/stats`)).body.redis, { status: 'down', outages: 1 })

  await redis.start()
  await healthIs(a.http, 'ok')
  await healthIs(b.http, 'ok')
  b1.ws.send(JSON.stringify({ type: 'message', room: 'lab', payload: 'across again' }))
  const across = (await readUntil(a1, (f) => f.type === 'message' && f.payload === 'across again', 'a message from the other instance')).frame
  t.type(across.seq, 'number', 'numbered and stored again')
  t.same((await json(`${a.http}/stats`)).body.redis, { status: 'up', outages: 1 }, 'the outage is counted')
})
