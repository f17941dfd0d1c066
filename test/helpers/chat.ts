// Chat test plumbing: a client that queues every frame from the moment it is created, so frames
// that arrive in one TCP read (the welcome right behind the handshake, a burst of broadcasts) are
// never missed between two awaits.
import { WebSocket, type ClientOptions } from 'ws'
import type { Test } from 'tap'

// Frames are read loosely in tests: each test checks the exact shape it cares about.
export type Frame = Record<string, any>

export interface Incoming {
  text: string
  isBinary: boolean
  frame: Frame
}

export class Inbox {
  readonly received: Incoming[] = []
  #read = 0
  #waiter: (() => void) | undefined
  #closed: { code: number, reason: string } | undefined

  constructor (ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const text = data.toString()
      let frame: Frame = {}
      try {
        frame = JSON.parse(text) as Frame
      } catch {}
      this.received.push({ text, isBinary, frame })
      this.#waiter?.()
    })
    ws.on('close', (code: number, reason: Buffer) => {
      this.#closed = { code, reason: reason.toString() }
      this.#waiter?.()
    })
  }

  /** Frames received and not yet read. */
  get unread (): number {
    return this.received.length - this.#read
  }

  /** The next unread message, as text and parsed JSON. */
  async nextRaw (): Promise<Incoming> {
    while (this.#read === this.received.length) {
      if (this.#closed !== undefined) throw new Error(`closed with ${this.#closed.code} before a message arrived`)
      await new Promise<void>((resolve) => { this.#waiter = resolve })
      this.#waiter = undefined
    }
    return this.received[this.#read++]!
  }

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

export interface ChatClient {
  ws: WebSocket
  inbox: Inbox
  clientId: number
  welcome: Frame
}

/** Connects to a chat endpoint and reads its welcome; terminated in teardown. */
export async function joinChat (t: Test, url: string, options?: ClientOptions): Promise<ChatClient> {
  const ws = new WebSocket(url, options)
  const inbox = new Inbox(ws)
  t.teardown(() => ws.terminate())
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })
  const welcome = await inbox.next()
  if (welcome.type !== 'welcome') throw new Error(`expected a welcome first, got ${JSON.stringify(welcome)}`)
  return { ws, inbox, clientId: welcome.payload.client_id as number, welcome }
}

/**
 * Sends a ping and reads up to its pong: what the client received in between. The server answers
 * in order, so anything meant for this client before the ping is in the returned list.
 */
export async function drain (client: ChatClient): Promise<Frame[]> {
  client.ws.send('{"type":"ping"}')
  const before: Frame[] = []
  for (;;) {
    const frame = await client.inbox.next()
    if (frame.type === 'pong') return before
    before.push(frame)
  }
}
