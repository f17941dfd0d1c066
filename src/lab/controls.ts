// The device lab's controls: query parameters that make one echo connection misbehave on purpose.
// Parsed once, before the upgrade; a bad value is refused there, naming the control.

/** The controls in force on one connection: only those given, numbers as numbers. */
export interface Controls {
  /** Each reply is sent this many ms after its message arrived. */
  delay?: number
  /** Plus a random 0..jitter ms per reply; replies keep their order. */
  jitter?: number
  /** Each reply is sent this many times. */
  repeat?: number
  /** Each reply is sent as a fragmented message, frames of at most this many payload bytes. */
  fragment?: number
  /** `1`: read every message, never reply. */
  silent?: 1
  /** After this many replies, close with `close_code` and `close_reason`. */
  close_after?: number
  close_code?: number
  close_reason?: string
  /** After this many replies, end the TCP connection with no close frame. */
  drop_after?: number
  /** Send an unsolicited frame every `push` ms. */
  push?: number
  /** On connect, send this many frames of `burst_size` bytes, as fast as the client reads. */
  burst?: number
  burst_size?: number
  /** `1`: the burst's frames are binary. */
  burst_binary?: 1
  /** This connection's heartbeat period in ms; `0` never pings it. */
  ping?: number
}

export type ControlName = keyof Controls

/** A control refused before the upgrade: the SPEC's `400 {"error":"invalid_control",...}`. */
export interface InvalidControl {
  error: 'invalid_control'
  control: ControlName
  message: string
}

export type ControlsResult = { ok: true, controls: Controls | undefined } | { ok: false, refusal: InvalidControl }

export interface ControlLimits {
  /** The endpoint's largest message: the most `burst_size` may ask for. */
  maxPayload: number
  /** The most bytes a burst may ask for, `burst * burst_size` (default: no bound). */
  maxBurst?: number
}

export const DEFAULT_BURST_SIZE = 64
/** RFC 6455 §7.4: codes an endpoint may send (1004-1006 and 1015 are reserved). */
const CLOSE_CODES = '1000-1003, 1007-1014 or 3000-4999'
const MAX_CLOSE_REASON = 123

interface Range { min: number, max: number, zero?: boolean }

const RANGES: Partial<Record<ControlName, Range>> = {
  delay: { min: 0, max: 60000 },
  jitter: { min: 0, max: 60000 },
  repeat: { min: 1, max: 100 },
  fragment: { min: 1, max: 1048576 },
  close_after: { min: 1, max: 1000000 },
  drop_after: { min: 1, max: 1000000 },
  push: { min: 10, max: 3600000 },
  burst: { min: 1, max: 1000000 },
  ping: { min: 1000, max: 3600000, zero: true }
}

const UNITS: Partial<Record<ControlName, string>> = {
  delay: ' ms', jitter: ' ms', push: ' ms', ping: ' ms', fragment: ' bytes', burst_size: ' bytes'
}

/** Every control's name, in the order the SPEC's table lists them. */
export const CONTROL_NAMES: readonly ControlName[] = [
  'delay', 'jitter', 'repeat', 'fragment', 'silent', 'close_after', 'close_code', 'close_reason',
  'drop_after', 'push', 'burst', 'burst_size', 'burst_binary', 'ping'
]
const KNOWN = new Set<string>(CONTROL_NAMES)

/** Controls that mean nothing without another one. */
const NEEDS: Partial<Record<ControlName, ControlName>> = {
  close_code: 'close_after', close_reason: 'close_after', burst_size: 'burst', burst_binary: 'burst'
}

function validCloseCode (code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)
}

/**
 * Reads the controls from a request URL's query (everything after `?`, or a whole URL). Unknown
 * parameters are ignored (devices add their own, `token` among them); no control at all gives
 * `controls: undefined`, so a plain connection keeps the plain echo.
 */
export function parseControls (url: string, limits: ControlLimits): ControlsResult {
  const q = url.indexOf('?')
  if (q === -1) return { ok: true, controls: undefined }
  const params = new URLSearchParams(url.slice(q + 1))
  const controls: Controls = {}
  let any = false
  const refuse = (control: ControlName, message: string): ControlsResult =>
    ({ ok: false, refusal: { error: 'invalid_control', control, message: `${control}: ${message}` } })
  const seen = new Set<string>()
  for (const [name, value] of params) {
    if (!KNOWN.has(name)) continue
    const control = name as ControlName
    if (seen.has(name)) return refuse(control, 'given more than once')
    seen.add(name)
    any = true
    if (control === 'close_reason') {
      const bytes = Buffer.byteLength(value)
      if (bytes > MAX_CLOSE_REASON) return refuse(control, `at most ${MAX_CLOSE_REASON} bytes (a close frame's limit), got ${bytes}`)
      controls.close_reason = value
      continue
    }
    if (control === 'silent' || control === 'burst_binary') {
      if (value !== '1') return refuse(control, `takes 1, got ${JSON.stringify(value)}`)
      controls[control] = 1
      continue
    }
    const n = /^\d{1,16}$/.test(value) ? Number(value) : Number.NaN
    if (control === 'close_code') {
      if (!validCloseCode(n)) return refuse(control, `must be a close code a server may send: ${CLOSE_CODES}, got ${JSON.stringify(value)}`)
      controls.close_code = n
      continue
    }
    const range = control === 'burst_size' ? { min: 1, max: limits.maxPayload } : RANGES[control]!
    if (Number.isNaN(n) || (n < range.min && !(range.zero === true && n === 0)) || n > range.max) {
      const from = range.zero === true ? `0 or ${range.min}` : String(range.min)
      return refuse(control, `must be a whole number from ${from} to ${range.max}${UNITS[control] ?? ''}, got ${JSON.stringify(value)}`)
    }
    controls[control] = n
  }
  if (!any) return { ok: true, controls: undefined }
  for (const [control, needed] of Object.entries(NEEDS) as Array<[ControlName, ControlName]>) {
    if (controls[control] !== undefined && controls[needed] === undefined) {
      return refuse(control, `takes effect only with ${needed}; add ${needed}=N`)
    }
  }
  if (controls.burst !== undefined && limits.maxBurst !== undefined) {
    const bytes = controls.burst * (controls.burst_size ?? DEFAULT_BURST_SIZE)
    if (bytes > limits.maxBurst) {
      return refuse('burst', `burst * burst_size asks for ${bytes} bytes, more than this server's ${limits.maxBurst} (--lab-max-burst)`)
    }
  }
  if (controls.silent !== undefined && (controls.close_after !== undefined || controls.drop_after !== undefined)) {
    return refuse('silent', `never replies, so ${controls.close_after !== undefined ? 'close_after' : 'drop_after'} would never fire`)
  }
  // In the SPEC's table order, whatever order the URL gave them in.
  const ordered: Record<string, number | string> = {}
  for (const name of CONTROL_NAMES) if (controls[name] !== undefined) ordered[name] = controls[name]
  return { ok: true, controls: ordered as Controls }
}
