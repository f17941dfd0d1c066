// Who may connect: the Origin allowlist and the optional bearer token. Checked before the upgrade
// (and on /stats and /metrics for the token), so a refused client never holds a WebSocket.
import { createHash, timingSafeEqual } from 'node:crypto'
import type { Identity } from './identity.js'

export interface AccessOptions {
  /** `*` for any origin, or exact origins like `https://example.com`. */
  origins: '*' | readonly string[]
  /** Clients must present this token; undefined turns auth off. With identity on, it guards only the admin routes. */
  authToken: string | undefined
  /** Who each client is (signed tokens or a host app's `authenticate`); undefined: identity off. */
  identity?: Identity<RequestLike> | undefined
  /** How messages name these settings: as the CLI's flags, or (default) as the plugin's options. */
  namedBy?: 'flags' | 'options'
}

/** How a refusal names the setting that decides it, so a host app's user reads its own option's name. */
export interface SettingNames {
  /** `--origins`, or `the "origins" option` */
  origins: string
  /** `--auth-token`, or `the "authToken" option` */
  authToken: string
}

const FLAG_NAMES: SettingNames = { origins: '--origins', authToken: '--auth-token' }
const OPTION_NAMES: SettingNames = { origins: 'the "origins" option', authToken: 'the "authToken" option' }

export interface RequestLike {
  headers: Record<string, string | string[] | undefined>
  url: string
}

function digest (value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

export class AccessPolicy {
  readonly origins: '*' | ReadonlySet<string>
  readonly identity: Identity<RequestLike> | undefined
  /** The names refusals give the settings: the CLI's flags or the plugin's options. */
  readonly names: SettingNames
  readonly #tokenDigest: Buffer | undefined

  constructor (options: AccessOptions) {
    this.origins = options.origins === '*' ? '*' : new Set(options.origins.map((o) => o.toLowerCase()))
    this.names = options.namedBy === 'flags' ? FLAG_NAMES : OPTION_NAMES
    this.#tokenDigest = options.authToken === undefined ? undefined : digest(options.authToken)
    this.identity = options.identity
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

  /**
   * Whether a request that changes something (an admin POST) may come from its `Origin`: none
   * (curl, devices, scripts), one listed explicitly in `--origins` (the default `*` does not
   * count), or the request's own origin on a host that is `localhost` or an IP address. So no web
   * page a developer happens to visit can drive the server through their browser, even by DNS
   * rebinding (a rebound name is neither listed nor an IP address).
   */
  mutationAllowed (request: RequestLike & { protocol?: string }): boolean {
    const origin = request.headers.origin
    if (origin === undefined) return true
    if (Array.isArray(origin)) return false
    const lower = origin.toLowerCase()
    if (this.origins !== '*' && this.origins.has(lower)) return true
    let url: URL
    try {
      url = new URL(lower)
    } catch {
      return false
    }
    let own: string
    try {
      own = new URL(`${request.protocol ?? 'http'}://${String(request.headers.host ?? '')}`).origin
    } catch {
      return false
    }
    return url.origin === own && isLocalOrIp(url.hostname)
  }

  /** `Authorization: Bearer <token>` or `?token=<token>`, compared in constant time. */
  authorized (request: RequestLike): boolean {
    if (this.#tokenDigest === undefined) return true
    const presented = presentedToken(request)
    // Hashing first makes both sides the same length, so timingSafeEqual never leaks the token's length.
    return presented !== undefined && timingSafeEqual(digest(presented), this.#tokenDigest)
  }
}

/** The token a request presents: `Authorization: Bearer <token>`, else `?token=<token>`. */
export function presentedToken (request: RequestLike): string | undefined {
  return bearer(request.headers.authorization) ?? queryToken(request.url)
}

function isLocalOrIp (hostname: string): boolean {
  return hostname === 'localhost' || /^\d{1,3}(\.\d{1,3}){3}$/.test(hostname) || hostname.startsWith('[')
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

/**
 * Pino's `req` serializer for echohub's routes: Fastify's request line with the `?token=` hidden,
 * so an app's default logger never writes a client's token.
 */
export function redactedRequest (req: { method: string, url: string, host?: string, ip?: string, socket?: { remotePort?: number } }): object {
  return { method: req.method, url: redactToken(req.url), host: req.host, remoteAddress: req.ip, remotePort: req.socket?.remotePort }
}

// A JWT's header always starts `{"` (base64url `eyJ`), so its three dot-separated parts are easy to spot.
const JWT_PATTERN = /eyJ[\w-]*\.[\w-]+\.[\w-]*/g

/** `text` with anything shaped like a JWT (a `refresh` frame's token, say) hidden, for log lines. */
export function redactJwts (text: string): string {
  return text.includes('eyJ') ? text.replace(JWT_PATTERN, '[redacted jwt]') : text
}
