// What the reports say of an agent's results: one verdict per case (the worse of `behavior` and
// `behaviorClose`), the summary counted over them, and the JUnit XML a device's CI reads.
import type { CaseResult, SuiteCase } from './types.js'

/** A case's overall verdict, as the summary, the page's grid and JUnit count it. */
export type Verdict = 'OK' | 'NON-STRICT' | 'INFORMATIONAL' | 'UNIMPLEMENTED' | 'FAILED' | 'WRONG CODE' | 'UNCLEAN' | 'SKIPPED'

/** Every verdict, in the order summaries list them. */
export const VERDICTS: readonly Verdict[] = ['OK', 'NON-STRICT', 'INFORMATIONAL', 'UNIMPLEMENTED', 'FAILED', 'WRONG CODE', 'UNCLEAN', 'SKIPPED']

/** The verdicts a CI run counts as failures. */
const FAILURES = new Set<Verdict>(['FAILED', 'WRONG CODE', 'UNCLEAN'])
/** Cases that did not run: skipped in JUnit. */
const SKIPS = new Set<Verdict>(['UNIMPLEMENTED', 'SKIPPED'])

/**
 * The case's verdict: a case that failed, was not run or is not implemented is that; otherwise a
 * close that went wrong (FAILED, WRONG CODE, UNCLEAN) outweighs what the messages got.
 */
export function verdictOf (result: Pick<CaseResult, 'behavior' | 'behaviorClose'>): Verdict {
  const { behavior, behaviorClose } = result
  if (behavior === 'FAILED' || behavior === 'UNIMPLEMENTED' || behavior === 'SKIPPED') return behavior
  if (behaviorClose === 'FAILED' || behaviorClose === 'WRONG CODE' || behaviorClose === 'UNCLEAN') return behaviorClose
  return behavior
}

export type Summary = Record<Verdict, number>

/** Counts of each verdict over these results, every verdict present (0 when none). */
export function summarize (results: Iterable<Pick<CaseResult, 'behavior' | 'behaviorClose'>>): Summary {
  const summary = Object.fromEntries(VERDICTS.map((v) => [v, 0])) as Summary
  for (const r of results) summary[verdictOf(r)]++
  return summary
}

export function isFailure (verdict: Verdict): boolean {
  return FAILURES.has(verdict)
}

/** One case of an agent's report: its result once run, else its description with null verdicts. */
export type ReportCase = CaseResult | (Pick<SuiteCase, 'id' | 'description' | 'expectation'> & { behavior: null, behaviorClose: null })

function xml (text: string): string {
  // Characters XML 1.0 cannot hold at all (a client's bad bytes shown in a result) become U+FFFD.
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '\ufffd')
    .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

/** The section a case belongs to (`1.1.1` → `1`, `R.3` → `R`), JUnit's classname. */
function sectionOf (id: string): string {
  return id.split('.')[0] ?? id
}

/**
 * JUnit XML for an agent's report: one `testcase` per case of `cases` (those not run yet are
 * skipped, "not run"); FAILED, WRONG CODE and UNCLEAN are failures; NON-STRICT and INFORMATIONAL
 * pass with the reason in `system-out`; UNIMPLEMENTED and SKIPPED are skipped.
 */
export function junitXml (agent: string, cases: readonly ReportCase[], at: string): string {
  let failures = 0
  let skipped = 0
  let time = 0
  const body: string[] = []
  for (const c of cases) {
    const name = `${c.id} ${c.description}`
    const classname = `echohub.conformance.${sectionOf(c.id)}`
    if (c.behavior === null) {
      skipped++
      body.push(`    <testcase name="${xml(name)}" classname="${xml(classname)}" time="0"><skipped message="not run"/></testcase>`)
      continue
    }
    const verdict = verdictOf(c)
    const seconds = c.duration_ms / 1000
    time += seconds
    const reason = `behavior ${c.behavior}: ${c.result}\nbehaviorClose ${c.behaviorClose}: ${c.resultClose}`
    const open = `    <testcase name="${xml(name)}" classname="${xml(classname)}" time="${seconds.toFixed(3)}">`
    if (isFailure(verdict)) {
      failures++
      body.push(`${open}<failure message="${xml(verdict)}" type="${xml(verdict)}">${xml(reason)}</failure></testcase>`)
    } else if (SKIPS.has(verdict)) {
      skipped++
      body.push(`${open}<skipped message="${xml(`${verdict}: ${verdict === c.behavior ? c.result : c.resultClose}`)}"/></testcase>`)
    } else if (verdict !== 'OK' || c.behaviorClose !== 'OK') {
      body.push(`${open}<system-out>${xml(`${verdict}\n${reason}`)}</system-out></testcase>`)
    } else {
      body.push(`${open}</testcase>`)
    }
  }
  const suite = `name="${xml(`echohub conformance: ${agent}`)}" tests="${cases.length}" failures="${failures}" errors="0" skipped="${skipped}" time="${time.toFixed(3)}" timestamp="${xml(at)}"`
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites ${suite}>`,
    `  <testsuite ${suite}>`,
    ...body,
    '  </testsuite>',
    '</testsuites>',
    ''
  ].join('\n')
}
