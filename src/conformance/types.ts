// The client conformance suite's shared shapes: a case, its verdicts and its result, as the case
// runner (cases.ts, engine.ts) produces them and the reports, device mode and the page read them.
// Framework-free: nothing under src/conformance/ imports Fastify.
import type { Socket } from 'node:net'
import type { IncomingHttpHeaders } from 'node:http'

/** Autobahn's words for what the client did with the case's messages, plus echohub's SKIPPED. */
export type Behavior = 'OK' | 'NON-STRICT' | 'INFORMATIONAL' | 'UNIMPLEMENTED' | 'FAILED' | 'SKIPPED'
/** Autobahn's words for how the connection ended, plus echohub's SKIPPED. */
export type BehaviorClose = 'OK' | 'FAILED' | 'WRONG CODE' | 'UNCLEAN' | 'INFORMATIONAL' | 'UNIMPLEMENTED' | 'SKIPPED'

/** One case of the suite, in the suite's order (Autobahn's numbering; echohub's own are `R.n`). */
export interface SuiteCase {
  /** Autobahn's id, e.g. `1.1.1`, `12.3.7`; echohub's own `R.1` ... */
  id: string
  description: string
  expectation: string
  /** The largest message the case sends, in bytes: `max_size` skips cases above it. */
  largestMessage: number
  /** Sections 12 and 13: runs only when the client offered permessage-deflate. */
  needsDeflate: boolean
  /** R.3, R.4, R.6: judged across the agent's next connections, so device mode only. */
  deviceOnly: boolean
  /** The case's own time limit, ms (Autobahn's per case; 60 s for R.5). */
  timeoutMs: number
}

/** A frame as seen on the wire, for the report's wire log (first 64 each way, 1024 bytes each). */
export interface WireEntry {
  /** ms since the case started */
  t: number
  dir: 'in' | 'out'
  opcode: number
  fin: boolean
  /** rsv bits as a number 0-7 */
  rsv: number
  /** payload length on the wire */
  length: number
  /** at most 1024 bytes: text as text when it is valid UTF-8, else `hex:` and hex */
  data: string
}

/** What one run of one case came to; the reports keep the last run per case and agent. */
export interface CaseResult {
  id: string
  description: string
  expectation: string
  behavior: Behavior
  behaviorClose: BehaviorClose
  duration_ms: number
  /** what happened, in plain words (Autobahn's `result`) */
  result: string
  /** how the close went, in plain words (Autobahn's `resultClose`) */
  resultClose: string
  /** the close code the client sent, or null */
  remoteCloseCode: number | null
  /** ISO time the case started */
  started_at: string
  wire: WireEntry[]
  /** case-specific figures (R.3/R.4 gaps, R.5 time, ...) */
  details?: Record<string, unknown>
}

/** The raw upgrade a case runs on: the suite writes the handshake response itself. */
export interface CaseUpgrade {
  socket: Socket
  head: Buffer
  headers: IncomingHttpHeaders
}

export interface RunOptions {
  /** `max_size`: cases sending a larger message are SKIPPED without running. */
  maxSize?: number
  /** aborts the case (server shutting down): the runner closes the socket and judges what it has. */
  signal?: AbortSignal
}
