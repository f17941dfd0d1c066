// `npm start`: runs the compiled server, compiling it first only when a source is newer than the
// last build (a fresh clone, a `git pull`, an edit). A start from a built checkout then takes about a
// second instead of a full `tsc` run each time. Plain JavaScript, so it runs before any build.
import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const BUILD_CONFIG = 'tsconfig.build.json'
const ENTRY = join(root, 'dist', 'app', 'cli.js')

/** Modification time of a file, or of the newest `.ts` file under a folder; 0 when missing. */
function newest (path) {
  let stat
  try {
    stat = statSync(path)
  } catch {
    return 0
  }
  if (!stat.isDirectory()) return stat.mtimeMs
  let latest = 0
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    if (entry.isDirectory() || entry.name.endsWith('.ts')) latest = Math.max(latest, newest(join(path, entry.name)))
  }
  return latest
}

/** Why the build is out of date, or undefined when dist/ is newer than every source and setting. */
function staleness () {
  const built = newest(ENTRY)
  if (built === 0) return 'no build yet'
  const { include } = JSON.parse(readFileSync(join(root, BUILD_CONFIG), 'utf8'))
  const sources = [...include, BUILD_CONFIG, 'tsconfig.json']
  return sources.some((source) => newest(join(root, source)) > built) ? 'sources changed since the last build' : undefined
}

const why = staleness()
if (why !== undefined) {
  process.stderr.write(`echohub: compiling (${why}); later starts skip this\n`)
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  const built = spawnSync(process.execPath, [tsc, '-p', join(root, BUILD_CONFIG)], { stdio: 'inherit' })
  if (built.status !== 0) {
    process.stderr.write('echohub: the build failed (see above); fix it, or run "npm run build" to see it again\n')
    process.exit(1)
  }
}
await import(ENTRY)
