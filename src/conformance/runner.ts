// The case runner as the service uses it: the suite's cases, their selection and their run, and
// the frame-level primitives device mode ends an agent's connections with (R.3, R.4, R.6).
import type { CaseUpgrade } from './types.js'
import { SUITE, runCase, selectCases } from './cases.js'
import { acceptUpgrade } from './engine.js'
import type { DeviceLink, SuiteEngine } from './service.js'

/** One of an agent's connections in device mode, on the runner's own connection. */
function deviceLink (upgrade: CaseUpgrade): DeviceLink | null {
  const conn = acceptUpgrade(upgrade)
  if (conn === null) return null
  let answered = false
  conn.on('closeFrame', () => { answered = true })
  return {
    text: (data) => conn.sendMessage(Buffer.from(data), false),
    drop: () => conn.drop(true),
    close: async (code, reason) => {
      conn.close(code, reason)
      const end = await conn.closed
      return { answered, code: end.remoteCloseCode }
    },
    wire: () => conn.wire
  }
}

/** The suite's engine: every case of sections 1-7, 9, 10, 12, 13 and R. */
export function suiteEngine (): SuiteEngine {
  return {
    suite: SUITE,
    select: (patterns) => selectCases(patterns),
    run: runCase,
    link: deviceLink
  }
}
