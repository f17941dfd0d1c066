// The suite: Autobahn's client cases in its order, then echohub's own device-resilience cases
// (section R), with the pattern selection and the entry point that runs one case on an upgrade.
import { CLOSE_INVALID_PAYLOAD, CLOSE_NORMAL, runSpec, type CaseRun, type CaseSpec } from './engine.js'
import { AUTOBAHN_CASES } from './cases-autobahn.js'
import type { CaseResult, CaseUpgrade, RunOptions, SuiteCase } from './types.js'

const KB = 1024

// ---- R: device resilience -----------------------------------------------------------------

const HEARTBEAT_EVERY_MS = 500
const HEARTBEAT_FOR_MS = 5000
const PONG_WITHIN_MS = 1000

const r1: CaseSpec = {
  id: 'R.1',
  description: `Heartbeat: the server pings every ${HEARTBEAT_EVERY_MS} ms for ${HEARTBEAT_FOR_MS / 1000} s, each ping with its own payload.`,
  expectation: `Each ping is answered with a pong carrying the ping's payload within ${PONG_WITHIN_MS} ms. Clean close with normal code.`,
  largestMessage: 0,
  needsDeflate: false,
  deviceOnly: false,
  timeoutMs: HEARTBEAT_FOR_MS + PONG_WITHIN_MS + 3000,
  open: k => {
    // the case decides when to close, not the arrival of the expected events
    k.suppressClose = true
    k.expectedClose = { closedByMe: true, closeCode: [CLOSE_NORMAL], requireClean: true }
    const sent = new Map<string, number>()
    const rtts: number[] = []
    const late: string[] = []
    k.state.sent = sent
    k.details.pings = 0
    k.details.rtt_ms = rtts
    k.conn.on('pong', (payload: Buffer) => {
      const at = sent.get(payload.toString('latin1'))
      if (at === undefined) {
        late.push(`unexpected pong payload ${JSON.stringify(payload.toString('latin1').slice(0, 32))}`)
        return
      }
      sent.delete(payload.toString('latin1'))
      const rtt = Date.now() - at
      rtts.push(rtt)
      if (rtt > PONG_WITHIN_MS) late.push(`pong ${rtts.length} after ${rtt} ms`)
    })
    let n = 0
    const tick = (): void => {
      if (k.conn.state !== 'open') return
      if (n * HEARTBEAT_EVERY_MS >= HEARTBEAT_FOR_MS) {
        // the last ping gets its full second before the verdict
        k.conn.later(PONG_WITHIN_MS, () => finish())
        return
      }
      n++
      const payload = `echohub heartbeat ${n}`
      sent.set(payload, Date.now())
      k.details.pings = n
      k.conn.ping(Buffer.from(payload, 'latin1'))
      k.conn.later(HEARTBEAT_EVERY_MS, tick)
    }
    const finish = (): void => {
      const missing = [...sent.keys()]
      if (missing.length === 0 && late.length === 0) {
        k.behavior = 'OK'
        k.result = `All ${n} pings answered in time (slowest ${Math.max(...rtts)} ms).`
      } else {
        k.behavior = 'FAILED'
        k.result = [missing.length > 0 ? `${missing.length} of ${n} pings never answered` : '', ...late].filter(Boolean).join('; ') + '.'
      }
      k.state.judged = true
      k.conn.close(CLOSE_NORMAL)
    }
    tick()
  },
  judged: k => {
    if (k.state.judged !== true) {
      k.behavior = 'FAILED'
      k.result = `The connection ended after ${k.details.pings as number} pings, before the heartbeat was over.`
    }
  }
}

const LARGE_SIZES = [16 * KB, 32 * KB, 64 * KB]
const r2: CaseSpec = {
  id: 'R.2',
  description: 'Large frames: the server sends text and binary messages of 16, 32 and 64 KiB, each as a single frame (sizes above max_size are left out), one after the other.',
  expectation: 'Each comes back intact, of the same type. Clean close with normal code.',
  largestMessage: 16 * KB,
  needsDeflate: false,
  deviceOnly: false,
  timeoutMs: 30000,
  open: k => {
    k.suppressClose = true
    k.expectedClose = { closedByMe: true, closeCode: [CLOSE_NORMAL], requireClean: true }
    const max = k.state.maxSize as number | undefined
    const plan: Array<[number, boolean]> = []
    for (const size of LARGE_SIZES) {
      if (max !== undefined && size > max) continue
      plan.push([size, false], [size, true])
    }
    k.state.plan = plan
    k.state.step = 0
    k.details.sent = plan.map(([size, binary]) => `${binary ? 'binary' : 'text'} ${size}`)
    k.result = 'Not every message came back within 20 s.'
    k.conn.closeAfter(20000)
    sendLarge(k)
  },
  judged: k => {
    // a binary message echoed as text is not valid UTF-8: the connection was failed with 1007
    const plan = k.state.plan as Array<[number, boolean]> | undefined
    const step = k.state.step as number
    if (k.behavior !== 'OK' && plan !== undefined && step < plan.length && k.conn.end.localCloseCode === CLOSE_INVALID_PAYLOAD) {
      const [size, binary] = plan[step]!
      k.result = `The ${size}-byte ${binary ? 'binary' : 'text'} message came back as text that is not valid UTF-8 (closed with 1007).`
    }
  },
  onMessage: (k, payload, binary) => {
    const plan = k.state.plan as Array<[number, boolean]>
    const step = k.state.step as number
    const expected = k.state.expected as Buffer
    const [size, wantBinary] = plan[step]!
    if (binary !== wantBinary || !payload.equals(expected)) {
      k.behavior = 'FAILED'
      k.result = binary !== wantBinary
        ? `The ${size}-byte ${wantBinary ? 'binary' : 'text'} message came back as ${binary ? 'binary' : 'text'}.`
        : `The ${size}-byte ${wantBinary ? 'binary' : 'text'} message came back altered (${payload.length} bytes).`
      k.conn.close(CLOSE_NORMAL)
      return
    }
    k.state.step = step + 1
    if (step + 1 < plan.length) sendLarge(k)
    else {
      k.behavior = 'OK'
      k.result = `All ${plan.length} messages came back intact.`
      k.conn.close(CLOSE_NORMAL)
    }
  }
}

function sendLarge (k: CaseRun): void {
  const plan = k.state.plan as Array<[number, boolean]>
  const [size, binary] = plan[k.state.step as number]!
  const payload = Buffer.alloc(size)
  // text: printable ASCII; binary: every byte value, so a client that mangles either shows it
  for (let i = 0; i < size; i++) payload[i] = binary ? (i * 7 + 3) & 0xff : 0x21 + (i % 94)
  k.state.expected = payload
  k.conn.sendFrame({ opcode: binary ? 2 : 1, payload })
}

const SILENT_FOR_MS = 60000
const r5: CaseSpec = {
  id: 'R.5',
  description: `Silent server: for up to ${SILENT_FOR_MS / 1000} s the server sends nothing at all (no pongs, no echoes, no close) and discards what it reads; the TCP connection stays open.`,
  expectation: 'The client notices the dead connection and gives up on it by itself: closes it or reconnects. A client that never does is INFORMATIONAL.',
  largestMessage: 0,
  needsDeflate: false,
  deviceOnly: false,
  timeoutMs: SILENT_FOR_MS,
  open: k => {
    const conn = k.conn
    conn.react = false
    conn.autoPong = false
    k.expectedClose = { closedByMe: false, closeCode: [], requireClean: false }
    const ms = (): number => conn.ms()
    conn.on('closeFrame', (code: number | null) => {
      if (k.state.gaveUp === undefined) {
        k.state.gaveUp = ms()
        k.details.client_gave_up_ms = ms()
        k.details.how = `close frame${code === null ? '' : ` ${code}`}`
      }
      // nothing is answered; the case ends as soon as the client said it was leaving
      conn.drop(true)
    })
    conn.on('end', () => {
      if (k.state.gaveUp === undefined && k.state.timedOut !== true) {
        k.state.gaveUp = ms()
        k.details.client_gave_up_ms = ms()
        k.details.how = 'TCP connection closed'
      }
    })
    conn.later(SILENT_FOR_MS, () => {
      k.state.timedOut = true
      conn.drop(true)
    })
  },
  judged: k => {
    const gaveUp = k.state.gaveUp as number | undefined
    if (gaveUp !== undefined && k.state.timedOut !== true) {
      k.behavior = 'OK'
      k.behaviorClose = 'OK'
      k.result = `The client gave up on the silent connection after ${(gaveUp / 1000).toFixed(1)} s (${k.details.how as string}).`
      k.resultClose = 'The client ended the connection.'
    } else {
      k.behavior = 'INFORMATIONAL'
      k.behaviorClose = 'INFORMATIONAL'
      k.result = `The client kept the silent connection for ${SILENT_FOR_MS / 1000} s without giving up on it.`
      k.resultClose = 'The server ended the connection.'
    }
  }
}

/** R.3, R.4, R.6: judged across the agent's next connections, by device mode. */
const deviceOnly = (id: string, description: string, expectation: string, timeoutMs: number): CaseSpec => ({
  id,
  description,
  expectation,
  largestMessage: 0,
  needsDeflate: false,
  deviceOnly: true,
  timeoutMs,
  open: () => {}
})
const r3 = deviceOnly('R.3', 'Reconnect: the server ends the TCP connection without a close frame.',
  'The client reconnects within 60 s (OK, the gap is reported); FAILED if it does not.', 60000)
const r4 = deviceOnly('R.4', "Backoff: the server ends each of the agent's next three connections at once.",
  'The gaps between the attempts grow (OK); NON-STRICT when they do not; FAILED when any gap is under 100 ms. The gaps are reported.', 180000)
const r6 = deviceOnly('R.6', 'Close handshake: the server closes with 1001, then 1012, then 1013, one close per connection.',
  'Each close is answered with a close frame and the client comes back each time within 60 s (OK); NON-STRICT when each was answered but it did not come back; FAILED when one was not answered.', 180000)

const SPECS: readonly CaseSpec[] = [...AUTOBAHN_CASES, r1, r2, r3, r4, r5, r6]
const BY_ID = new Map(SPECS.map(s => [s.id, s]))

/** Every case, in the suite's order. */
export const SUITE: SuiteCase[] = SPECS.map(s => ({
  id: s.id,
  description: s.description,
  expectation: s.expectation,
  largestMessage: s.largestMessage,
  needsDeflate: s.needsDeflate,
  deviceOnly: s.deviceOnly,
  timeoutMs: s.timeoutMs
}))

/**
 * The cases matching Autobahn's patterns (`1.*`, `7.1.1`, `12.1.*`, `R.*`), in the suite's
 * order; every case without patterns. As the fuzzingserver: `*` matches anything, a pattern
 * without `*` names one case, and a pattern matches from the start of the id.
 */
export function selectCases (patterns: string[] | undefined): SuiteCase[] {
  const list = (patterns ?? []).map(p => p.trim()).filter(p => p !== '')
  if (list.length === 0) return [...SUITE]
  return SUITE.filter(c => list.some(p => globMatches(p, c.id)))
}

/**
 * Autobahn's patterns: `*` stands for any run of characters. Matched piece by piece, without a
 * regular expression: `.*.*.*x` style backtracking would let a short `cases=` query (a run of
 * stars) hold the event loop for seconds.
 */
function globMatches (pattern: string, id: string): boolean {
  const pieces = pattern.split('*')
  if (pieces.length === 1) return id === pattern
  const first = pieces[0]!
  const last = pieces[pieces.length - 1]!
  if (!id.startsWith(first) || id.length < first.length + last.length) return false
  let at = first.length
  for (const piece of pieces.slice(1, -1)) {
    if (piece === '') continue
    const found = id.indexOf(piece, at)
    if (found === -1) return false
    at = found + piece.length
  }
  return id.length - last.length >= at && id.endsWith(last)
}

/** The case's full definition, for a SuiteCase from SUITE (or its id). */
export function caseSpec (c: SuiteCase | string): CaseSpec | undefined {
  return BY_ID.get(typeof c === 'string' ? c : c.id)
}

/**
 * Runs one case on a raw upgrade: answers the handshake, runs the case, judges it, closes the
 * socket. SKIPPED (without running) when `options.maxSize` is below what the case sends;
 * UNIMPLEMENTED for R.3, R.4, R.6 outside device mode. Never throws for what the client does.
 */
export async function runCase (c: SuiteCase, upgrade: CaseUpgrade, options: RunOptions = {}): Promise<CaseResult> {
  const spec = BY_ID.get(c.id)
  if (spec === undefined) throw new Error(`no such case ${c.id}`)
  if (spec.deviceOnly) return runSpec({ ...spec, open: notHere }, upgrade, options).then(r => ({ ...r, behavior: 'UNIMPLEMENTED', behaviorClose: 'UNIMPLEMENTED', result: 'needs device mode', resultClose: 'Closed at once with 1000.' }))
  if (spec.id === 'R.2' && options.maxSize !== undefined) {
    const maxSize = options.maxSize
    return runSpec({ ...spec, open: k => { k.state.maxSize = maxSize; spec.open(k) } }, upgrade, options)
  }
  return runSpec(spec, upgrade, options)
}

function notHere (k: CaseRun): void {
  k.conn.close(CLOSE_NORMAL, 'needs device mode')
}
