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

export function describe (v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v)
  if (v === null || typeof v !== 'object') return String(v)
  return Array.isArray(v) ? 'an array' : 'an object'
}
