// The suite as a service: reads a route's query (agent, case, cases=, max_size=), decides before the
// upgrade whether a case may run (409 while the agent runs one, 503 past the running cap), runs the
// case on the raw upgrade through the engine and keeps its result; and device mode, where each of an
// agent's connections to `next` runs its next case and R.3, R.4 and R.6 are judged across them.
// Framework-free: the plugin hands it upgrades and sends its refusals.
import type { CaseResult, CaseUpgrade, RunOptions, SuiteCase, WireEntry } from './types.js'
import type { AgentRecord, AgentStore, DevicePending } from './store.js'
import { summarize, type Summary } from './report.js'
import { REFUSALS, type Refusal } from '../refusals.js'
import type { LimitName } from '../limits.js'

/** The frame-level primitives device mode needs on one of the agent's connections. */
export interface DeviceLink {
  /** Sends one text frame. */
  text: (data: string) => void
  /** Ends the TCP connection without a close frame. */
  drop: () => void
  /**
   * Sends a close frame with this code and waits for the client's close frame (as long as the
   * runner waits in a closing handshake); then ends the TCP connection. `answered`: a close frame
   * came back; `code`: its code.
   */
  close: (code: number, reason: string) => Promise<{ answered: boolean, code: number | null }>
  /** The frames seen so far, both ways. */
  wire: () => WireEntry[]
}

/** What the service needs of the case runner. */
export interface SuiteEngine {
  /** Every case, in the suite's order. */
  readonly suite: readonly SuiteCase[]
  /** The cases Autobahn's patterns (`1.*`, `7.1.1`) select, in the suite's order. */
  select: (patterns: string[]) => SuiteCase[]
  /** Runs one case on a raw upgrade: answers the handshake, runs, judges, closes. */
  run: (c: SuiteCase, upgrade: CaseUpgrade, options: RunOptions) => Promise<CaseResult>
  /** Answers the handshake of a raw upgrade (no extension) and returns the connection's primitives; null when it is no WebSocket upgrade (answered 400). */
  link: (upgrade: CaseUpgrade) => DeviceLink | null
}

export type Op = 'getCaseCount' | 'getCaseInfo' | 'runCase' | 'getCaseStatus' | 'updateReports' | 'next'
export const OPS: readonly Op[] = ['getCaseCount', 'getCaseInfo', 'runCase', 'getCaseStatus', 'updateReports', 'next']

/** A route's query, checked. */
export interface Request {
  op: Op
  agent: string | undefined
  /** The cases the request sees (its `cases=`, else the server's selection). */
  cases: SuiteCase[]
  /** Its `cases=` as given, null without. */
  patterns: string | null
  /** `case=N` or `casetuple=`: the case meant. */
  case: SuiteCase | undefined
  maxSize: number | undefined
}

export type Parsed = { ok: true, request: Request } | { ok: false, refusal: Refusal }

/** A case allowed to run: the agent is marked busy and the case counted as running until `serve` ends. */
export interface Claim {
  request: Request & { agent: string }
  run: Run
  /** The case this connection ends by reconnecting, to be judged first. */
  after: Promise<void> | undefined
}

export interface ServiceOptions {
  engine: SuiteEngine
  store: AgentStore
  /** Cases that run at once in the process, at most; past it `503` (`conformance_busy`). */
  maxRunning: number
  /** The server's selection (`--conformance-cases`); undefined: every case. */
  patterns?: string[] | undefined
  /** How long device mode waits for an agent's reconnect (R.3, R.4, R.6), ms (default 60000). */
  reconnectWindowMs?: number
  /** Counts a limit hit (the registry's). */
  hit?: (limit: LimitName) => void
  /** One log line. */
  log?: (level: 'info' | 'warn', fields: Record<string, unknown>, message: string) => void
}

/** Gaps shorter than this between a drop and the next attempt are a reconnect storm (R.4). */
const STORM_MS = 100
/** R.4: a gap counts as grown when it is at least this much longer than the one before (timing noise is not backoff). */
const GROWTH = 1.1
/** The largest value `max_size` takes (16 MiB is the largest message any case sends). */
const MAX_SIZE_LIMIT = 2 ** 31

/** 1 to 128 characters, none of them a control character. */
// eslint-disable-next-line no-control-regex
const AGENT = /^[^\u0000-\u001f\u007f-\u009f]{1,128}$/u

export interface Run {
  caseId: string
  /** Runs in device mode (`next`). */
  device: boolean
  controller: AbortController
  done: Promise<void>
  finish: () => void
}

export class ConformanceService {
  readonly engine: SuiteEngine
  readonly store: AgentStore
  readonly maxRunning: number
  /** The server's selection. */
  readonly cases: SuiteCase[]
  readonly #reconnectWindow: number
  readonly #hit: (limit: LimitName) => void
  readonly #log: NonNullable<ServiceOptions['log']>
  /** Per agent, the case it runs now. */
  readonly #busy = new Map<string, Run>()
  /** Per agent with a case waiting for its reconnect: the timer that judges it when none comes. */
  readonly #reconnectTimers = new Map<string, NodeJS.Timeout>()
  #running = 0
  #closed = false

  constructor (options: ServiceOptions) {
    this.engine = options.engine
    this.store = options.store
    this.maxRunning = options.maxRunning
    this.cases = options.patterns === undefined ? [...options.engine.suite] : options.engine.select(options.patterns)
    this.#reconnectWindow = options.reconnectWindowMs ?? 60000
    this.#hit = options.hit ?? (() => {})
    this.#log = options.log ?? (() => {})
  }

  /** Cases running now. */
  get running (): number {
    return this.#running
  }

  /** Whether one of the agent's cases runs now. */
  busy (agent: string): boolean {
    return this.#busy.has(agent)
  }

  /** Reads the results kept in the store's folder, and re-arms the reconnect windows of cases that wait. */
  async load (): Promise<void> {
    await this.store.load()
    for (const record of this.store.list()) if (record.pending !== undefined) this.#armReconnect(record)
  }

  /** Stops the reconnect timers and aborts what runs (shutdown). */
  close (): void {
    this.#closed = true
    for (const timer of this.#reconnectTimers.values()) clearTimeout(timer)
    this.#reconnectTimers.clear()
    for (const run of this.#busy.values()) run.controller.abort(new Error('server shutting down'))
  }

  /** Checks a route's query: `op` one of OPS, then agent, cases, case and max_size as the op needs them. */
  parse (op: string, query: URLSearchParams): Parsed {
    if (!(OPS as readonly string[]).includes(op)) {
      return { ok: false, refusal: REFUSALS.conformanceNotFound(op) }
    }
    const bad = (message: string): Parsed => ({ ok: false, refusal: REFUSALS.conformanceInvalid(message) })
    const agent = query.get('agent') ?? undefined
    const needsAgent = op === 'runCase' || op === 'getCaseStatus' || op === 'next'
    if (agent === undefined && needsAgent) return bad(`${op} needs agent=<name of the client under test>`)
    if (agent !== undefined && !AGENT.test(agent)) return bad('agent must be 1 to 128 characters, none of them a control character')
    const patterns = query.get('cases')
    let cases = this.cases
    if (patterns !== null) {
      const list = patterns.split(',').map((p) => p.trim()).filter((p) => p !== '')
      if (list.length === 0 || list.some((p) => !/^(?:[0-9]+|R|\*)(?:\.(?:[0-9]+|\*))*$/.test(p))) {
        return bad('cases takes Autobahn\'s patterns, comma-separated: 1.*,7.1.1,R.*')
      }
      cases = this.engine.select(list)
      if (cases.length === 0) return bad(`cases=${patterns} selects no case`)
    }
    let chosen: SuiteCase | undefined
    const needsCase = op === 'getCaseInfo' || op === 'runCase' || op === 'getCaseStatus'
    const tuple = query.get('casetuple')
    const index = query.get('case')
    if (tuple !== null && op === 'runCase') {
      chosen = cases.find((c) => c.id === tuple)
      if (chosen === undefined) return bad(`casetuple=${tuple} is not a case of the selection`)
    } else if (needsCase) {
      if (index === null || !/^\d{1,6}$/.test(index) || Number(index) < 1 || Number(index) > cases.length) {
        return bad(`${op} needs case=N, N from 1 to ${cases.length} (the Nth case of the selection)`)
      }
      chosen = cases[Number(index) - 1]
    }
    let maxSize: number | undefined
    const size = query.get('max_size')
    if (size !== null && (op === 'runCase' || op === 'next')) {
      if (!/^\d{1,10}$/.test(size) || Number(size) > MAX_SIZE_LIMIT) return bad('max_size takes the largest message the client can take, in bytes')
      maxSize = Number(size)
    }
    return { ok: true, request: { op: op as Op, agent, cases, patterns, case: chosen, maxSize } }
  }

  /**
   * Before the upgrade of `runCase` or `next`: `409` while one of the agent's cases runs, `503`
   * past the running cap; otherwise the agent is busy and the case counted until `serve` ends.
   */
  claim (request: Request & { agent: string }): { ok: true, claim: Claim } | { ok: false, refusal: Refusal } {
    if (this.#closed) return { ok: false, refusal: REFUSALS.draining() }
    const running = this.#busy.get(request.agent)
    // A device case that waits for the client to give up (R.5) takes its reconnect as giving up.
    const reconnect = running !== undefined && request.op === 'next' && running.device && RECONNECT_ENDS.has(running.caseId)
    if (running !== undefined && !reconnect) return { ok: false, refusal: REFUSALS.conformanceAgentBusy(request.agent, running.caseId) }
    if (this.#running >= this.maxRunning) {
      this.#hit('conformance_busy')
      return { ok: false, refusal: REFUSALS.conformanceBusy(this.maxRunning) }
    }
    if (reconnect) running.controller.abort(new Error('the agent reconnected'))
    this.#running++
    let finish!: () => void
    const done = new Promise<void>((resolve) => { finish = resolve })
    const run: Run = { caseId: request.case?.id ?? 'next', device: request.op === 'next', controller: new AbortController(), done, finish }
    this.#busy.set(request.agent, run)
    return { ok: true, claim: { request, run, after: reconnect ? running.done : undefined } }
  }

  /** Ends a claim's case early (shutdown, an operator's close): the runner closes and judges what it saw. */
  abort (claim: Claim): void {
    claim.run.controller.abort(new Error('closed by the server'))
  }

  /** Runs a claimed `runCase` or `next` on the raw upgrade, keeps the result, and lets the agent go. */
  async serve (claim: Claim, upgrade: CaseUpgrade): Promise<void> {
    const { request, run } = claim
    try {
      if (claim.after !== undefined) await claim.after
      if (request.op === 'runCase') await this.#runCase(request, request.case!, upgrade, run)
      else await this.#next(request, upgrade, run)
    } finally {
      this.#running--
      if (this.#busy.get(request.agent) === run) this.#busy.delete(request.agent)
      run.finish()
    }
  }

  /** A `getCaseStatus`: the verdict of the agent's last run of the case, once a run of it has ended. */
  async status (agent: string, c: SuiteCase): Promise<{ behavior: string | null }> {
    const run = this.#busy.get(agent)
    if (run !== undefined && (run.caseId === c.id || run.caseId === 'next')) await run.done
    return { behavior: this.store.get(agent)?.results.get(c.id)?.behavior ?? null }
  }

  /** An `updateReports`: resolves once the agent's results (every agent's without one) are on disk. */
  async updateReports (agent: string | undefined): Promise<void> {
    await this.store.flush(agent)
  }

  /** What `conformance_done` says: the agent, its cases and the verdicts counted. */
  done (agent: string, cases: readonly SuiteCase[]): { type: 'conformance_done', agent: string, cases: number, summary: Summary } {
    const results = this.store.get(agent)?.results
    const run = cases.map((c) => results?.get(c.id)).filter((r) => r !== undefined)
    return { type: 'conformance_done', agent, cases: cases.length, summary: summarize(run) }
  }

  async #runCase (request: Request & { agent: string }, c: SuiteCase, upgrade: CaseUpgrade, run: Run): Promise<void> {
    const record = this.store.open(request.agent)
    record.selection = request.patterns
    const options: RunOptions = { signal: run.controller.signal, ...(request.maxSize === undefined ? {} : { maxSize: request.maxSize }) }
    // The engine keeps its case's own time; this is the backstop should a case never end.
    const watchdog = setTimeout(() => run.controller.abort(new Error('case timed out')), c.timeoutMs + 10000)
    watchdog.unref()
    const started = Date.now()
    try {
      const result = await this.engine.run(c, upgrade, options)
      this.store.record(request.agent, result)
      this.#log('info', { agent: request.agent, case: c.id, behavior: result.behavior, behaviorClose: result.behaviorClose, ms: Date.now() - started }, 'conformance case ended')
    } finally {
      clearTimeout(watchdog)
      if (!upgrade.socket.destroyed) upgrade.socket.destroy()
    }
  }

  /** Device mode: this connection is the reconnect of a waiting case, or runs the agent's next case. */
  async #next (request: Request & { agent: string }, upgrade: CaseUpgrade, run: Run): Promise<void> {
    const record = this.store.open(request.agent)
    const arrived = Date.now()
    if (record.pending !== undefined) {
      const carriesOn = this.#reconnected(record, arrived, upgrade, run)
      if (carriesOn !== undefined) {
        await carriesOn
        return
      }
    }
    if (record.selection !== request.patterns) {
      record.selection = request.patterns
      this.store.touch(record)
    }
    let c = this.#nextCase(record, request.cases)
    // Cases too large for the device are judged without taking a connection.
    while (c !== undefined && request.maxSize !== undefined && c.largestMessage > request.maxSize) {
      this.store.record(request.agent, skipped(c, request.maxSize))
      c = this.#nextCase(record, request.cases)
    }
    if (c === undefined) {
      const link = this.engine.link(upgrade)
      if (link === null) return
      link.text(JSON.stringify(this.done(request.agent, request.cases)))
      await link.close(1000, 'conformance suite done')
      return
    }
    run.caseId = c.id
    if (!c.deviceOnly) {
      await this.#runCase(request, c, upgrade, run)
      return
    }
    await this.#startDevice(record, c, upgrade)
  }

  #nextCase (record: AgentRecord, cases: readonly SuiteCase[]): SuiteCase | undefined {
    return cases.find((c) => !record.results.has(c.id))
  }

  /** R.3, R.4 or R.6 begins on this connection. */
  async #startDevice (record: AgentRecord, c: SuiteCase, upgrade: CaseUpgrade): Promise<void> {
    const pending: DevicePending = { id: c.id, started_at: new Date().toISOString(), ended_at: 0, gaps: [], answered: [], codes: [], wire: [] }
    record.pending = pending
    await this.#endForDevice(record, pending, upgrade)
  }

  /**
   * One of the agent's connections while a device case waits for it: judged at once (the case is
   * over: undefined, and this connection carries on with the next case) or ended again as the case
   * asks (a promise for that).
   */
  #reconnected (record: AgentRecord, arrived: number, upgrade: CaseUpgrade, _run: Run): Promise<void> | undefined {
    const pending = record.pending!
    this.#disarmReconnect(record.agent)
    pending.gaps.push(arrived - pending.ended_at)
    const c = this.#caseById(pending.id)
    if (c === undefined) {
      record.pending = undefined
      return undefined
    }
    if (pending.id === 'R.3' || pending.gaps.length >= 3) {
      this.#judge(record, c, this.#verdict(pending))
      return undefined
    }
    return this.#endForDevice(record, pending, upgrade)
  }

  /** Ends one of the agent's connections as its device case asks: dropped (R.3, R.4) or closed with the next code (R.6). */
  async #endForDevice (record: AgentRecord, pending: DevicePending, upgrade: CaseUpgrade): Promise<void> {
    const link = this.engine.link(upgrade)
    if (link === null) {
      // Not a WebSocket upgrade (answered 400): the attempt counts, nothing to judge on it.
    } else if (pending.id === 'R.6') {
      const code = R6_CODES[pending.answered.length]!
      const { answered, code: got } = await link.close(code, R6_REASONS[code]!)
      pending.answered.push(answered)
      pending.codes.push(got)
      pending.wire.push(...link.wire())
      if (!answered) {
        this.#judge(record, this.#caseById(pending.id)!, { behavior: 'FAILED', behaviorClose: 'FAILED', result: `close ${code} was not answered with a close frame`, resultClose: 'the client did not answer the close' })
        return
      }
    } else {
      link.drop()
      pending.wire.push(...link.wire())
    }
    if (pending.wire.length > 256) pending.wire.length = 256
    pending.ended_at = Date.now()
    this.store.touch(record)
    this.#armReconnect(record)
  }

  #caseById (id: string): SuiteCase | undefined {
    return this.engine.suite.find((c) => c.id === id)
  }

  /** The verdict of a device case whose reconnects have all come. */
  #verdict (pending: DevicePending): Verdict {
    const gaps = pending.gaps
    switch (pending.id) {
      case 'R.3':
        return { behavior: 'OK', behaviorClose: 'OK', result: `the client reconnected ${gaps[0]} ms after the drop`, resultClose: 'echohub dropped the connection without a close frame' }
      case 'R.4': {
        if (gaps.some((g) => g < STORM_MS)) {
          return { behavior: 'FAILED', behaviorClose: 'OK', result: `a reconnect came within ${STORM_MS} ms of the drop (gaps ${gaps.join(', ')} ms): a reconnect storm`, resultClose: 'echohub dropped each connection' }
        }
        const grows = gaps.every((g, i) => i === 0 || g >= gaps[i - 1]! * GROWTH)
        return grows
          ? { behavior: 'OK', behaviorClose: 'OK', result: `the gaps between attempts grew: ${gaps.join(', ')} ms`, resultClose: 'echohub dropped each connection' }
          : { behavior: 'NON-STRICT', behaviorClose: 'OK', result: `the client reconnected, but the gaps did not grow: ${gaps.join(', ')} ms`, resultClose: 'echohub dropped each connection' }
      }
      default:
        return { behavior: 'OK', behaviorClose: 'OK', result: `each close (${R6_CODES.join(', ')}) was answered and the client came back each time (gaps ${gaps.join(', ')} ms)`, resultClose: `the client answered with ${pending.codes.map((c) => c ?? 'no code').join(', ')}` }
    }
  }

  /** Keeps the device case's result and ends the wait. */
  #judge (record: AgentRecord, c: SuiteCase, verdict: Verdict): void {
    const pending = record.pending!
    this.#disarmReconnect(record.agent)
    record.pending = undefined
    const started = Date.parse(pending.started_at)
    const result: CaseResult = {
      id: c.id,
      description: c.description,
      expectation: c.expectation,
      behavior: verdict.behavior,
      behaviorClose: verdict.behaviorClose,
      duration_ms: Date.now() - started,
      result: verdict.result,
      resultClose: verdict.resultClose,
      remoteCloseCode: pending.codes.at(-1) ?? null,
      started_at: pending.started_at,
      wire: pending.wire,
      details: { gaps_ms: pending.gaps, ...(c.id === 'R.6' ? { answered: pending.answered, codes: pending.codes } : {}) }
    }
    this.store.record(record.agent, result)
    this.#log('info', { agent: record.agent, case: c.id, behavior: result.behavior, gaps_ms: pending.gaps }, 'conformance case ended')
  }

  /** Judges the waiting case when no reconnect comes within the window (counted from its last end). */
  #armReconnect (record: AgentRecord): void {
    const pending = record.pending
    if (pending === undefined || this.#closed) return
    this.#disarmReconnect(record.agent)
    const left = Math.max(0, pending.ended_at + this.#reconnectWindow - Date.now())
    const timer = setTimeout(() => {
      this.#reconnectTimers.delete(record.agent)
      if (record.pending !== pending) return
      const c = this.#caseById(pending.id)
      if (c === undefined) {
        record.pending = undefined
        return
      }
      const window = `${Math.round(this.#reconnectWindow / 1000)} s`
      const attempt = pending.id === 'R.3' ? 'after the drop' : `after ${pending.id === 'R.6' ? 'close' : 'drop'} ${pending.gaps.length + 1}${pending.id === 'R.6' ? ` (${R6_CODES[pending.gaps.length]})` : ''}`
      this.#judge(record, c, pending.id === 'R.6'
        ? { behavior: 'NON-STRICT', behaviorClose: 'OK', result: `each close was answered, but the client did not come back within ${window} ${attempt}`, resultClose: 'the client answered each close' }
        : { behavior: 'FAILED', behaviorClose: 'OK', result: `no reconnect within ${window} ${attempt}`, resultClose: 'echohub dropped the connection without a close frame' })
    }, left)
    timer.unref()
    this.#reconnectTimers.set(record.agent, timer)
  }

  #disarmReconnect (agent: string): void {
    const timer = this.#reconnectTimers.get(agent)
    if (timer === undefined) return
    clearTimeout(timer)
    this.#reconnectTimers.delete(agent)
  }

  /** Forgets an agent (DELETE): false when it had no results. Refused while one of its cases runs. */
  async forget (agent: string): Promise<boolean> {
    this.#disarmReconnect(agent)
    return await this.store.delete(agent)
  }
}

type Verdict = Pick<CaseResult, 'behavior' | 'behaviorClose' | 'result' | 'resultClose'>

/** Cases that end when the agent reconnects (the client gave up on the connection). */
const RECONNECT_ENDS = new Set(['R.5'])

/** R.6 closes with these codes, one per connection. */
const R6_CODES = [1001, 1012, 1013] as const
const R6_REASONS: Record<number, string> = { 1001: 'going away', 1012: 'service restart', 1013: 'try again later' }

/** The result of a case too large for the device's `max_size`. */
export function skipped (c: SuiteCase, maxSize: number): CaseResult {
  return {
    id: c.id,
    description: c.description,
    expectation: c.expectation,
    behavior: 'SKIPPED',
    behaviorClose: 'SKIPPED',
    duration_ms: 0,
    result: `the case sends a message of ${c.largestMessage} bytes, over max_size=${maxSize}`,
    resultClose: 'not run',
    remoteCloseCode: null,
    started_at: new Date().toISOString(),
    wire: []
  }
}
