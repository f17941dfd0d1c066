// Hostile clients for `npm run soak -- --attack`, beside the steady clients and the churn: each
// attack repeats in rounds bounded in count and time (a round holds its sockets at most ROUND_MS),
// so what they cost the server comes and goes and the soak's memory readings can judge it. Nothing
// here is checked against echohub's answers: the soak judges the process (it stays up, /health
// answers within 200 ms, memory stays level, the steady clients lose nothing); the counts say
// what each attack met (statuses, close codes, how long the server held a socket).
import net from 'node:net'
import http from 'node:http'
import { encodeFrame, FrameReader, isUpgraded, OP_BINARY, OP_CLOSE, OP_PING, upgrade, type Upgraded } from './raw-ws.js'

export interface AttackPorts { echo: number, debug: number, chat: number }

/** What one attack met, summed over its rounds. */
export interface AttackCounts {
  rounds: number
  /** Sockets opened (upgraded or, for slow headers, connected). */
  opened: number
  /** HTTP answers instead of an upgrade, by status. */
  refused: Record<string, number>
  /** Close codes the server sent, `none` for a TCP end without a close frame. */
  closes: Record<string, number>
  errors: number
  /** Free-form figures of the attack (bytes read, seconds held...). */
  notes: Record<string, number>
}

/** The names of the seven attacks, in the order the report lists them. */
export const ATTACKS = ['freeze', 'history', 'inspectors', 'slow-headers', 'bursts', 'foreign-admin', 'ping-flood'] as const
export type AttackName = typeof ATTACKS[number]

/** The longest a round keeps its sockets. */
const ROUND_MS = 15_000
/** The pause between two rounds of one attack. */
const BETWEEN_MS = 5_000
/**
 * The attacks that hold hundreds of sockets open them in waves, WAVE sockets every WAVE_MS, and all
 * attacks together have at most WAVE upgrades waiting for their answer: what they test is what the
 * sockets do once open. A burst of simultaneous connects is a connection flood, a different
 * attack: libuv accepts one connection per turn of the event loop, so the connects queued in the
 * kernel ahead of a `/health` poll delay it by as many turns (docs/performance.md gives the figure).
 */
const WAVE = 25
const WAVE_MS = 250

export class Attackers {
  readonly counts = Object.fromEntries(ATTACKS.map((name) => [name, { rounds: 0, opened: 0, refused: {}, closes: {}, errors: 0, notes: {} }])) as Record<AttackName, AttackCounts>
  readonly #ports: AttackPorts
  #stopping = false
  readonly #wakers = new Set<() => void>()
  readonly #sockets = new Set<net.Socket>()
  #running: Array<Promise<void>> = []
  /** Upgrades sent and not answered yet, over all attacks; and the ones waiting for a place. */
  #upgrading = 0
  readonly #waitingToUpgrade: Array<() => void> = []
  /** A 1 MiB binary frame, masked once and written by every freeze client. */
  readonly #megabyte = encodeFrame(Buffer.alloc(1024 * 1024, 0x5a), OP_BINARY)
  /** A 60 KB chat message for every history flood client. */
  readonly #bigChat = 'h'.repeat(60_000)

  constructor (ports: AttackPorts) {
    this.#ports = ports
  }

  start (which: readonly AttackName[] = ATTACKS): void {
    const runs: Record<AttackName, () => Promise<void>> = {
      freeze: () => this.#freeze(),
      history: () => this.#history(),
      inspectors: () => this.#inspectors(),
      'slow-headers': () => this.#slowHeaders(),
      bursts: () => this.#bursts(),
      'foreign-admin': () => this.#foreignAdmin(),
      'ping-flood': () => this.#pingFlood()
    }
    this.#running = which.map(async (name, i) => {
      // Staggered, so the rounds of different attacks do not all start together.
      await this.#sleep(i * 1500)
      while (!this.#stopping) {
        this.counts[name].rounds++
        try {
          await runs[name]()
        } catch {
          this.counts[name].errors++
        }
        await this.#sleep(BETWEEN_MS)
      }
    })
  }

  /** Ends every round at once (their sockets are destroyed) and waits for them. */
  async stop (): Promise<void> {
    this.#stopping = true
    for (const wake of this.#wakers) wake()
    for (const socket of this.#sockets) socket.destroy()
    await Promise.all(this.#running)
  }

  /** Waits `ms`, or less when the attackers stop. */
  #sleep (ms: number): Promise<void> {
    if (this.#stopping) return Promise.resolve()
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer)
        this.#wakers.delete(wake)
        resolve()
      }
      const timer = setTimeout(wake, ms)
      this.#wakers.add(wake)
    })
  }

  /** Runs `open` `count` times, WAVE at once, a wave every WAVE_MS; the results in order. */
  async #inWaves<T> (count: number, open: () => T | Promise<T>): Promise<T[]> {
    const results: T[] = []
    for (let i = 0; i < count && !this.#stopping; i += WAVE) {
      if (i > 0) await this.#sleep(WAVE_MS)
      results.push(...await Promise.all(Array.from({ length: Math.min(WAVE, count - i) }, open)))
    }
    return results
  }

  /** Sockets this side ended: their close is not the server's doing. */
  readonly #ended = new WeakSet<net.Socket>()

  #end (socket: net.Socket | undefined): void {
    if (socket === undefined) return
    this.#ended.add(socket)
    socket.destroy()
  }

  #keep (socket: net.Socket): net.Socket {
    this.#sockets.add(socket)
    socket.on('error', () => {})
    socket.once('close', () => this.#sockets.delete(socket))
    return socket
  }

  /** Upgrades on `path`; counts the socket, or the HTTP status that refused it. */
  async #open (name: AttackName, port: number, path: string, headers: Record<string, string> = {}): Promise<Upgraded | undefined> {
    const counts = this.counts[name]
    // a place among the WAVE upgrades in flight; a finished one hands its place to the next waiting
    if (this.#upgrading < WAVE) this.#upgrading++
    else await new Promise<void>((resolve) => this.#waitingToUpgrade.push(resolve))
    try {
      const answer = await upgrade(port, path, { headers, timeoutMs: 10_000 }).finally(() => {
        const next = this.#waitingToUpgrade.shift()
        if (next === undefined) this.#upgrading--
        else next()
      })
      if (!isUpgraded(answer)) {
        counts.refused[answer.status] = (counts.refused[answer.status] ?? 0) + 1
        return undefined
      }
      counts.opened++
      this.#keep(answer.socket)
      return answer
    } catch {
      counts.errors++
      return undefined
    }
  }

  /**
   * Counts how the server ends the connection: the code of its close frame when it comes, or
   * `none` for a TCP end without one that this side did not cause.
   */
  #watchClose (name: AttackName, upgraded: Upgraded, onFrame: (opcode: number, payload: Buffer) => void = () => {}): void {
    const closes = this.counts[name].closes
    let closed = false
    const reader = new FrameReader((f) => {
      if (f.opcode === OP_CLOSE && !closed) {
        closed = true
        const code = f.payload.length >= 2 ? String(f.payload.readUInt16BE(0)) : 'empty'
        closes[code] = (closes[code] ?? 0) + 1
      }
      onFrame(f.opcode, f.payload)
    })
    upgraded.route((chunk) => reader.push(Buffer.from(chunk)))
    if (upgraded.rest.length > 0) reader.push(Buffer.from(upgraded.rest))
    upgraded.socket.once('close', () => {
      if (closed || this.#ended.has(upgraded.socket) || this.#stopping) return
      closes.none = (closes.none ?? 0) + 1
    })
  }

  /** 1. Ten clients on `/raw?fragment=1&repeat=10` send 1 MiB each and never read. */
  async #freeze (): Promise<void> {
    const opened = await Promise.all(Array.from({ length: 10 }, () => this.#open('freeze', this.#ports.echo, '/raw?fragment=1&repeat=10')))
    for (const upgraded of opened) {
      if (upgraded === undefined) continue
      upgraded.socket.pause()
      upgraded.socket.write(this.#megabyte)
    }
    await this.#sleep(ROUND_MS)
    for (const upgraded of opened) this.#end(upgraded?.socket)
  }

  /** 2. Ten chat clients in 32 new rooms each send 60 KB messages round the rooms, 5 a second each. */
  async #history (): Promise<void> {
    const round = this.counts.history.rounds
    const clients = (await Promise.all(Array.from({ length: 10 }, () => this.#open('history', this.#ports.chat, '/ws')))).filter((u) => u !== undefined)
    const rooms = clients.map((_, c) => Array.from({ length: 32 }, (_, r) => `attack-${round}-${c}-${r}`))
    clients.forEach((upgraded, c) => {
      // Read and discard (pings answered), so this is a history attack and not a slow consumer.
      this.#watchClose('history', upgraded, (opcode, payload) => {
        if (opcode === OP_PING && !upgraded.socket.destroyed) upgraded.socket.write(encodeFrame(payload, 0xa))
      })
      for (const room of rooms[c]!) upgraded.socket.write(encodeFrame(JSON.stringify({ type: 'join', room })))
    })
    const until = Date.now() + ROUND_MS
    for (let n = 0; Date.now() < until && !this.#stopping; n++) {
      clients.forEach((upgraded, c) => {
        if (upgraded.socket.destroyed) return
        upgraded.socket.write(encodeFrame(JSON.stringify({ type: 'message', room: rooms[c]![n % 32], payload: this.#bigChat })))
        this.counts.history.notes.messages = (this.counts.history.notes.messages ?? 0) + 1
      })
      await this.#sleep(200)
    }
    for (const upgraded of clients) this.#end(upgraded.socket)
  }

  /** 3. Two hundred `/inspect/ws` sockets on the pages' server, read and discarded. */
  async #inspectors (): Promise<void> {
    // Each is read from its upgrade on (what comes before a reader is routed is lost).
    const opened = await this.#inWaves(200, async () => {
      const upgraded = await this.#open('inspectors', this.#ports.chat, '/inspect/ws')
      if (upgraded !== undefined) this.#watchClose('inspectors', upgraded)
      return upgraded
    })
    await this.#sleep(ROUND_MS)
    for (const upgraded of opened) this.#end(upgraded?.socket)
  }

  /** 4. Three hundred sockets trickle an upgrade's headers, one line every 5 s, for up to 30 s. */
  async #slowHeaders (): Promise<void> {
    const counts = this.counts['slow-headers']
    const sockets = await this.#inWaves(300, () => {
      const started = Date.now()
      const socket = this.#keep(net.connect(this.#ports.echo, '127.0.0.1'))
      socket.once('connect', () => {
        counts.opened++
        socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n')
      })
      socket.resume() // whatever the server answers (a 408, say) is read and dropped
      socket.once('close', () => {
        if (this.#ended.has(socket) || this.#stopping) return
        const held = (Date.now() - started) / 1000
        counts.closes.server = (counts.closes.server ?? 0) + 1
        counts.notes.longest_held_s = Math.max(counts.notes.longest_held_s ?? 0, Math.round(held))
      })
      return socket
    })
    for (let line = 0; line < 6 && !this.#stopping; line++) {
      await this.#sleep(5000)
      for (const socket of sockets) if (!socket.destroyed) socket.write(`X-Slow-${line}: 1\r\n`)
    }
    const open = sockets.filter((s) => !s.destroyed).length
    counts.notes.still_open_after_30s = (counts.notes.still_open_after_30s ?? 0) + open
    for (const socket of sockets) this.#end(socket)
  }

  /** 5. Bursts: the 1 TB one (refused, or not), 256 MiB ones never read, 64 MiB ones read through. */
  async #bursts (): Promise<void> {
    const counts = this.counts.bursts
    const huge = await Promise.all(Array.from({ length: 20 }, () => this.#open('bursts', this.#ports.echo, '/raw?burst=1000000&burst_size=1048576')))
    for (const upgraded of huge) upgraded?.socket.pause()
    const stalled = await Promise.all(Array.from({ length: 20 }, () => this.#open('bursts', this.#ports.echo, '/raw?burst=256&burst_size=1048576')))
    for (const upgraded of stalled) upgraded?.socket.pause()
    const readers = await Promise.all(Array.from({ length: 2 }, () => this.#open('bursts', this.#ports.echo, '/raw?burst=64&burst_size=1048576')))
    const read = readers.map((upgraded) => new Promise<void>((resolve) => {
      if (upgraded === undefined) {
        resolve()
        return
      }
      let bytes = upgraded.rest.length
      upgraded.route((chunk) => {
        bytes += chunk.length
        counts.notes.bytes_read = (counts.notes.bytes_read ?? 0) + chunk.length
        if (bytes >= 64 * (1024 * 1024 + 10)) resolve()
      })
      upgraded.socket.once('close', () => resolve())
    }))
    await Promise.race([Promise.all(read), this.#sleep(ROUND_MS)])
    for (const upgraded of [...huge, ...stalled, ...readers]) this.#end(upgraded?.socket)
  }

  /** 6. Admin reads from a foreign page (its Origin) and a DNS-rebinding one (its Host too), twice a second. */
  async #foreignAdmin (): Promise<void> {
    const counts = this.counts['foreign-admin']
    const until = Date.now() + ROUND_MS
    while (Date.now() < until && !this.#stopping) {
      for (const path of ['/connections', '/rooms']) {
        const pages: Array<Record<string, string>> = [{ origin: 'http://evil.example' }, { origin: 'http://evil.example:8765', host: 'evil.example:8765' }]
        for (const headers of pages) {
          const answer = await get(this.#ports.chat, path, headers).catch(() => undefined)
          if (answer === undefined) {
            counts.errors++
            continue
          }
          counts.refused[answer.status] = (counts.refused[answer.status] ?? 0) + 1
          if (answer.status === 200 && answer.cors !== undefined) counts.notes.answered_with_cors = (counts.notes.answered_with_cors ?? 0) + 1
        }
      }
      await this.#sleep(500)
    }
  }

  /** 7. Twenty clients write 150 pings at once, round after round; fifty `ping=0` ones never read. */
  async #pingFlood (): Promise<void> {
    const silent = await Promise.all(Array.from({ length: 50 }, () => this.#open('ping-flood', this.#ports.echo, '/raw?ping=0')))
    for (const upgraded of silent) upgraded?.socket.pause()
    const pings = Buffer.concat(Array.from({ length: 150 }, () => encodeFrame(Buffer.from('flood'), OP_PING)))
    const until = Date.now() + ROUND_MS
    while (Date.now() < until && !this.#stopping) {
      const flooders = await Promise.all(Array.from({ length: 20 }, () => this.#open('ping-flood', this.#ports.echo, '/raw')))
      for (const upgraded of flooders) {
        if (upgraded === undefined) continue
        this.#watchClose('ping-flood', upgraded)
        upgraded.socket.write(pings)
      }
      await this.#sleep(2000)
      for (const upgraded of flooders) this.#end(upgraded?.socket)
    }
    for (const upgraded of silent) this.#end(upgraded?.socket)
  }
}

/** One GET; the status and the `Access-Control-Allow-Origin` it answered with. */
function get (port: number, path: string, headers: Record<string, string>): Promise<{ status: number, cors: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers, agent: false, timeout: 5000 }, (res) => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode ?? 0, cors: res.headers['access-control-allow-origin'] }))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
  })
}

/** One `/health` GET: how long the TCP connect took and how long the whole answer, in ms. */
function timeHealth (port: number): Promise<{ status: number, connectMs: number, totalMs: number }> {
  const started = performance.now()
  let connectMs = NaN
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/health', agent: false, timeout: 5000 }, (res) => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode ?? 0, connectMs, totalMs: performance.now() - started }))
    })
    req.once('socket', (socket) => socket.once('connect', () => { connectMs = performance.now() - started }))
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
  })
}

const round1 = (ms: number): number => Math.round(ms * 10) / 10

/**
 * Polls `/health` on every port every `everyMs` and keeps the worst answer time per port: a frozen
 * event loop shows here first. A poll that fails or takes over 5 s counts as a failure. The worst
 * poll's TCP connect time is kept beside it: a connect that waited on the kernel's accept queue
 * (a dropped SYN is sent again after 1 s) is told apart from an answer the server was slow to give.
 */
export class HealthWatch {
  readonly worstMs: Record<string, number> = {}
  /** The connect time of each port's worst poll. */
  readonly worstConnectMs: Record<string, number> = {}
  readonly polls: Record<string, number> = {}
  readonly failures: Record<string, number> = {}
  /** Polls slower than `slowMs`, by port. */
  readonly slow: Record<string, number> = {}
  readonly #timer: NodeJS.Timeout

  constructor (ports: Record<string, number>, slowMs: number, everyMs = 250) {
    const inFlight = new Set<string>()
    this.#timer = setInterval(() => {
      for (const [name, port] of Object.entries(ports)) {
        if (inFlight.has(name)) continue // the previous poll is still out: its time keeps growing
        inFlight.add(name)
        const started = performance.now()
        timeHealth(port).then((answer) => {
          if (answer.status !== 200) this.failures[name] = (this.failures[name] ?? 0) + 1
          if (answer.totalMs > (this.worstMs[name] ?? 0)) this.worstConnectMs[name] = round1(answer.connectMs)
        }, () => {
          this.failures[name] = (this.failures[name] ?? 0) + 1
        }).finally(() => {
          inFlight.delete(name)
          const ms = performance.now() - started
          if (ms > slowMs) this.slow[name] = (this.slow[name] ?? 0) + 1
          this.worstMs[name] = Math.max(this.worstMs[name] ?? 0, round1(ms))
          this.polls[name] = (this.polls[name] ?? 0) + 1
        })
      }
    }, everyMs)
  }

  stop (): void {
    clearInterval(this.#timer)
  }
}
