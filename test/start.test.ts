// `npm start` (scripts/start.js): runs the built server at once, and compiles first only when there
// is no build yet or a source is newer than it. Checked in a stand-in checkout whose "compiler" and
// "server" only say that they ran, so nothing here depends on how long a real build takes.
import t, { type Test } from 'tap'
import { execFile } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const root = fileURLToPath(new URL('..', import.meta.url))
const execFileAsync = promisify(execFile)

/** A checkout with scripts/start.js, one source file, a stand-in tsc (which fails when told to) and no build. */
function checkout (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'echohub-start-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  mkdirSync(join(dir, 'scripts'))
  cpSync(join(root, 'scripts', 'start.js'), join(dir, 'scripts', 'start.js'))
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }))
  writeFileSync(join(dir, 'tsconfig.json'), '{}')
  writeFileSync(join(dir, 'tsconfig.build.json'), JSON.stringify({ include: ['index.ts', 'src'] }))
  writeFileSync(join(dir, 'index.ts'), '')
  mkdirSync(join(dir, 'src', 'deep'), { recursive: true })
  writeFileSync(join(dir, 'src', 'deep', 'a.ts'), '')
  mkdirSync(join(dir, 'node_modules', 'typescript', 'bin'), { recursive: true })
  writeFileSync(join(dir, 'node_modules', 'typescript', 'bin', 'tsc'), `
const { mkdirSync, writeFileSync, existsSync } = require('node:fs')
const { join } = require('node:path')
const dir = ${JSON.stringify(dir)}
if (existsSync(join(dir, 'broken'))) { console.log('compile error'); process.exit(2) }
console.log('compiled')
mkdirSync(join(dir, 'dist', 'app'), { recursive: true })
writeFileSync(join(dir, 'dist', 'app', 'cli.js'), 'console.log("started with", JSON.stringify(process.argv.slice(2)))')
`)
  writeFileSync(join(dir, 'node_modules', 'typescript', 'package.json'), JSON.stringify({ type: 'commonjs' }))
  return dir
}

async function start (dir: string, args: string[] = []): Promise<{ code: number, out: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [join(dir, 'scripts', 'start.js'), ...args])
    return { code: 0, out: stderr + stdout }
  } catch (err) {
    const e = err as { code: number, stdout: string, stderr: string }
    return { code: e.code, out: e.stderr + e.stdout }
  }
}

/** Sets a file's modification time `seconds` from now. */
function touch (file: string, seconds: number): void {
  const at = new Date(Date.now() + seconds * 1000)
  utimesSync(file, at, at)
}

t.test('npm start runs scripts/start.js, with no prestart build', async (t) => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
  t.equal(pkg.scripts.start, 'node scripts/start.js')
  t.equal(pkg.scripts.prestart, undefined, 'no tsc run before every start')
})

t.test('the first start compiles; later ones start the built server at once, passing the arguments on', async (t) => {
  const dir = checkout(t)
  const first = await start(dir, ['--help'])
  t.equal(first.code, 0)
  t.match(first.out, /compiling \(no build yet\)/)
  t.match(first.out, /compiled\n[^]*started with \["--help"\]/, 'compiled, then started')
  touch(join(dir, 'dist', 'app', 'cli.js'), 10)
  const second = await start(dir, ['--help'])
  t.same(second, { code: 0, out: 'started with ["--help"]\n' }, 'nothing compiled: the build is newer than every source')
})

t.test('a source newer than the build, even deep in a folder, or a changed tsconfig, compiles again first', async (t) => {
  const dir = checkout(t)
  await start(dir)
  for (const changed of ['src/deep/a.ts', 'index.ts', 'tsconfig.json']) {
    touch(join(dir, 'dist', 'app', 'cli.js'), 10)
    touch(join(dir, changed), 20)
    const again = await start(dir)
    t.match(again.out, /compiling \(sources changed since the last build\)[^]*compiled\n[^]*started/, `${changed} changed: compiled, then started`)
  }
  touch(join(dir, 'dist', 'app', 'cli.js'), 60)
  writeFileSync(join(dir, 'src', 'notes.md'), '')
  touch(join(dir, 'src', 'notes.md'), 90)
  t.same(await start(dir), { code: 0, out: 'started with []\n' }, 'a file that is no TypeScript source does not count')
})

t.test('a failed build does not start the server, and says so', async (t) => {
  const dir = checkout(t)
  writeFileSync(join(dir, 'broken'), '')
  const failed = await start(dir)
  t.equal(failed.code, 1)
  t.match(failed.out, /compile error/, 'the compiler\'s output is shown')
  t.match(failed.out, /the build failed/)
  t.notMatch(failed.out, /started/)
})
