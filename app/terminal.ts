// The CLI's output, written so that losing the terminal ends echohub instead of breaking it. When
// the terminal window closes, writes to it fail (EIO) and Node, at exit, fails to restore the
// terminal's settings: the process then crashed into a loop of signals, 10,000 failed read() calls
// a second, deaf to SIGTERM. Here a failed write silences the log and asks for a shutdown, a
// terminal that hangs up without a SIGHUP reaching echohub is noticed within a second, and the
// standard descriptors of a terminal that has gone are closed before exiting.
import { closeSync } from 'node:fs'
import { isatty } from 'node:tty'
import { pino, type DestinationStream } from 'pino'

/** How often an idle server checks that its terminal is still there, in ms. */
const CHECK_EVERY_MS = 1000

/** What losing the terminal looks like to a write on it. */
const GONE = new Set(['EIO', 'ENXIO', 'EPIPE', 'EBADF'])

export class Terminal {
  /** The standard descriptors that were a terminal at start; a hung-up terminal is no longer one. */
  readonly #ttys = [0, 1, 2].filter((fd) => isatty(fd))
  #gone = false
  #onGone: (() => void) | undefined
  #timer: NodeJS.Timeout | undefined

  /** Whether the output was lost (the terminal went away, or the reader of a pipe left). */
  get gone (): boolean {
    return this.#gone
  }

  /**
   * The log's destination: stdout, written synchronously (a log line is out before the next one
   * starts), dropping everything once stdout has failed.
   */
  destination (): DestinationStream {
    const out = pino.destination({ dest: 1, sync: true })
    out.on('error', (err: NodeJS.ErrnoException) => this.#lost(err))
    return { write: (line: string) => { if (!this.#gone) out.write(line) } }
  }

  /**
   * Calls `onGone` once when the output is lost or the terminal hangs up: at the first failed
   * write, or, while nothing is logged, at the next check of the descriptors that were a terminal.
   */
  watch (onGone: () => void): void {
    this.#onGone = onGone
    if (this.#gone) return onGone()
    if (this.#ttys.length === 0) return
    this.#timer = setInterval(() => {
      if (this.#hungUp().length > 0) this.#lost({ code: 'EIO' } as NodeJS.ErrnoException)
    }, CHECK_EVERY_MS)
    this.#timer.unref()
  }

  /**
   * Before exiting: with the terminal gone, closes the standard descriptors that were on it, so
   * Node's exit does not try to restore the settings of a terminal that no longer exists (it
   * asserts on the EIO and aborts).
   */
  release (): void {
    clearInterval(this.#timer)
    for (const fd of this.#hungUp()) {
      try {
        closeSync(fd)
      } catch {}
    }
  }

  /** The descriptors that were a terminal at start and are none now. */
  #hungUp (): number[] {
    return this.#ttys.filter((fd) => !isatty(fd))
  }

  #lost (err: NodeJS.ErrnoException): void {
    if (this.#gone || (err.code !== undefined && !GONE.has(err.code))) return
    this.#gone = true
    clearInterval(this.#timer)
    this.#onGone?.()
  }
}
