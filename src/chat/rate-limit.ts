// A token bucket: `rate` tokens per second, at most `burst` saved up. It keeps no timer: each
// take() refills by the time elapsed since the last one, so an idle connection costs nothing.

export class TokenBucket {
  readonly rate: number
  readonly burst: number
  #tokens: number
  #at: number

  /** `rate` per second; `burst` is also the starting balance. */
  constructor (rate: number, burst: number, now = performance.now()) {
    this.rate = rate
    this.burst = burst
    this.#tokens = burst
    this.#at = now
  }

  /** Takes one token if there is one. `now` in milliseconds, monotonic. */
  take (now = performance.now()): boolean {
    const elapsed = now - this.#at
    this.#at = now
    if (elapsed > 0) this.#tokens = Math.min(this.burst, this.#tokens + elapsed * this.rate / 1000)
    if (this.#tokens < 1) return false
    this.#tokens -= 1
    return true
  }
}
