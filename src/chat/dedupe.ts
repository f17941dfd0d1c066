// The keys of idempotent sends this process remembers: a message's target and key (with its
// sender's user id, identity on) to the numbers it was published with, for `dedupeWindow` ms, at
// most `maxKeys` of them, the oldest forgotten first.

/** What a remembered key maps to: the first message's numbers, and what they were numbered in. */
export interface Remembered<Scope> {
  id: number
  seq: number | null
  /** The room (or other scope) the numbers belong to: a key of a room since forgotten is no longer a repeat. */
  scope: Scope
  /** When it is forgotten (ms, Date.now()). */
  until: number
}

export class DedupeCache<Scope> {
  readonly #window: number
  readonly #maxKeys: number
  /** In insertion order, which is expiry order: the window is the same for every key. */
  readonly #keys = new Map<string, Remembered<Scope>>()
  /** Called with how many keys were forgotten before their window was over (the cap was reached). */
  readonly #onEvicted: (count: number) => void

  constructor (window: number, maxKeys: number, onEvicted: (count: number) => void) {
    this.#window = window
    this.#maxKeys = maxKeys
    this.#onEvicted = onEvicted
  }

  get size (): number {
    return this.#keys.size
  }

  /** Whether keys are remembered at all (a window and a cap above 0). */
  get enabled (): boolean {
    return this.#window > 0 && this.#maxKeys > 0
  }

  /** The numbers a key was first published with, if it was within the window in `scope`. */
  get (key: string, scope: Scope, now = Date.now()): Remembered<Scope> | undefined {
    const found = this.#keys.get(key)
    if (found === undefined) return undefined
    if (found.until <= now || found.scope !== scope) {
      this.#keys.delete(key)
      return undefined
    }
    return found
  }

  remember (key: string, id: number, seq: number | null, scope: Scope, now = Date.now()): void {
    if (!this.enabled) return
    this.#keys.delete(key)
    // The expired first, then, at the cap, the oldest still in their window.
    let evicted = 0
    for (const [k, entry] of this.#keys) {
      if (entry.until > now && this.#keys.size < this.#maxKeys) break
      this.#keys.delete(k)
      if (entry.until > now) evicted++
    }
    if (evicted > 0) this.#onEvicted(evicted)
    this.#keys.set(key, { id, seq, scope, until: now + this.#window })
  }

  clear (): void {
    this.#keys.clear()
  }
}
