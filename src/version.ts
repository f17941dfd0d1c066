// The package version, read once from package.json (the one source of truth), which sits one
// level above src/ in the source tree and two above dist/src/ in the built package.
import { readFileSync } from 'node:fs'

function readVersion (): string {
  for (const candidate of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(candidate, import.meta.url), 'utf8')) as { name?: string, version?: string }
      if (pkg.name === 'echohub' && typeof pkg.version === 'string') return pkg.version
    } catch {}
  }
  throw new Error('echohub: package.json not found beside the code')
}

export const VERSION = readVersion()
