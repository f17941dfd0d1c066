// The clients of `npm run soak`, a process of its own pinned to the other core. Steady clients
// exchange messages on every endpoint and check every reply; churn loops open and close
// connections without pause, in every way a client can (a close frame, a dropped socket, mid-
// handshake, with device-lab controls). With `--attack`, hostile clients run beside them
// (soak-attacks.ts). `/health` is polled by a process of its own (soak-health.ts).
// Every 10 s it prints {"event":"tick",...}; when stdin closes it stops the churn and the
// attackers, closes the steady clients properly and prints {"event":"done",...}.
import net from 'node:net'
import { randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'
import { connectWs, encodeFrame, MessageQueue, OP_BINARY, OP_CLOSE, type Conn } from './raw-ws.js'
import { ATTACKS, Attackers, type AttackName } from './soak-attacks.js'

const { values: opt } = parseArgs({
  options: {
    'echo-port': { type: 'string' },
    'debug-port': { type: 'string' },
    'chat-port': { type: 'string' },
    churn: { type: 'string', default: '16' },
    pace: { type: 'string', default: '20' },
    attack: { type: 'string', default: '' }
  }
})
const echoPort = Number(opt['echo-port'])
const debugPort = Number(opt['debug-port'])
const chatPort = Number(opt['chat-port'])
const paceMs = Number(opt.pace)
const REPLY_MS = 10_000

const counts = { opened: 0, checked: 0, wrong: 0, lost: 0, churnErrors: 0, byKind: {} as Record<string, number> }
const problems: string[] = []
let stopping = false

function emit (obj: object): void {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function problem (kind: 'wrong' | 'lost', what: string): void {
  counts[kind]++
  if (problems.length < 20) problems.push(`${kind}: ${what}`)
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

async function open (port: number, path: string): Promise<{ conn: Conn, messages: MessageQueue }> {
  const conn = await connectWs(port, path, { timeoutMs: REPLY_MS })
  counts.opened++
  return { conn, messages: new MessageQueue(conn) }
}

/** A close frame with 1000, then waits for the server's close (or gives up and drops the socket). */
async function closeProperly (conn: Conn): Promise<void> {
  if (conn.closed) return
  const closed = new Promise<void>((resolve) => { conn.onClose = () => resolve() })
  conn.socket.write(encodeFrame(Buffer.from([0x03, 0xe8]), OP_CLOSE))
  await Promise.race([closed, sleep(5000)])
  conn.socket.destroy()
}

// ---------------------------------------------------------------------------------------------
// Steady clients: each reply checked; a reply that does not come within 10 s is lost.

interface Envelope { type?: string, original_message?: unknown, message_id?: unknown, room?: string, seq?: number, payload?: unknown }

async function steadyEcho (port: number, path: string, greeted: boolean, tag: string): Promise<void> {
  const { conn, messages } = await open(port, path)
  if (greeted) {
    const welcome = JSON.parse((await messages.next(REPLY_MS)).data.toString()) as Envelope
    if (welcome.type !== 'welcome') problem('wrong', `${tag}: first frame ${welcome.type}, not a welcome`)
  }
  for (let n = 1; !stopping; n++) {
    const text = `${tag} message ${n} ${'x'.repeat(n % 200)}`
    conn.socket.write(encodeFrame(text))
    let reply: Envelope
    try {
      reply = JSON.parse((await messages.next(REPLY_MS)).data.toString()) as Envelope
    } catch (err) {
      problem('lost', `${tag} #${n}: ${(err as Error).message}`)
      break
    }
    if (reply.type !== 'echo' || reply.original_message !== text || reply.message_id !== n) {
      problem('wrong', `${tag} #${n}: ${JSON.stringify(reply).slice(0, 120)}`)
    } else {
      counts.checked++
    }
    await sleep(paceMs)
  }
  await closeProperly(conn)
}

async function steadyRaw (tag: string): Promise<void> {
  const { conn, messages } = await open(echoPort, '/raw')
  for (let n = 1; !stopping; n++) {
    const payload = randomBytes(1 + (n * 37) % 4000)
    conn.socket.write(encodeFrame(payload, OP_BINARY))
    try {
      const reply = await messages.next(REPLY_MS)
      if (!reply.binary || !reply.data.equals(payload)) problem('wrong', `${tag} #${n}: ${reply.data.length} bytes back for ${payload.length}`)
      else counts.checked++
    } catch (err) {
      problem('lost', `${tag} #${n}: ${(err as Error).message}`)
      break
    }
    await sleep(paceMs)
  }
  await closeProperly(conn)
}

/**
 * Steady chat clients share one room: each sends in turn and every one of them checks that the
 * room's messages arrive in `seq` order with no gap, its own included. Lobby traffic and presence
 * from the churn pass by unchecked.
 */
async function steadyChat (count: number): Promise<void> {
  const room = 'soak-steady'
  const clients = []
  for (let i = 0; i < count; i++) {
    const c = await open(chatPort, '/ws')
    c.conn.socket.write(encodeFrame(JSON.stringify({ type: 'join', room })))
    let joined: Envelope | null = null
    while (joined === null) {
      const m = JSON.parse((await c.messages.next(REPLY_MS)).data.toString()) as Envelope & { payload?: { seq?: number } }
      if (m.type === 'joined') joined = m
    }
    clients.push({ ...c, seq: (joined.payload as { seq?: number } | undefined)?.seq ?? 0 })
  }
  // each client's reader: room messages in order, the others skipped
  const waiting = new Map<string, () => void>()
  const readers = clients.map(async (c, i) => {
    for (;;) {
      let m: Envelope
      try {
        m = JSON.parse((await c.messages.next(stopping ? 2000 : 60_000)).data.toString()) as Envelope
      } catch {
        return
      }
      if (m.type !== 'message' || m.room !== room) continue
      if (m.seq !== c.seq + 1) problem('wrong', `chat client ${i}: seq ${m.seq} after ${c.seq}`)
      c.seq = m.seq ?? c.seq
      counts.checked++
      waiting.get(`${i}:${String(m.payload)}`)?.()
    }
  })
  for (let n = 1; !stopping; n++) {
    const i = n % clients.length
    const payload = `chat ${n}`
    const own = new Promise<boolean>((resolve) => {
      waiting.set(`${i}:${payload}`, () => resolve(true))
      setTimeout(() => resolve(false), REPLY_MS).unref()
    })
    clients[i]!.conn.socket.write(encodeFrame(JSON.stringify({ type: 'message', room, payload })))
    if (!await own) {
      problem('lost', `chat client ${i} never got its "${payload}"`)
      break
    }
    waiting.delete(`${i}:${payload}`)
    await sleep(paceMs)
  }
  await Promise.all(clients.map((c) => closeProperly(c.conn)))
  await Promise.all(readers)
}

// ---------------------------------------------------------------------------------------------
// Churn: one connection after another, each ended a different way. Errors are counted (a refused
// upgrade, say) but nothing here is checked: the steady clients are the witnesses.

const CHURN: Array<[string, () => Promise<void>]> = [
  ['echo, close frame', async () => {
    const { conn, messages } = await open(echoPort, '/')
    conn.socket.write(encodeFrame('churn'))
    await messages.next(REPLY_MS)
    await closeProperly(conn)
  }],
  ['raw, dropped after a message', async () => {
    const { conn } = await open(echoPort, '/raw')
    conn.socket.write(encodeFrame(randomBytes(64), OP_BINARY))
    conn.socket.destroy()
  }],
  ['echo-debug, close frame after the welcome', async () => {
    const { conn, messages } = await open(debugPort, '/')
    await messages.next(REPLY_MS)
    await closeProperly(conn)
  }],
  ['chat room, dropped', async () => {
    const { conn, messages } = await open(chatPort, '/ws')
    conn.socket.write(encodeFrame(JSON.stringify({ type: 'join', room: `churn-${counts.opened % 50}` })))
    conn.socket.write(encodeFrame(JSON.stringify({ type: 'message', room: `churn-${counts.opened % 50}`, payload: 'churn' })))
    await messages.next(REPLY_MS)
    conn.socket.destroy()
  }],
  ['chat lobby, close frame', async () => {
    const { conn, messages } = await open(chatPort, '/ws')
    await messages.next(REPLY_MS)
    await closeProperly(conn)
  }],
  ['mid-handshake', () => new Promise<void>((resolve) => {
    const socket = net.connect(echoPort, '127.0.0.1', () => {
      socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n')
      setTimeout(() => { socket.destroy(); resolve() }, 5)
    })
    socket.on('error', () => resolve())
  })],
  ['device-lab controls, dropped after the first reply', async () => {
    const { conn, messages } = await open(echoPort, '/device/soak?delay=5&jitter=5&repeat=2&fragment=16')
    conn.socket.write(encodeFrame('lab'))
    await messages.next(REPLY_MS)
    conn.socket.destroy()
  }],
  ['opened and dropped at once', async () => {
    const { conn } = await open(echoPort, '/')
    conn.socket.destroy()
  }]
]

async function churnLoop (offset: number): Promise<void> {
  for (let i = offset; !stopping; i++) {
    const [kind, run] = CHURN[i % CHURN.length]!
    try {
      await run()
      counts.byKind[kind] = (counts.byKind[kind] ?? 0) + 1
    } catch {
      counts.churnErrors++
    }
  }
}

const attackNames = (opt.attack === 'all' ? [...ATTACKS] : opt.attack.split(',').filter(Boolean)) as AttackName[]
const unknown = attackNames.filter((name) => !(ATTACKS as readonly string[]).includes(name))
if (unknown.length > 0) throw new Error(`unknown attack ${unknown.join(', ')}; the attacks are ${ATTACKS.join(', ')}`)
const attackers = attackNames.length === 0 ? undefined : new Attackers({ echo: echoPort, debug: debugPort, chat: chatPort })
const figures = () => ({
  ...counts,
  ...(attackers === undefined ? {} : { attacks: attackers.counts })
})

process.stdin.on('end', () => { stopping = true })
process.stdin.resume()
const tick = setInterval(() => emit({ event: 'tick', ...figures() }), 10_000)
attackers?.start(attackNames)
const attacksStopped = new Promise<void>((resolve) => process.stdin.on('end', () => {
  if (attackers === undefined) resolve()
  else void attackers.stop().then(resolve)
}))

const steady = [
  ...Array.from({ length: 4 }, (_, i) => steadyEcho(echoPort, '/', false, `echo ${i}`)),
  ...Array.from({ length: 4 }, (_, i) => steadyRaw(`raw ${i}`)),
  ...Array.from({ length: 2 }, (_, i) => steadyEcho(debugPort, '/', true, `debug ${i}`)),
  steadyChat(4)
].map((p) => p.catch((err: Error) => problem('lost', `a steady client failed: ${err.message}`)))
const churn = Array.from({ length: Number(opt.churn) }, (_, i) => churnLoop(i))
emit({ event: 'started' })
await Promise.all([...steady, ...churn, attacksStopped])
clearInterval(tick)
emit({ event: 'done', ...figures(), problems })
process.exit(0)
