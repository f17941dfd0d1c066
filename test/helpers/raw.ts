// A raw WebSocket client on a plain TCP socket, for what a client library would hide or refuse to
// do: unmasked frames, invalid UTF-8, never answering pings, never reading. The framing is the
// bench's (bench/raw-ws.ts); this adds the test's teardown.
import type { Test } from 'tap'
import { encodeFrame, FrameReader as WireFrameReader, isUpgraded, upgrade, type HttpAnswer, type ServerFrame, type Upgraded } from '../../bench/raw-ws.js'

export { isUpgraded, type HttpAnswer, type ServerFrame, type Upgraded }

/** Sends an upgrade request; resolves with the socket on 101, or the HTTP answer otherwise. */
export async function rawUpgrade (t: Test, port: number, path = '/', headers: Record<string, string> = {}): Promise<Upgraded | HttpAnswer> {
  return await upgrade(port, path, { headers, onSocket: (socket) => t.teardown(() => socket.destroy()) })
}

/** One client frame: FIN set, masked unless `mask` is false. */
export function frame (opcode: number, payload: Buffer, mask = true): Buffer {
  return encodeFrame(payload, opcode, mask)
}

/** Reads server frames (unmasked) from the socket, calling `onFrame` for each. */
export function readFrames (upgraded: Upgraded, onFrame: (f: ServerFrame) => void): void {
  const reader = new WireFrameReader(onFrame)
  upgraded.socket.on('data', (chunk: Buffer) => reader.push(chunk))
  if (upgraded.rest.length > 0) reader.push(upgraded.rest)
}

/** Resolves with the close code of the first close frame the server sends. */
export function closeCode (upgraded: Upgraded): Promise<number> {
  return new Promise((resolve, reject) => {
    readFrames(upgraded, (f) => { if (f.opcode === 0x8) resolve(f.payload.readUInt16BE(0)) })
    upgraded.socket.once('close', () => reject(new Error('socket closed without a close frame')))
  })
}

/**
 * A raw client's frames as they arrive, awaited one at a time, plus how the connection ended: a
 * test sees fragments, control frames and a TCP end without a close frame as they are on the wire.
 */
export class FrameReader {
  readonly frames: ServerFrame[] = []
  #read = 0
  #waiter: (() => void) | undefined
  #ended = false
  readonly upgraded: Upgraded

  constructor (upgraded: Upgraded) {
    this.upgraded = upgraded
    readFrames(upgraded, (f) => {
      this.frames.push(f)
      this.#waiter?.()
    })
    upgraded.socket.once('close', () => {
      this.#ended = true
      this.#waiter?.()
    })
  }

  get unread (): number {
    return this.frames.length - this.#read
  }

  /** The next frame; throws if the TCP connection ends first. */
  async next (): Promise<ServerFrame> {
    while (this.#read === this.frames.length) {
      if (this.#ended) throw new Error('the connection ended before a frame arrived')
      await new Promise<void>((resolve) => { this.#waiter = resolve })
      this.#waiter = undefined
    }
    return this.frames[this.#read++]!
  }

  /** Resolves once the TCP connection has ended. */
  async ended (): Promise<void> {
    while (!this.#ended) {
      await new Promise<void>((resolve) => { this.#waiter = resolve })
      this.#waiter = undefined
    }
  }

  /** Sends one masked client frame (text by default). */
  send (payload: string | Buffer, opcode = typeof payload === 'string' ? 0x1 : 0x2): void {
    this.upgraded.socket.write(frame(opcode, Buffer.from(payload)))
  }
}

/** Upgrades on `path` and returns a FrameReader; fails the test when the server answers with HTTP instead. */
export async function rawClient (t: Test, port: number, path = '/', headers: Record<string, string> = {}): Promise<FrameReader> {
  const answer = await rawUpgrade(t, port, path, headers)
  if (!isUpgraded(answer)) throw new Error(`expected 101 on ${path}, got ${answer.status} ${answer.body}`)
  return new FrameReader(answer)
}
