// Who a client is when identity is on: what an `authenticate` function returns, and how it shows
// in frames. Framework-free, so the chat core and the registry share one definition.
import type { ChatUser } from '../chat/adapter.js'

export interface User {
  /** The user id (a JWT's `sub`). */
  id: string
  /** Display name; absent when the credentials carry none. */
  name?: string
  /** Rooms this user may join, `*` matching any run of characters; absent: any room. */
  rooms?: readonly string[]
  /** May use the admin routes (`/stats`, `/connections`, `POST /publish`, ...). */
  admin?: boolean
  /** When the credentials stop being valid, in ms since the epoch: the connection is closed with 4401 then. */
  expiresAt?: number
}

/**
 * Decides who a request comes from: returns the user, or throws for a `401` (an InvalidTokenError
 * or TokenExpiredError says which; any other error is refused as `invalid_token`).
 */
export type Authenticate<Request = unknown> = (request: Request) => User | Promise<User>

/** The part of a user every frame that names a client shows: `{"id":..,"name":..}`, keys in that order. */
export function publicUser (user: User): ChatUser {
  return user.name === undefined ? { id: user.id } : { id: user.id, name: user.name }
}

/** The close code and reason of a connection whose credentials expired. */
export const TOKEN_EXPIRED_CODE = 4401
export const TOKEN_EXPIRED_REASON = 'token expired'
