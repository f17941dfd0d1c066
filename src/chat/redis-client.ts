// The ioredis client echohub may be handed (a RedisAdapter's target, the chat plugin's `adapter`),
// typed by the little echohub uses of it, so echohub's published types import none of ioredis's: a
// strict consumer (skipLibCheck off) is not made to compile ioredis's own declarations.

/**
 * An ioredis client (`new Redis(...)` fits): echohub reads where it connects and duplicates it,
 * giving the copies its own settings; the client itself is left alone.
 */
export interface RedisClient {
  readonly options: { readonly host?: string | undefined, readonly port?: number | undefined }
  duplicate (override?: object): unknown
  subscribe (...args: never[]): unknown
}

/** Whether `value` looks like an ioredis client (it can duplicate itself and subscribe). */
export function isRedisClient (value: unknown): value is RedisClient {
  const client = value as Partial<Record<'duplicate' | 'subscribe' | 'options', unknown>> | null
  return client !== null && typeof client === 'object' && typeof client.duplicate === 'function' && typeof client.subscribe === 'function' && typeof client.options === 'object'
}
