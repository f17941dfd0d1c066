// Chat test plumbing: a client that has read its welcome, and a way to read up to a point.
import type { WebSocket, ClientOptions } from 'ws'
import type { Test } from 'tap'
import { connect, inboxOf, type Frame, type Inbox } from './index.js'

export type { Frame } from './index.js'

export interface ChatClient {
  ws: WebSocket
  inbox: Inbox
  clientId: number
  welcome: Frame
}

/** Connects to a chat endpoint and reads its welcome; terminated in teardown. */
export async function joinChat (t: Test, url: string, options?: ClientOptions): Promise<ChatClient> {
  const ws = await connect(t, url, options)
  const inbox = inboxOf(ws)
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

/** Sends one frame as JSON. */
export function send (client: ChatClient, frame: object): void {
  client.ws.send(JSON.stringify(frame))
}

/** The client's next frame that `match` accepts (the ones before it are passed over). */
export async function next (client: ChatClient, match: (f: Frame) => boolean): Promise<Frame> {
  for (;;) {
    const frame = await client.inbox.next()
    if (match(frame)) return frame
  }
}

export const ofType = (type: string) => (f: Frame) => f.type === type

/** Sends a frame and waits for the next frame of `type`. */
export async function ask (client: ChatClient, frame: object, type: string): Promise<Frame> {
  send(client, frame)
  return await next(client, ofType(type))
}
