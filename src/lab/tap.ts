// Sees one WebSocket's frames both ways while an inspector watches it. Attached and detached at
// run time: it shadows the socket's own send/ping/pong/close and listens to its events, so a socket
// nobody watches runs ws's methods untouched and pays nothing.
import type { WebSocket } from 'ws'

export type FrameOpcode = 'text' | 'binary' | 'continuation' | 'ping' | 'pong' | 'close'

/** One frame as the inspector shows it. */
export interface FrameEvent {
  dir: 'in' | 'out'
  opcode: FrameOpcode
  /** Payload bytes of the whole frame (or message, for what ws hands over assembled). */
  size: number
  /** False on a fragment that more of its message follows. */
  fin: boolean
  /** The first PREVIEW_BYTES bytes: text for text frames and close reasons, hex otherwise. */
  text?: string
  hex?: string
  /** Close frames: the code. */
  code?: number
  /** The payload was longer than what is shown. */
  truncated: boolean
}

/** What an inspector shows of a frame at most. */
export const PREVIEW_BYTES = 1024

type Data = string | Buffer | ArrayBuffer | ArrayBufferView
type SendCallback = (err?: Error) => void
type SendOptions = { binary?: boolean, fin?: boolean, compress?: boolean, mask?: boolean }

function toBuffer (data: Data | undefined): Buffer {
  if (data === undefined) return Buffer.alloc(0)
  if (typeof data === 'string') return Buffer.from(data)
  if (Buffer.isBuffer(data)) return data
  if (data instanceof ArrayBuffer) return Buffer.from(data)
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength)
}

/** A frame event for `data`: text decoded, anything else in hex, cut at PREVIEW_BYTES. */
export function frameEvent (dir: FrameEvent['dir'], opcode: FrameOpcode, data: Buffer, fin = true, asText = opcode === 'text'): FrameEvent {
  const shown = data.length > PREVIEW_BYTES ? data.subarray(0, PREVIEW_BYTES) : data
  const event: FrameEvent = { dir, opcode, size: data.length, fin, truncated: data.length > PREVIEW_BYTES }
  if (asText) event.text = shown.toString()
  else event.hex = shown.toString('hex')
  return event
}

function closeEvent (dir: FrameEvent['dir'], code: number | undefined, reason: string | Buffer | undefined): FrameEvent {
  const text = reason === undefined ? '' : reason.toString()
  const size = code === undefined ? 0 : 2 + Buffer.byteLength(text)
  const event: FrameEvent = { dir, opcode: 'close', size, fin: true, text, truncated: false }
  if (code !== undefined) event.code = code
  return event
}

const OPEN = 1

/**
 * Taps one socket until `detach()`. Messages arrive assembled from ws, so an incoming fragmented
 * message shows as one event; outgoing fragments (the lab's `fragment`) show frame by frame.
 */
export class FrameTap {
  readonly #socket: WebSocket
  readonly #emit: (event: FrameEvent) => void
  #midMessage = false
  /** ws answers a ping before it emits it: the pong waits for the ping's event to show after it. */
  #pong: FrameEvent | undefined
  readonly #onMessage: (data: Buffer, isBinary: boolean) => void
  readonly #onPing: (data: Buffer) => void
  readonly #onPong: (data: Buffer) => void
  readonly #onClose: (code: number, reason: Buffer) => void

  /** `ended` is called after the close event, when the socket has closed. */
  constructor (socket: WebSocket, emit: (event: FrameEvent) => void, ended?: () => void) {
    this.#socket = socket
    this.#emit = emit
    this.#onMessage = (data, isBinary) => emit(frameEvent('in', isBinary ? 'binary' : 'text', data))
    this.#onPing = (data) => {
      emit(frameEvent('in', 'ping', data))
      this.#flushPong()
    }
    this.#onPong = (data) => emit(frameEvent('in', 'pong', data))
    this.#onClose = (code, reason) => {
      emit(closeEvent('in', code, reason))
      ended?.()
    }
    // Before the endpoint's own listener: a message shows before the reply it causes.
    socket.prependListener('message', this.#onMessage)
    socket.on('ping', this.#onPing)
    socket.on('pong', this.#onPong)
    socket.on('close', this.#onClose)
    const tap = this
    const proto = Object.getPrototypeOf(socket) as WebSocket
    const shadow = socket as unknown as Record<string, unknown>
    shadow.send = function send (data: Data, options?: SendOptions | SendCallback, cb?: SendCallback) {
      if (typeof options === 'function') {
        cb = options
        options = undefined
      }
      if (socket.readyState === OPEN) tap.#sent(data, options)
      return proto.send.call(socket, data as Buffer, options ?? {}, cb)
    }
    shadow.ping = function ping (data?: Data, mask?: boolean, cb?: SendCallback) {
      if (socket.readyState === OPEN) emit(frameEvent('out', 'ping', toBuffer(data)))
      return proto.ping.call(socket, data, mask, cb)
    }
    shadow.pong = function pong (data?: Data, mask?: boolean, cb?: SendCallback) {
      if (socket.readyState === OPEN) {
        tap.#flushPong()
        tap.#pong = frameEvent('out', 'pong', toBuffer(data))
        queueMicrotask(() => tap.#flushPong())
      }
      return proto.pong.call(socket, data, mask, cb)
    }
    shadow.close = function close (code?: number, reason?: string | Buffer) {
      if (socket.readyState === OPEN) emit(closeEvent('out', code, reason))
      return proto.close.call(socket, code, reason)
    }
  }

  #flushPong (): void {
    const pong = this.#pong
    if (pong === undefined) return
    this.#pong = undefined
    this.#emit(pong)
  }

  #sent (data: Data, options: SendOptions | undefined): void {
    const bytes = toBuffer(data)
    const binary = options?.binary ?? typeof data !== 'string'
    const fin = options?.fin ?? true
    const opcode: FrameOpcode = this.#midMessage ? 'continuation' : binary ? 'binary' : 'text'
    this.#midMessage = !fin
    this.#emit(frameEvent('out', opcode, bytes, fin, !binary))
  }

  /** Gives the socket back its own methods and listeners. */
  detach (): void {
    const socket = this.#socket
    const shadow = socket as unknown as Record<string, unknown>
    delete shadow.send
    delete shadow.ping
    delete shadow.pong
    delete shadow.close
    socket.removeListener('message', this.#onMessage)
    socket.removeListener('ping', this.#onPing)
    socket.removeListener('pong', this.#onPong)
    socket.removeListener('close', this.#onClose)
  }
}
