// Signed tokens for tests, made with jose as any issuer outside echohub would make them.
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { SignJWT, type JWTPayload } from 'jose'

/** An HS256 secret long enough for echohub (32 bytes or more). */
export const SECRET = 'test-secret-of-at-least-thirty-two-bytes!'

export interface KeyPair {
  privateKey: KeyObject
  publicKey: KeyObject
  /** The public key as PEM text, as a --jwt-public-key file holds it. */
  publicPem: string
}

export function rsaKeyPair (): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  return { privateKey, publicKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() }
}

export function ecKeyPair (namedCurve = 'P-256'): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve })
  return { privateKey, publicKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() }
}

/** Seconds since the epoch, as `exp`/`nbf` count. */
export const now = (): number => Math.floor(Date.now() / 1000)

/**
 * Signs `claims` (exp defaults to an hour ahead; pass `exp: undefined` for none) with HS256 and
 * SECRET unless `key`/`alg` say otherwise.
 */
export async function token (claims: JWTPayload, key: KeyObject | Uint8Array | string = SECRET, alg = 'HS256'): Promise<string> {
  const body: JWTPayload = { exp: now() + 3600, ...claims }
  if (body.exp === undefined) delete body.exp
  const signingKey = typeof key === 'string' ? new TextEncoder().encode(key) : key
  return await new SignJWT(body).setProtectedHeader({ alg, typ: 'JWT' }).sign(signingKey)
}

/** An unsigned token (`alg: none`), which no server should accept. */
export function unsignedToken (claims: JWTPayload): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url')
  return `${part({ alg: 'none', typ: 'JWT' })}.${part({ exp: now() + 3600, ...claims })}.`
}
