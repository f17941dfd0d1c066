// Identity on echohub's routes: who each upgrade and admin request comes from, through one
// `authenticate(request)` function. Signed tokens are echohub's own implementation of it; a host
// app's session cookie or API key table plugs in the same way.
import { InvalidTokenError, TokenExpiredError } from '../errors.js'
import { presentedToken, type RequestLike } from './access.js'
import type { JwtVerifier } from './jwt.js'
import type { Authenticate, User } from './user.js'

export interface Identity<Request = unknown> {
  /** Who the request comes from; throws for a `401`. */
  authenticate: Authenticate<Request>
  /** Checks a token sent in-band (a chat `refresh`); absent: connections cannot be extended in-band. */
  refresh: ((token: string) => Promise<User>) | undefined
}

/** A 401 as the client is told it. */
export interface AuthRefusal {
  status: 401
  error: 'invalid_token' | 'token_expired'
  message: string
}

export const JWT_REQUIRED = 'a signed token (JWT) is required: send "Authorization: Bearer <jwt>" or ?token=<jwt>'

/** The JWT check as an Identity: the token from `Authorization: Bearer` or `?token=`, verified. */
export function jwtIdentity (verifier: JwtVerifier): Identity<RequestLike> {
  return {
    async authenticate (request) {
      const token = presentedToken(request)
      if (token === undefined) throw new InvalidTokenError(JWT_REQUIRED)
      return await verifier.verify(token)
    },
    refresh: verifier.verify
  }
}

/**
 * Runs `authenticate` and checks what it returns, so a host app's function that returns something
 * malformed cannot put it in every frame. A refusal carries a plain message: the thrown error's
 * own for echohub's token errors, a generic one for anything else (it may hold internals).
 */
export async function identify<Request> (identity: Identity<Request>, request: Request): Promise<{ user: User } | { refusal: AuthRefusal, cause: unknown }> {
  let user: User
  try {
    user = checkedUser(await identity.authenticate(request))
  } catch (err) {
    return { refusal: authRefusal(err), cause: err }
  }
  if (user.expiresAt !== undefined && user.expiresAt <= Date.now()) {
    return { refusal: { status: 401, error: 'token_expired', message: 'the credentials have expired' }, cause: undefined }
  }
  return { user }
}

/** The 401 body for an error thrown by `authenticate` (or a `refresh` check). */
export function authRefusal (err: unknown): AuthRefusal {
  if (err instanceof TokenExpiredError) return { status: 401, error: 'token_expired', message: err.message }
  if (err instanceof InvalidTokenError) return { status: 401, error: 'invalid_token', message: err.message }
  return { status: 401, error: 'invalid_token', message: 'the credentials were refused' }
}

/** `authenticate`'s (or a refresh check's) result, or a TypeError saying what is wrong with it. */
export function checkedUser (value: unknown): User {
  const u = value as Partial<User> | null
  const fail = (what: string) => new TypeError(`authenticate returned ${what}`)
  if (u === null || typeof u !== 'object') throw fail('no user object')
  if (typeof u.id !== 'string' || u.id === '') throw fail('a user without a string "id"')
  if (u.name !== undefined && typeof u.name !== 'string') throw fail('a "name" that is not a string')
  if (u.rooms !== undefined && !(Array.isArray(u.rooms) && u.rooms.every((r) => typeof r === 'string'))) throw fail('"rooms" that are not a list of strings')
  if (u.admin !== undefined && typeof u.admin !== 'boolean') throw fail('an "admin" that is not true or false')
  if (u.expiresAt !== undefined && !Number.isFinite(u.expiresAt)) throw fail('an "expiresAt" that is not a time in ms')
  const user: User = { id: u.id }
  if (u.name !== undefined) user.name = u.name
  if (u.rooms !== undefined) user.rooms = [...u.rooms]
  if (u.admin === true) user.admin = true
  if (u.expiresAt !== undefined) user.expiresAt = u.expiresAt
  return user
}
