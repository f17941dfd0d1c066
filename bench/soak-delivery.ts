// `npm run soak -- --delivery`: exactly-once delivery under faults. Two echohub processes on one
// Redis (a key prefix of the run's own, deleted at the end); clients of echohub/client, each a
// member of one room, send with keys at a steady rate while connections are dropped at random
// (the lab's `POST /connections/:id/drop`) and one of the two instances is killed (SIGKILL) and
// started again, over and over. Each client reconnects by itself to either instance. At the end:
// every acked message must have reached every member exactly once, in seq order. Prints the lost,
// duplicated and out-of-order counts; exit code 0 when all three are 0.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import { connect, type ChatClient } from '../dist/src/client/index.js'
import { fmt, table } from './report.js'
import { REDIS_URL, ROOT, freePort, sleep } from './servers.js'

const ROOM = 'soak-delivery'

interface Member {
  index: number
  chat: ChatClient
  /** `c-n` of each message delivered, and how many times. */
  delivered: Map<string, number>
  lastSeq: number
  duplicates: number
  outOfOrder: number
  gaps: number
  notRecovered: string[]
  opens: number
  /** The instance port of its current connection. */
  port: number
}

/** Runs the soak with its own arguments; resolves with the exit code. */
export async function runDeliverySoak (argv: string[]): Promise<number> {
  const { values: opt } = parseArgs({
    args: argv,
    options: {
      minutes: { type: 'string', default: '3' },
      clients: { type: 'string', default: '8' },
      rate: { type: 'string', default: '4' },
      'drop-every': { type: 'string', default: '1000' },
      'kill-every': { type: 'string', default: '30' },
      down: { type: 'string', default: '4' },
      help: { type: 'boolean', short: 'h', default: false }
    }
  })
  if (opt.help) {
    console.log(`usage: npm run soak -- --delivery [--minutes 3] [--clients 8] [--rate 4] [--drop-every 1000] [--kill-every 30] [--down 4]
  --minutes     how long the clients send (default 3)
  --clients     clients, each a member of the room and a sender (default 8)
  --rate        messages per second per client (default 4)
  --drop-every  ms between two dropped connections, a random client's each time (default 1000)
  --kill-every  s between two kills of the second instance (SIGKILL) (default 30)
  --down        s the killed instance stays down before it is started again (default 4)
  Needs Redis at REDIS_URL (default redis://127.0.0.1:6379).`)
    return 0
  }
  const minutes = Number(opt.minutes)
  const clients = Number(opt.clients)
  const rate = Number(opt.rate)
  const dropEvery = Number(opt['drop-every'])
  const killEvery = Number(opt['kill-every']) * 1000
  const down = Number(opt.down) * 1000
  if (!(minutes > 0) || !(clients >= 2) || !(rate > 0) || !(dropEvery > 0) || !(killEvery > down) || !(down > 0)) {
    console.error('soak --delivery: --minutes, --rate, --drop-every and --down must be > 0, --clients at least 2, --kill-every longer than --down')
    return 2
  }

  const prefix = `echohub-soak:${randomUUID().slice(0, 8)}:`
  const ports = [await freePort(), await freePort()] as const
  const cli = path.join(ROOT, 'dist', 'app', 'cli.js')
  const instances: Array<ChildProcess | undefined> = [undefined, undefined]
  const start = async (i: 0 | 1): Promise<void> => {
    const env = { ...process.env }
    for (const name of ['REDIS_URL', 'REDIS_PREFIX', 'CHAT_PORT', 'SERVERS', 'HISTORY_SIZE', 'RATE_LIMIT']) delete env[name]
    const child = spawn(process.execPath, [cli, '--redis', REDIS_URL, '--redis-prefix', prefix, '--only', 'chat', '--host', '127.0.0.1',
      '--chat-port', String(ports[i]), '--log-level', 'error', '--log-format', 'json', '--rate-limit', '0', '--history-size', '100000'], { stdio: ['ignore', 'ignore', 'inherit'], env })
    instances[i] = child
    for (const deadline = Date.now() + 15_000; ;) {
      if (child.exitCode !== null) throw new Error(`instance ${i + 1} exited with ${child.exitCode}`)
      const ok = await fetch(`http://127.0.0.1:${ports[i]}/health`).then((r) => r.status === 200, () => false)
      if (ok) return
      if (Date.now() > deadline) throw new Error(`instance ${i + 1} did not answer /health`)
      await sleep(100)
    }
  }
  const kill = async (i: 0 | 1): Promise<void> => {
    const child = instances[i]
    instances[i] = undefined
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    child.kill('SIGKILL')
    await gone
  }
  process.on('exit', () => { for (const child of instances) child?.kill('SIGKILL') })

  console.log(`echohub delivery soak: ${minutes} min, ${clients} clients sending ${rate}/s each to one room, a connection dropped every ${dropEvery} ms, ` +
    `instance 2 killed every ${killEvery / 1000} s for ${down / 1000} s; node ${process.version}; Redis ${REDIS_URL}, prefix ${prefix}`)
  await start(0)
  await start(1)

  // The clients: each tries the instances in turn, as a load balancer without sticky sessions would.
  const members: Member[] = []
  for (let index = 0; index < clients; index++) {
    let attempt = index
    const member: Member = { index, chat: undefined as unknown as ChatClient, delivered: new Map(), lastSeq: 0, duplicates: 0, outOfOrder: 0, gaps: 0, notRecovered: [], opens: 0, port: 0 }
    member.chat = connect(() => {
      member.port = ports[attempt++ % 2]!
      return `ws://127.0.0.1:${member.port}/ws`
    }, { reconnectDelay: 200, maxReconnectDelay: 3000, sendTimeout: 60_000 })
    member.chat.on('state', (s) => { if (s.state === 'open') member.opens++ })
    member.chat.on('joined', (j) => {
      if (!j.recovered) member.notRecovered.push(j.reason ?? 'unknown')
    })
    member.chat.on('reset', () => member.notRecovered.push('reset'))
    member.chat.on('message', (m) => {
      const body = m.payload as { c?: number, n?: number }
      const id = `${body.c}-${body.n}`
      const times = (member.delivered.get(id) ?? 0) + 1
      member.delivered.set(id, times)
      if (times > 1) member.duplicates++
      if (typeof m.seq === 'number') {
        if (m.seq <= member.lastSeq) member.outOfOrder++
        else if (m.seq > member.lastSeq + 1) member.gaps++
        member.lastSeq = m.seq
      }
    })
    members.push(member)
  }
  await Promise.all(members.map((m) => m.chat.join(ROOM)))

  // Senders.
  const acked = new Map<string, number | null>()
  let sent = 0
  let duplicateAcks = 0
  const failures: Record<string, number> = {}
  const inFlight = new Set<Promise<void>>()
  let sending = true
  const senders = members.map(async (member) => {
    let n = 0
    const every = 1000 / rate
    for (let next = Date.now(); sending; next += every) {
      await sleep(Math.max(0, next - Date.now()))
      if (!sending) break
      const id = `${member.index}-${++n}`
      sent++
      const p = member.chat.send(ROOM, { c: member.index, n }, { key: `soak-${id}` }).then((r) => {
        if (r.duplicate) duplicateAcks++
        acked.set(id, r.seq)
      }, (err: { code: string }) => {
        failures[err.code] = (failures[err.code] ?? 0) + 1
      })
      inFlight.add(p)
      void p.finally(() => inFlight.delete(p))
    }
  })

  // Faults: random drops, and the second instance killed and started again.
  let drops = 0
  let kills = 0
  const t0 = Date.now()
  const runMs = minutes * 60_000
  const dropper = (async () => {
    while (Date.now() - t0 < runMs) {
      await sleep(dropEvery * (0.5 + Math.random()))
      const member = members[Math.floor(Math.random() * members.length)]!
      const id = member.chat.clientId
      if (id === undefined) continue
      const ok = await fetch(`http://127.0.0.1:${member.port}/connections/${id}/drop`, { method: 'POST' }).then((r) => r.status === 202, () => false)
      if (ok) drops++
    }
  })()
  const killer = (async () => {
    for (let at = killEvery; at + down < runMs; at += killEvery) {
      await sleep(Math.max(0, t0 + at - Date.now()))
      await kill(1)
      kills++
      await sleep(down)
      await start(1)
    }
  })()
  const progress = setInterval(() => {
    const delivered = members.reduce((a, m) => a + m.delivered.size, 0)
    console.log(`${fmt((Date.now() - t0) / 1000, 0).padStart(5)} s  sent ${sent}  acked ${acked.size}  in flight ${inFlight.size}  delivered ${delivered}  drops ${drops}  kills ${kills}  ` +
      `duplicated ${members.reduce((a, m) => a + m.duplicates, 0)}  out of order ${members.reduce((a, m) => a + m.outOfOrder, 0)}`)
  }, 10_000)

  await sleep(runMs)
  sending = false
  await Promise.all([...senders, dropper, killer])
  if (instances[1] === undefined) await start(1)
  // Every send settles: acked, or failed after its timeout.
  await Promise.all([...inFlight])
  // Then every member catches up with every acked message (or 60 s pass).
  const ackedIds = [...acked.keys()]
  for (const deadline = Date.now() + 60_000; Date.now() < deadline;) {
    if (members.every((m) => ackedIds.every((id) => m.delivered.has(id)))) break
    await sleep(200)
  }
  await sleep(1000) // a last look for late repeats
  clearInterval(progress)

  const lostBy = members.map((m) => ackedIds.filter((id) => !m.delivered.has(id)).length)
  const lost = lostBy.reduce((a, b) => a + b, 0)
  const duplicated = members.reduce((a, m) => a + m.duplicates, 0)
  const outOfOrder = members.reduce((a, m) => a + m.outOfOrder, 0)
  const gaps = members.reduce((a, m) => a + m.gaps, 0)
  const notRecovered = members.flatMap((m) => m.notRecovered)
  const unstored = [...acked.values()].filter((s) => s === null).length

  console.log('\n' + table([
    ['client', 'connections', 'delivered', 'lost', 'duplicated', 'out of order', 'gaps'],
    ...members.map((m, i) => [String(m.index), String(m.opens), String(m.delivered.size), String(lostBy[i]), String(m.duplicates), String(m.outOfOrder), String(m.gaps)])
  ]))
  console.log(`\n${minutes} min, ${clients} clients: ${sent} sends, ${acked.size} acked (${duplicateAcks} of them acked as duplicates of an earlier try, ` +
    `${unstored} with seq null), ${Object.entries(failures).map(([k, v]) => `${v} ${k}`).join(', ') || 'none failed'}; ${drops} connections dropped, ` +
    `instance 2 killed ${kills} times; ${notRecovered.length} rejoins not recovered${notRecovered.length > 0 ? ` (${notRecovered.join(', ')})` : ''}`)
  console.log(`every acked message at every member: lost ${lost}, duplicated ${duplicated}, out of order ${outOfOrder} (gaps in seq ${gaps})`)
  const passed = lost === 0 && duplicated === 0 && outOfOrder === 0 && acked.size > 0
  console.log(passed ? 'soak --delivery: passed' : 'soak --delivery: FAILED')

  for (const m of members) m.chat.close()
  await kill(0)
  await kill(1)
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 })
  try {
    let cursor = '0'
    do {
      const [nextCursor, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500)
      cursor = nextCursor
      if (keys.length > 0) await redis.del(...keys)
    } while (cursor !== '0')
  } finally {
    redis.disconnect()
  }
  return passed ? 0 : 1
}
