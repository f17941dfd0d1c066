// Who may connect: the Origin allowlist and the optional bearer token. Checked before the upgrade
// (and on /stats and /metrics for the token), so a refused client never holds a WebSocket.
import { createHash, timingSafeEqual } from 'node:crypto'

export interface AccessOptions {
  /** `*` for any origin, or exact origins like `https://example.com`. */
  origins: '*' | readonly string[]
  /** Clients must present this token; undefined turns auth off. */
  authToken: string | undefined
}

/** What a client is told when it lacks the token. */
export const TOKEN_REQUIRED = 'a valid token is required: send "Authorization: Bearer <token>" or ?token=<token>'

interface RequestLike {
  headers: Record<string, string | string[] | undefined>
  url: string
}

function digest (value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

export class AccessPolicy {
  readonly origins: '*' | ReadonlySet<string>
  readonly #tokenDigest: Buffer | undefined

  constructor (options: AccessOptions) {
    this.origins = options.origins === '*' ? '*' : new Set(options.origins.map((o) => o.toLowerCase()))
    this.#tokenDigest = options.authToken === undefined ? undefined : digest(options.authToken)
  }

  get authRequired (): boolean {
    return this.#tokenDigest !== undefined
  }

  /**
   * A request without `Origin` (devices, CLI tools) is allowed; a browser's must be on the list.
   * Nothing is inferred from the Host header: a DNS-rebinding page controls both.
   */
  originAllowed (request: RequestLike): boolean {
    const origin = request.headers.origin
    if (this.origins === '*' || origin === undefined || Array.isArray(origin)) return true
    return this.origins.has(origin.toLowerCase())
  }

  /** `Authorization: Bearer <token>` or `?token=<token>`, compared in constant time. */
  authorized (request: RequestLike): boolean {
    if (this.#tokenDigest === undefined) return true
    const presented = bearer(request.headers.authorization) ?? queryToken(request.url)
    // Hashing first makes both sides the same length, so timingSafeEqual never leaks the token's length.
    return presented !== undefined && timingSafeEqual(digest(presented), this.#tokenDigest)
  }
}

function bearer (header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string') return undefined
  const match = /^Bearer\s+(.+?)\s*$/i.exec(header)
  return match?.[1]
}

function queryToken (url: string): string | undefined {
  const q = url.indexOf('?')
  if (q === -1) return undefined
  return new URLSearchParams(url.slice(q + 1)).get('token') ?? undefined
}

/** `url` with the value of a `token` query parameter hidden, for log lines. */
export function redactToken (url: string): string {
  return url.includes('token=') ? url.replace(/([?&]token=)[^&#]*/g, '$1[redacted]') : url
}
