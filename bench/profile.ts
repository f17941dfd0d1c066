// Summarizes a V8 CPU profile (`node --cpu-prof`, or `npm run bench -- --profile DIR`): where the
// busy time went, by package or area and by function (self time).
//   node dist-bench/profile.js FILE.cpuprofile [--top 25]
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

interface ProfileNode {
  id: number
  callFrame: { functionName: string, url: string, lineNumber: number }
  hitCount?: number
}

const { values: opt, positionals } = parseArgs({ options: { top: { type: 'string', default: '25' } }, allowPositionals: true })
if (positionals.length !== 1) {
  console.error('usage: node dist-bench/profile.js FILE.cpuprofile [--top N]')
  process.exit(2)
}
const profile = JSON.parse(readFileSync(positionals[0]!, 'utf8')) as { nodes: ProfileNode[], samples: number[], timeDeltas: number[] }

/** The package (node_modules/NAME), echohub's own folder, or node's internals a frame belongs to. */
function area (url: string, name: string): string {
  if (url === '') return name === '(idle)' || name === '(program)' || name === '(garbage collector)' ? name : '(native)'
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (pkg !== null) return pkg[1]!
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`
  const own = /\/dist\/(app|plugins|routes|src)\//.exec(url)
  if (own !== null) return `echohub ${own[1]}/`
  return url.split('/').slice(-2).join('/')
}

// self time per node: each sample's delta goes to the node it hit
const self = new Map<number, number>()
for (let i = 0; i < profile.samples.length; i++) self.set(profile.samples[i]!, (self.get(profile.samples[i]!) ?? 0) + (profile.timeDeltas[i] ?? 0))
const byArea = new Map<string, number>()
const byFunction = new Map<string, number>()
let total = 0
let idle = 0
for (const node of profile.nodes) {
  const us = self.get(node.id) ?? 0
  const { functionName, url, lineNumber } = node.callFrame
  if (functionName === '(idle)') {
    idle += us
    continue
  }
  total += us
  const a = area(url, functionName)
  byArea.set(a, (byArea.get(a) ?? 0) + us)
  const key = `${functionName || '(anonymous)'} ${a}${url === '' ? '' : `:${lineNumber + 1}`}`
  byFunction.set(key, (byFunction.get(key) ?? 0) + us)
}
const top = Number(opt.top)
const pct = (us: number) => `${(100 * us / total).toFixed(1).padStart(5)}%`
console.log(`${(total / 1e6).toFixed(2)} s busy, ${(idle / 1e6).toFixed(2)} s idle`)
console.log('\nby area (self time):')
for (const [a, us] of [...byArea].sort((x, y) => y[1] - x[1]).slice(0, top)) console.log(`  ${pct(us)}  ${a}`)
console.log('\nby function (self time):')
for (const [f, us] of [...byFunction].sort((x, y) => y[1] - x[1]).slice(0, top)) console.log(`  ${pct(us)}  ${f}`)
