// Shared test plumbing: apps on 127.0.0.1 port 0 closed in teardown, ws clients, and awaitable events.
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { WebSocket, type ClientOptions } from 'ws'
import type { Test } from 'tap'

/** Builds an app (with `options`), lets `setup` register plugins, listens on 127.0.0.1:0 and closes it in teardown. */
export async function listen (t: Test, setup: (app: FastifyInstance) => Promise<void>, options: FastifyServerOptions = {}): Promise<{ app: FastifyInstance, port: number, url: string }> {
  const app = Fastify({ logger: false, ...options })
  t.teardown(() => app.close())
  await setup(app)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('not listening on a port')
  return { app, port: address.port, url: `ws://127.0.0.1:${address.port}` }
}

/** Opens a ws client and waits until it is open; terminated in teardown. Messages are queued from the start. */
export async function connect (t: Test, url: string, options?: ClientOptions): Promise<WebSocket> {
  const ws = new WebSocket(url, options)
  inboxOf(ws)
  t.teardown(() => ws.terminate())
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })
  return ws
}

// Frames are read loosely in tests: each test checks the exact shape it cares about.
export type Frame = Record<string, any>

export interface Received {
  data: Buffer
  isBinary: boolean
  text: string
  /** The text parsed as JSON ({} when it is not JSON). */
  frame: Frame
}

/**
 * Queues a socket's messages as they arrive. A frame sent right after the handshake (a welcome)
 * or several in one TCP read can be delivered before an awaiting test resumes, so listening late
 * would lose them.
 */
export class Inbox {
  readonly received: Received[] = []
  #read = 0
  #waiter: (() => void) | undefined
  #closed: { code: number, reason: string } | undefined

  constructor (ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const text = data.toString()
      let frame: Frame = {}
      if (!isBinary) {
        try {
          frame = JSON.parse(text) as Frame
        } catch {}
      }
      this.received.push({ data, isBinary, text, frame })
      this.#waiter?.()
    })
    ws.on('close', (code: number, reason: Buffer) => {
      this.#closed = { code, reason: reason.toString() }
      this.#waiter?.()
    })
  }

  /** Messages received and not yet read. */
  get unread (): number {
    return this.received.length - this.#read
  }

  /** The next unread message. */
  async nextRaw (): Promise<Received> {
    while (this.#read === this.received.length) {
      if (this.#closed !== undefined) throw new Error(`closed with ${this.#closed.code} before a message arrived`)
      await new Promise<void>((resolve) => { this.#waiter = resolve })
      this.#waiter = undefined
    }
    return this.received[this.#read++]!
  }

  /** The next unread message, parsed as JSON. */
  async next (): Promise<Frame> {
    return (await this.nextRaw()).frame
  }

  /** Resolves with the close code and reason once the socket is closed. */
  async closed (): Promise<{ code: number, reason: string }> {
    while (this.#closed === undefined) {
      await new Promise<void>((resolve) => { this.#waiter = resolve })
      this.#waiter = undefined
    }
    return this.#closed
  }
}

const inboxes = new WeakMap<WebSocket, Inbox>()

/** The socket's inbox, created on first use (connect() creates it before the socket opens). */
export function inboxOf (ws: WebSocket): Inbox {
  let inbox = inboxes.get(ws)
  if (inbox === undefined) {
    inbox = new Inbox(ws)
    inboxes.set(ws, inbox)
  }
  return inbox
}

/** The next message a socket receives (including ones that arrived before this call). */
export function nextMessage (ws: WebSocket): Promise<Received> {
  return inboxOf(ws).nextRaw()
}

/** The next message, parsed as JSON. */
export async function nextJson (ws: WebSocket): Promise<Frame> {
  return JSON.parse((await nextMessage(ws)).text) as Frame
}

/** Resolves with the close code and reason once the socket is closed. */
export function closed (ws: WebSocket): Promise<{ code: number, reason: string }> {
  return inboxOf(ws).closed()
}

/** Resolves once `check` is true, re-checking whenever the app's registry changes a connection. */
export async function until (check: () => boolean, what: string, ms = 5000): Promise<void> {
  const started = Date.now()
  while (!check()) {
    if (Date.now() - started > ms) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setImmediate(resolve))
  }
}

/** Polls an async condition (state with no event to wait on, such as a room's expiry). */
export async function eventually (check: () => Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
