// Slow requests: every socket a server accepts has until a deadline, from accept (its TLS handshake
// included), to complete its first request's headers, or it is closed; meanwhile it counts, by its
// peer address, against the per-address cap. Node's own `headersTimeout` is checked only every
// `connectionsCheckingInterval` (30 s), from a request's first byte, never during a TLS handshake,
// so a socket that trickles its headers, or sends nothing, stays open for as long as it likes.
import type { Server as HttpServer, IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import { plainAddress } from '../format.js'

/** One accepted socket still waiting for its headers. */
interface Pending {
  socket: Socket
  address: string
  /** The socket's address and port, as `handshaking` knows it (a closed socket no longer tells). */
  key: string
  timer: NodeJS.Timeout
  /** The TLS socket over it, once the handshake is done. */
  secure?: Socket
  done: boolean
}

export interface HeadersWatchOptions {
  /** ms from accept to complete headers. */
  timeout: number
  /** A socket ran out of time; it is destroyed right after. */
  expired: (address: string, port: number | undefined) => void
}

/** One watched server. */
export interface HeadersWatch {
  /** This socket's request headers are complete (an upgrade's, say): its deadline is off. */
  complete: (socket: Socket) => void
  /** Stops watching the server; its sockets still waiting are no longer counted. */
  stop: () => void
}

/** The sockets of some servers (one registry's) that have not sent complete headers yet. */
export class HeadersDeadline {
  readonly #byAddress = new Map<string, number>()

  /** Sockets from this address waiting for their headers (any server watched). */
  pendingFrom (address: string): number {
    return this.#byAddress.get(plainAddress(address)) ?? 0
  }

  /** Sockets waiting for their headers, from every address. */
  get pending (): number {
    let n = 0
    for (const count of this.#byAddress.values()) n += count
    return n
  }

  /**
   * Watches an HTTP or HTTPS server's sockets from now on. A plain request's headers are seen
   * complete by the server's `request` event; an upgrade's must be reported with `complete`
   * (from a hook every upgrade passes), since a listener of the server's `upgrade` event would
   * change how Node treats upgrades where there was none.
   */
  watch (server: HttpServer, options: HeadersWatchOptions): HeadersWatch {
    const { timeout, expired } = options
    const bySocket = new WeakMap<Socket, Pending>()
    // A TLS socket is not its TCP socket, and Node gives no public link from one to the other; a
    // live connection's address and port name both.
    const handshaking = new Map<string, Pending>()
    const key = (socket: Socket) => `${socket.remoteAddress ?? ''}|${socket.remotePort ?? ''}`

    const finish = (pending: Pending): void => {
      if (pending.done) return
      pending.done = true
      clearTimeout(pending.timer)
      handshaking.delete(pending.key)
      const left = (this.#byAddress.get(pending.address) ?? 1) - 1
      if (left === 0) this.#byAddress.delete(pending.address)
      else this.#byAddress.set(pending.address, left)
    }

    const onConnection = (socket: Socket): void => {
      if (socket.destroyed) return
      const address = plainAddress(socket.remoteAddress)
      const pending: Pending = { socket, address, key: key(socket), done: false, timer: undefined as unknown as NodeJS.Timeout }
      pending.timer = setTimeout(() => {
        if (pending.done) return
        finish(pending)
        expired(address, socket.remotePort)
        pending.secure?.destroy()
        socket.destroy()
      }, timeout)
      pending.timer.unref()
      this.#byAddress.set(address, (this.#byAddress.get(address) ?? 0) + 1)
      bySocket.set(socket, pending)
      handshaking.set(pending.key, pending)
      socket.once('close', () => finish(pending))
    }
    const onSecure = (secure: Socket): void => {
      const pending = handshaking.get(key(secure))
      if (pending === undefined) return
      handshaking.delete(pending.key)
      pending.secure = secure
      bySocket.set(secure, pending)
    }
    const complete = (socket: Socket): void => {
      const pending = bySocket.get(socket)
      if (pending !== undefined) finish(pending)
    }
    const onRequest = (request: IncomingMessage): void => complete(request.socket)

    // First in line: the headers are complete before any route (and admission) sees them.
    server.prependListener('connection', onConnection)
    server.prependListener('secureConnection', onSecure)
    server.prependListener('request', onRequest)
    // Later requests on a kept-alive socket: Node's own check, however late, with the same bound.
    server.headersTimeout = Math.min(server.headersTimeout, timeout)
    return {
      complete,
      stop () {
        server.removeListener('connection', onConnection)
        server.removeListener('secureConnection', onSecure)
        server.removeListener('request', onRequest)
        for (const pending of handshaking.values()) finish(pending)
      }
    }
  }
}

const deadlines = new WeakMap<object, HeadersDeadline>()

/** The HeadersDeadline of a registry (any object standing for one process's caps), made on first use. */
export function headersDeadline (owner: object): HeadersDeadline {
  let deadline = deadlines.get(owner)
  if (deadline === undefined) {
    deadline = new HeadersDeadline()
    deadlines.set(owner, deadline)
  }
  return deadline
}
