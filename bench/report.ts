// The report: one row per scenario and server (medians over rounds), then the ratios, each the
// median of per-round ratios (a pair measured close in time shares the machine's conditions).
import { METRIC_NAMES, type Metric, type RunResult, type Scenario, type ServerName } from './scenarios.js'

export interface Row extends RunResult {
  scenario: string
  server: ServerName
  round: number
  skipped?: string
}

export const median = (xs: Array<number | undefined>): number => {
  const v = xs.filter((x): x is number => x !== undefined && Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return NaN
  const m = v.length >> 1
  return v.length % 2 === 1 ? v[m]! : (v[m - 1]! + v[m]!) / 2
}

export function fmt (x: number | undefined | null, digits = 2): string {
  if (x === undefined || x === null || !Number.isFinite(x)) return '-'
  // Grouped by hand: toLocaleString's first use loads ICU (5 MB of pages, a third of a second),
  // which the soak, running echohub in its own process, would count as echohub's.
  if (Math.abs(x) >= 1000) return String(Math.round(x)).replace(/\B(?=(\d{3})+$)/g, ',')
  return x.toFixed(digits)
}

export function table (rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)))
  return rows.map((r) => r.map((c, i) => {
    const s = String(c)
    return i < 2 || i === r.length - 1 ? s.padEnd(widths[i]!) : s.padStart(widths[i]!)
  }).join('  ').trimEnd()).join('\n')
}

const ok = (r: Row | undefined): r is Row => r !== undefined && r.skipped === undefined && r.error === undefined

export interface RatioSummary {
  metric: Metric
  of: ServerName
  versus: string
  ratio: number
  target: string | null
  pass: boolean | null
}

export function summarize (results: Row[], scenarios: Scenario[], rounds: number): { rows: string[][], ratioRows: string[][], summary: object[] } {
  const rows = [['scenario', 'server', 'msg/s', 'p50 ms', 'p99 ms', 'CPU ms/1k', 'srv core', 'gen core', 'wait', 'RSS MB', 'note']]
  const ratioRows = [['scenario', 'metric', 'ratio', 'value', 'target', 'verdict']]
  const summary: object[] = []
  for (const scenario of scenarios) {
    const per: Record<string, object> = {}
    for (const name of scenario.servers) {
      const runs = results.filter((r) => r.scenario === scenario.name && r.server === name)
      const good = runs.filter(ok)
      const notes = [...new Set(runs.flatMap((r) => r.skipped !== undefined ? [`skipped: ${r.skipped}`] : r.error !== undefined ? [`error: ${r.error}`] : r.notes))]
      const m = {
        runs: good.length,
        rate: median(good.map((r) => r.rate)),
        p50: median(good.map((r) => r.p50)),
        p99: median(good.map((r) => r.p99)),
        cpuPer1k: median(good.map((r) => r.cpuPer1k)),
        perCpu: median(good.map((r) => r.perCpu)),
        idleShare: median(good.map((r) => r.idleShare)),
        cpuShare: median(good.map((r) => r.cpuShare)),
        genShare: median(good.map((r) => r.genShare)),
        waitShare: median(good.map((r) => r.waitShare)),
        otherShare: median(good.map((r) => r.otherShare)),
        redisShare: median(good.map((r) => r.redisShare)),
        rss: median(good.map((r) => r.rss)),
        rssPerConn: median(good.map((r) => r.rssPerConn)),
        notes
      }
      per[name] = m
      if ((scenario.kind === 'broadcast' || scenario.spec?.full.type === 'rooms') && m.runs > 0) notes.unshift('msg/s = deliveries/s')
      if (scenario.kind !== 'echo' && Number.isFinite(m.rssPerConn)) notes.unshift(`${fmt(m.rssPerConn / 1024, 2)} KB/conn`)
      if (Number.isFinite(m.idleShare)) notes.unshift(`idle CPU ${fmt(100 * m.idleShare, 2)}% of a core`)
      if (Number.isFinite(m.redisShare)) notes.push(`Redis used ${fmt(m.redisShare)} core (shared, not in CPU ms/1k)`)
      if (Number.isFinite(m.otherShare)) notes.push(`machine busy elsewhere: ${fmt(m.otherShare)} core`)
      if (scenario.kind === 'idle' && m.runs > 0) {
        notes.unshift(`${median(good.map((r) => r.open))} idle, ${fmt(m.rssPerConn / 1024, 1)} KB/conn, ` +
          `opened in ${fmt(median(good.map((r) => r.openSeconds)), 1)} s`)
      }
      rows.push([scenario.name, name, fmt(m.rate, 0), fmt(m.p50), fmt(m.p99),
        fmt(m.cpuPer1k), fmt(m.cpuShare), fmt(m.genShare), Number.isFinite(m.waitShare) ? `${fmt(100 * m.waitShare, 0)}%` : '-',
        fmt(m.rss / 2 ** 20, 1), notes.join('; ')])
    }
    const ratios: RatioSummary[] = []
    for (const t of scenario.ratios) {
      const other = t.versusScenario ?? scenario.name
      const perRound: number[] = []
      for (let round = 1; round <= rounds; round++) {
        const a = results.find((r) => r.scenario === scenario.name && r.server === t.of && r.round === round)
        const b = t.versus === undefined ? undefined : results.find((r) => r.scenario === other && r.server === t.versus && r.round === round)
        // a ratio of non-positive figures (RSS noise on a tiny idle run) means nothing
        const x = ok(a) ? a[t.metric] : undefined
        const y = t.versus === undefined ? 1 : ok(b) ? b[t.metric] : undefined
        if (x !== undefined && y !== undefined && (x > 0 || (t.versus === undefined && x === 0)) && y > 0) perRound.push(x / y)
      }
      const ratio = median(perRound)
      // judged on the ratio as printed: a third decimal is far below the noise
      const shown = t.versus === undefined ? ratio : Number(ratio.toFixed(2))
      const target = t.op === undefined ? null : `${t.op} ${t.value!.toFixed(2)}`
      const pass = t.op === undefined || !Number.isFinite(ratio) ? null : t.op === '>=' ? shown >= t.value! : shown <= t.value!
      const versus = t.versus === undefined ? '' : other === scenario.name ? t.versus : `${t.versus} ${other}`
      ratios.push({ metric: t.metric, of: t.of, versus, ratio, target, pass })
      // an absolute target is judged on the value itself (bytes, a share of a core)
      ratioRows.push([scenario.name, METRIC_NAMES[t.metric], t.versus === undefined ? `${t.of} (value)` : `${t.of}/${versus}`,
        t.versus === undefined ? fmt(ratio, ratio < 1 ? 4 : 0) : fmt(ratio), target === null ? '(info)' : t.versus === undefined ? `${t.op} ${fmt(t.value!, t.value! < 1 ? 4 : 0)}` : target,
        target === null ? '' : pass === null ? 'n/a' : pass ? 'ok' : 'MISSED'])
    }
    summary.push({ scenario: scenario.name, servers: per, ratios })
  }
  return { rows, ratioRows, summary }
}
