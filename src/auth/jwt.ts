// Signed tokens (JWT), verified with `jose`: HS256 with a shared secret, or RS256/ES256 (ES384,
// ES512) with a PEM public key. The algorithm is pinned to the key, so neither an unsigned (`none`)
// token nor one HMAC-signed with the public key as its secret gets through.
import { createPublicKey, type KeyObject } from 'node:crypto'
import type { JWTPayload } from 'jose'
import { InvalidTokenError, TokenExpiredError } from '../errors.js'
import type { User } from './user.js'

export interface JwtOptions {
  /** HS256: the shared secret, at least 32 bytes (RFC 7518 wants a key as long as the hash). */
  secret?: string | Uint8Array
  /** RS256 / ES256 (ES384, ES512 for P-384, P-521 keys): the public key as PEM text or a KeyObject. */
  publicKey?: string | KeyObject
  /** When set, the token's `aud` must name it. */
  audience?: string
  /** When set, the token's `iss` must equal it. */
  issuer?: string
  /** Seconds of clock difference allowed on `nbf` (default 5); `exp` is held to this server's clock. */
  clockTolerance?: number
}

export interface JwtVerifier {
  /** The one algorithm tokens must be signed with. */
  readonly algorithm: string
  /** The token's user, or an InvalidTokenError / TokenExpiredError saying why not in plain words. */
  verify: (token: string) => Promise<User>
}

export const MIN_SECRET_BYTES = 32
export const DEFAULT_CLOCK_TOLERANCE = 5
const MAX_ID_LENGTH = 256
const MAX_NAME_LENGTH = 128

type Key = { key: KeyObject | Uint8Array, algorithm: string }

/** A PEM public key (a private key or certificate yields its public key) and the algorithm it is for; throws a plain-words Error otherwise. */
export function publicKeyFromPem (pem: string | KeyObject): Key {
  let key: KeyObject
  try {
    key = typeof pem === 'string' ? createPublicKey(pem) : pem.type === 'public' ? pem : createPublicKey(pem)
  } catch (err) {
    throw new Error(`is not a PEM public key (${(err as Error).message})`)
  }
  const details = key.asymmetricKeyDetails ?? {}
  if (key.asymmetricKeyType === 'rsa') {
    if ((details.modulusLength ?? 0) < 2048) throw new Error(`is a ${details.modulusLength ?? '?'}-bit RSA key; RS256 needs at least 2048 bits`)
    return { key, algorithm: 'RS256' }
  }
  if (key.asymmetricKeyType === 'ec') {
    const algorithm = { prime256v1: 'ES256', secp384r1: 'ES384', secp521r1: 'ES512' }[details.namedCurve ?? '']
    if (algorithm !== undefined) return { key, algorithm }
    throw new Error(`is an EC key on curve ${details.namedCurve ?? '?'}; use P-256 (ES256), P-384 or P-521`)
  }
  throw new Error(`is a ${key.asymmetricKeyType ?? 'unknown'} key; use an RSA (RS256) or EC P-256 (ES256) key`)
}

/** The HS256 key from a secret; throws a plain-words Error when it is too short to be safe. */
export function secretKey (secret: string | Uint8Array): Key {
  const key = typeof secret === 'string' ? new TextEncoder().encode(secret) : secret
  if (key.length < MIN_SECRET_BYTES) {
    throw new Error(`is ${key.length} bytes; HS256 needs a secret of at least ${MIN_SECRET_BYTES} bytes (e.g. openssl rand -hex 32)`)
  }
  return { key, algorithm: 'HS256' }
}

type Jose = typeof import('jose')
let jose: Promise<Jose> | undefined
/** `jose`, loaded at the first token rather than at start: a server without tokens never needs it. */
const loadJose = (): Promise<Jose> => (jose ??= import('jose'))

/** Builds a verifier; throws a plain-words Error naming the problem with the options. */
export function createJwtVerifier (options: JwtOptions): JwtVerifier {
  if ((options.secret === undefined) === (options.publicKey === undefined)) {
    throw new Error('give either secret (HS256) or publicKey (RS256/ES256), not both or neither')
  }
  const { key, algorithm } = options.secret !== undefined ? secretKey(options.secret) : publicKeyFromPem(options.publicKey!)
  const clockTolerance = options.clockTolerance ?? DEFAULT_CLOCK_TOLERANCE
  const verifyOptions = {
    algorithms: [algorithm],
    clockTolerance,
    requiredClaims: ['sub'],
    ...(options.audience === undefined ? {} : { audience: options.audience }),
    ...(options.issuer === undefined ? {} : { issuer: options.issuer })
  }
  return {
    algorithm,
    async verify (token: string): Promise<User> {
      const jose = await loadJose()
      let payload: JWTPayload
      try {
        ({ payload } = await jose.jwtVerify(token, key, verifyOptions))
      } catch (err) {
        throw refusal(jose, err, token, algorithm)
      }
      // jose allows `exp` the clock tolerance too; a connection's lifetime is held to this server's clock.
      if (payload.exp !== undefined && payload.exp * 1000 <= Date.now()) {
        throw new TokenExpiredError(`the token expired at ${new Date(payload.exp * 1000).toISOString()}`)
      }
      return userFromClaims(payload)
    }
  }
}

/** The user a verified token names; its claims are checked here, with plain-words refusals. */
export function userFromClaims (payload: JWTPayload): User {
  const { sub, name, rooms, admin, exp } = payload
  if (typeof sub !== 'string' || sub === '' || sub.length > MAX_ID_LENGTH) {
    throw new InvalidTokenError(`the token's "sub" (the user id) must be a string of 1 to ${MAX_ID_LENGTH} characters`)
  }
  if (name !== undefined && (typeof name !== 'string' || name.length > MAX_NAME_LENGTH)) {
    throw new InvalidTokenError(`the token's "name" must be a string of at most ${MAX_NAME_LENGTH} characters`)
  }
  if (rooms !== undefined && !(Array.isArray(rooms) && rooms.every((r) => typeof r === 'string' && r !== ''))) {
    throw new InvalidTokenError('the token\'s "rooms" must be a list of room names or patterns like "lab-*"')
  }
  if (admin !== undefined && typeof admin !== 'boolean') {
    throw new InvalidTokenError('the token\'s "admin" must be true or false')
  }
  const user: User = { id: sub }
  if (name !== undefined) user.name = name
  if (rooms !== undefined) user.rooms = rooms as string[]
  if (admin === true) user.admin = true
  if (exp !== undefined) user.expiresAt = exp * 1000
  return user
}

/** jose's error as the client is told it: which check failed, never the token itself. */
function refusal ({ errors, decodeProtectedHeader }: Jose, err: unknown, token: string, algorithm: string): Error {
  if (err instanceof errors.JWTExpired) {
    const exp = err.payload.exp
    return new TokenExpiredError(typeof exp === 'number' ? `the token expired at ${new Date(exp * 1000).toISOString()}` : 'the token has expired')
  }
  if (err instanceof errors.JOSEAlgNotAllowed) {
    return new InvalidTokenError(`the token is signed with ${headerAlgorithm(token, decodeProtectedHeader)}; this server accepts only ${algorithm}`)
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) {
    return new InvalidTokenError('the token\'s signature does not match this server\'s key')
  }
  if (err instanceof errors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case 'nbf': return new InvalidTokenError('the token is not valid yet (its "nbf" is in the future)')
      case 'aud': return new InvalidTokenError('the token is meant for another audience ("aud")')
      case 'iss': return new InvalidTokenError('the token comes from another issuer ("iss")')
      case 'sub': return new InvalidTokenError('the token has no "sub" (the user id)')
      default: return new InvalidTokenError(`the token's "${err.claim}" claim is invalid`)
    }
  }
  return new InvalidTokenError('the token is not a well-formed JWT (header.payload.signature, base64url)')
}

function headerAlgorithm (token: string, decodeProtectedHeader: Jose['decodeProtectedHeader']): string {
  try {
    const alg = decodeProtectedHeader(token).alg
    return typeof alg === 'string' ? JSON.stringify(alg.slice(0, 20)) : 'no algorithm'
  } catch {
    return 'an unreadable header'
  }
}
