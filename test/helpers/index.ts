// Shared test plumbing: apps on 127.0.0.1 port 0 closed in teardown, ws clients, and awaitable events.
import Fastify, { type FastifyInstance } from 'fastify'
import { WebSocket, type ClientOptions } from 'ws'
import type { Test } from 'tap'

/** Builds an app, lets `setup` register plugins, listens on 127.0.0.1:0 and closes it in teardown. */
export async function listen (t: Test, setup: (app: FastifyInstance) => Promise<void>): Promise<{ app: FastifyInstance, port: number, url: string }> {
  const app = Fastify({ logger: false })
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
  inbox(ws)
  t.teardown(() => ws.terminate())
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })
  return ws
}

export interface Received {
  data: Buffer
  isBinary: boolean
  text: string
}

interface Inbox {
  queue: Received[]
  waiting: Array<{ resolve: (m: Received) => void, reject: (e: Error) => void }>
  closeCode: number | undefined
}
const inboxes = new WeakMap<WebSocket, Inbox>()

/**
 * Queues a socket's messages as they arrive. A frame sent right after the handshake can be
 * delivered before an `await connect()` resumes, so listening late would lose it.
 */
function inbox (ws: WebSocket): Inbox {
  let box = inboxes.get(ws)
  if (box !== undefined) return box
  const created: Inbox = { queue: [], waiting: [], closeCode: undefined }
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    const m = { data, isBinary, text: data.toString() }
    const waiter = created.waiting.shift()
    if (waiter !== undefined) waiter.resolve(m)
    else created.queue.push(m)
  })
  ws.on('close', (code: number) => {
    created.closeCode = code
    for (const w of created.waiting.splice(0)) w.reject(new Error(`closed with ${code} before a message arrived`))
  })
  inboxes.set(ws, created)
  box = created
  return box
}

/** The next message a socket receives (including ones that arrived before this call). */
export function nextMessage (ws: WebSocket): Promise<Received> {
  const box = inbox(ws)
  const queued = box.queue.shift()
  if (queued !== undefined) return Promise.resolve(queued)
  if (box.closeCode !== undefined) return Promise.reject(new Error(`closed with ${box.closeCode}`))
  return new Promise((resolve, reject) => box.waiting.push({ resolve, reject }))
}

/** The next message, parsed as JSON. */
export async function nextJson (ws: WebSocket): Promise<Record<string, unknown>> {
  return JSON.parse((await nextMessage(ws)).text) as Record<string, unknown>
}

/** Resolves with the close code and reason once the socket is closed. */
export function closed (ws: WebSocket): Promise<{ code: number, reason: string }> {
  if (ws.readyState === ws.CLOSED) return Promise.resolve({ code: -1, reason: 'already closed' })
  return new Promise((resolve) => ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() })))
}

/** Resolves once `check` is true, re-checking whenever the app's registry changes a connection. */
export async function until (check: () => boolean, what: string, ms = 5000): Promise<void> {
  const started = Date.now()
  while (!check()) {
    if (Date.now() - started > ms) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setImmediate(resolve))
  }
}
