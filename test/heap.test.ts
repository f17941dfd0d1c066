// The CLI's process keeps V8's young generation at its initial size and fixes the old generation's
// growing factor, each unless the user chose it.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { tuneGarbageCollector } from '../app/heap.js'

const HEAP = fileURLToPath(new URL('../dist/app/heap.js', import.meta.url))

/** The young generation's size in MB in a fresh process, before and after many objects survived scavenges. */
function youngAfterSurvivors (keep: boolean, nodeFlags: string[] = []): { before: number, after: number } {
  const script = `
    import v8 from 'node:v8'
    const young = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size / 2 ** 20
    if (${keep}) (await import(${JSON.stringify(HEAP)})).tuneGarbageCollector()
    const before = young()
    const kept = []
    for (let i = 0; i < 300000; i++) kept.push({ i, s: 'x' + i })
    console.log(JSON.stringify({ before, after: young() }))`
  return JSON.parse(execFileSync(process.execPath, [...nodeFlags, '--input-type=module', '-e', script], { encoding: 'utf8' })) as { before: number, after: number }
}

t.test('the young generation keeps its size however much survives', async (t) => {
  const grown = youngAfterSurvivors(false)
  const kept = youngAfterSurvivors(true)
  t.ok(grown.after >= 16 && grown.after > grown.before, `V8 alone grows it (${grown.before} to ${grown.after} MB)`)
  t.equal(kept.after, kept.before, `kept, it stays at ${kept.before} MB`)
  t.ok(kept.after <= 4)
})

const OURS = ['--semi-space-growth-factor=1', '--heap-growing-percent=100']

t.test('a flag the user gave, on the command line or in NODE_OPTIONS, is left alone', async (t) => {
  t.same(tuneGarbageCollector(['--enable-source-maps'], '--max-old-space-size=512'), OURS, 'other flags do not count')
  t.same(tuneGarbageCollector(['--max-semi-space-size=8'], ''), [OURS[1]])
  t.same(tuneGarbageCollector(['--max-semi-space-size', '8'], ''), [OURS[1]])
  t.same(tuneGarbageCollector([], '--inspect --max_semi_space_size=8'), [OURS[1]], 'V8 spells it with underscores too')
  t.same(tuneGarbageCollector(['--semi-space-growth-factor=4'], ''), [OURS[1]])
  t.same(tuneGarbageCollector(['--heap-growing-percent=50'], ''), [OURS[0]])
  t.same(tuneGarbageCollector(['--min-semi-space-size=2', '--heap_growing_percent=300'], ''), [])
  const sized = youngAfterSurvivors(true, ['--max-semi-space-size=8'])
  t.ok(sized.after > sized.before, 'and the user\'s choice is the one V8 follows')
})
