// echohub/client in tests: echohub as `npm start` builds it (on 127.0.0.1, closed in teardown),
// clients closed in teardown, a way to wait for a client's next event, and the lab's drop action.
import type { Test } from 'tap'
import { pino } from 'pino'
import { WebSocket } from 'ws'
import { parseConfig, startEchohub, type Echohub } from '../../index.js'
import { connect, type ChatClient, type ChatEvents, type ConnectOptions, type SocketEvent, type WebSocketLike } from '../../src/client/index.js'

export interface Hub {
  hub: Echohub
  port: number
  ws: string
  http: string
  /** Closes it now (teardown then does nothing). */
  close: () => Promise<void>
}

/** `echohub --only chat <args>` on 127.0.0.1, logging nothing; closed in teardown. */
export async function startChat (t: Test, args: string[] = []): Promise<Hub> {
  const parsed = parseConfig(['--host', '127.0.0.1', '--log-level', 'silent', '--only', 'chat', '--chat-port', '0', ...args], {})
  if (parsed.help) throw new Error('unexpected --help')
  const hub = await startEchohub(parsed.config, { logger: pino({ level: 'silent' }) })
  let closed: Promise<void> | undefined
  const close = async () => { closed ??= hub.close(); await closed }
  t.teardown(close)
  const port = hub.servers.find((s) => s.name === 'chat')!.port
  return { hub, port, ws: `ws://127.0.0.1:${port}/ws`, http: `http://127.0.0.1:${port}`, close }
}

/** A client (reconnecting after 50 ms rather than 1 s, so tests stay short), closed in teardown. */
export function client (t: Test, url: string | (() => string), options: ConnectOptions = {}): ChatClient {
  const chat = connect(url, { reconnectDelay: 50, maxReconnectDelay: 400, ...options })
  t.teardown(() => chat.close())
  return chat
}

/** The next `event` of `chat` that `match` accepts (within `ms`). */
export async function next<E extends keyof ChatEvents> (chat: ChatClient, event: E, match: (value: Parameters<ChatEvents[E]>[0]) => boolean = () => true, ms = 10_000): Promise<Parameters<ChatEvents[E]>[0]> {
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => { off(); reject(new Error(`timed out waiting for a ${event} event`)) }, ms)
    const off = chat.on(event, ((value: Parameters<ChatEvents[E]>[0]) => {
      if (!match(value)) return
      clearTimeout(timer)
      off()
      resolve(value)
    }) as ChatEvents[E])
  })
}

/** Resolves once the client is open (at once if it is). */
export async function opened (chat: ChatClient): Promise<number> {
  if (chat.state.state === 'open') return chat.clientId!
  const state = await next(chat, 'state', (s) => s.state === 'open')
  return state.state === 'open' ? state.clientId : 0
}

/** The lab's drop action on a connection: its TCP ends with no close frame. */
export async function drop (http: string, clientId: number): Promise<void> {
  const res = await fetch(`${http}/connections/${clientId}/drop`, { method: 'POST' })
  if (res.status !== 202) throw new Error(`drop answered ${res.status}: ${await res.text()}`)
}

/**
 * A `ws` socket that loses the server's acks while `lossy()` says so: what a client sees when its
 * connection dies after the server took a message and before the ack arrived.
 */
export function losingAcks (lossy: () => boolean): new (url: string) => WebSocketLike {
  return class LossySocket implements WebSocketLike {
    readonly #ws: WebSocket
    readonly #lossy = lossy()
    constructor (url: string) {
      this.#ws = new WebSocket(url)
    }

    get readyState (): number {
      return this.#ws.readyState
    }

    send (data: string): void {
      this.#ws.send(data)
    }

    close (code?: number, reason?: string): void {
      this.#ws.close(code, reason)
    }

    addEventListener (type: 'open' | 'message' | 'close' | 'error', listener: (event: SocketEvent) => void): void {
      if (type !== 'message') {
        this.#ws.addEventListener(type, listener)
        return
      }
      this.#ws.addEventListener('message', (event) => {
        if (this.#lossy && String(event.data).startsWith('{"type":"ack"')) return
        listener(event)
      })
    }
  }
}
