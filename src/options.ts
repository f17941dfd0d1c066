// Register-time checks of plugin options: a wrong option fails `register` with an
// ECHOHUB_ERR_INVALID_OPTION error naming the plugin and the option.
import { InvalidOptionError } from './errors.js'

type Options = object | undefined

function read (opts: Options, key: string): unknown {
  return opts === undefined ? undefined : (opts as Record<string, unknown>)[key]
}

export function stringOption (plugin: string, opts: Options, key: string, fallback: string): string {
  const v = read(opts, key)
  if (v === undefined) return fallback
  if (typeof v !== 'string' || v === '') throw new InvalidOptionError(plugin, key, `must be a non-empty string, got ${describe(v)}`)
  return v
}

export function booleanOption (plugin: string, opts: Options, key: string, fallback: boolean): boolean {
  const v = read(opts, key)
  if (v === undefined) return fallback
  if (typeof v !== 'boolean') throw new InvalidOptionError(plugin, key, `must be true or false, got ${describe(v)}`)
  return v
}

export function integerOption (plugin: string, opts: Options, key: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const v = read(opts, key)
  if (v === undefined) return fallback
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new InvalidOptionError(plugin, key, `must be an integer from ${min} to ${max}, got ${describe(v)}`)
  }
  return v
}

/** A route path: starts with `/`, no trailing slash except the root. */
export function pathOption (plugin: string, opts: Options, key: string, fallback: string): string {
  const v = stringOption(plugin, opts, key, fallback)
  if (!v.startsWith('/') || (v.length > 1 && v.endsWith('/')) || /[\s?#*:]/.test(v)) {
    throw new InvalidOptionError(plugin, key, `must be a path like "/echo" (leading slash, no trailing slash, no wildcard), got ${describe(v)}`)
  }
  return v
}

/** What Fastify's `register` itself reads from a plugin's options; every plugin accepts them. */
const REGISTER_OPTIONS: readonly string[] = ['prefix', 'logLevel', 'logSerializers']

/**
 * Every option a plugin takes, as a record so the compiler says when one of its options interface
 * is missing: `{ path: true, name: true }`.
 */
export type OptionKeys<T> = Record<keyof T, true>

/**
 * Refuses an option the plugin does not take, as a wrong value is refused: in plain JavaScript a
 * typo (`welcom`) would otherwise be silently ignored.
 */
export function knownOptions (plugin: string, opts: Options, keys: OptionKeys<object>): void {
  if (opts === undefined || opts === null || typeof opts !== 'object') return
  for (const key of Object.keys(opts)) {
    if (Object.hasOwn(keys, key) || REGISTER_OPTIONS.includes(key)) continue
    const known = Object.keys(keys)
    const near = known.find((k) => editDistance(k.toLowerCase(), key.toLowerCase()) <= 2)
    throw new InvalidOptionError(plugin, key, `is not an option of ${plugin}${near === undefined ? '' : ` (did you mean "${near}"?)`}; it takes ${known.join(', ')}`)
  }
}

/** Levenshtein distance, for the did-you-mean of a mistyped option. */
function editDistance (a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    previous = current
  }
  return previous[b.length]!
}

export function describe (v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v)
  if (v === null || typeof v !== 'object') return String(v)
  return Array.isArray(v) ? 'an array' : 'an object'
}
