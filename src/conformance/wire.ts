// Byte-level helpers of the suite's server side: the handshake answer, frame headers, an
// incremental UTF-8 validator and the permessage-deflate offer parser. The suite speaks the
// protocol itself (it must be able to send what a conforming library refuses to), so none of
// this is borrowed from `ws`.
import { createHash } from 'node:crypto'

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

export function acceptKey (key: string): string {
  return createHash('sha1').update(key + GUID).digest('base64')
}

/** One frame's bytes: header (unmasked, server to client) and payload. */
export function frameBytes (opcode: number, payload: Buffer, fin = true, rsv = 0): Buffer {
  return Buffer.concat([frameHeader(opcode, payload.length, fin, rsv), payload])
}

/** A frame header alone, for cases that send one frame's payload in several timed writes. */
export function frameHeader (opcode: number, length: number, fin = true, rsv = 0): Buffer {
  let head: Buffer
  if (length <= 125) {
    head = Buffer.alloc(2)
    head[1] = length
  } else if (length <= 0xffff) {
    head = Buffer.alloc(4)
    head[1] = 126
    head.writeUInt16BE(length, 2)
  } else {
    head = Buffer.alloc(10)
    head[1] = 127
    head.writeBigUInt64BE(BigInt(length), 2)
  }
  head[0] = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f)
  return head
}

/** `pattern` repeated (and cut) to exactly `length` bytes. */
export function repeatTo (pattern: Buffer, length: number): Buffer {
  const out = Buffer.allocUnsafe(length)
  if (length === 0) return out
  out.set(pattern.subarray(0, Math.min(pattern.length, length)), 0)
  let filled = Math.min(pattern.length, length)
  while (filled < length) {
    const n = Math.min(filled, length - filled)
    out.copyWithin(filled, 0, n)
    filled += n
  }
  return out
}

// The UTF-8 decoder as a DFA (character classes, then states in steps of 16): strict
// RFC 3629, so overlongs, surrogates and code points past U+10FFFF are rejected at the first
// byte that makes the sequence impossible, which is what "fail fast" cases look for.
const CLASS = new Uint8Array(256)
for (let b = 0x80; b <= 0x8f; b++) CLASS[b] = 1
for (let b = 0x90; b <= 0x9f; b++) CLASS[b] = 9
for (let b = 0xa0; b <= 0xbf; b++) CLASS[b] = 7
CLASS[0xc0] = 8; CLASS[0xc1] = 8
for (let b = 0xc2; b <= 0xdf; b++) CLASS[b] = 2
CLASS[0xe0] = 10
for (let b = 0xe1; b <= 0xef; b++) CLASS[b] = 3
CLASS[0xed] = 4
CLASS[0xf0] = 11
for (let b = 0xf1; b <= 0xf3; b++) CLASS[b] = 6
CLASS[0xf4] = 5
for (let b = 0xf5; b <= 0xff; b++) CLASS[b] = 8

export const UTF8_ACCEPT = 0
export const UTF8_REJECT = 1
// next state for [state][class]; states: 0 accept, 1 reject, 2 one more continuation,
// 3 two more, 4 E0 (A0-BF next), 5 ED (80-9F next), 6 F0 (90-BF next), 7 F1-F3, 8 F4 (80-8F next)
const NEXT: number[][] = [
  /* 0 */ [0, 1, 2, 3, 5, 8, 7, 1, 1, 1, 4, 6, 1, 1, 1, 1],
  /* 1 */ new Array(16).fill(1),
  /* 2 */ [1, 0, 1, 1, 1, 1, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1],
  /* 3 */ [1, 2, 1, 1, 1, 1, 1, 2, 1, 2, 1, 1, 1, 1, 1, 1],
  /* 4 */ [1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1],
  /* 5 */ [1, 2, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1],
  /* 6 */ [1, 1, 1, 1, 1, 1, 1, 3, 1, 3, 1, 1, 1, 1, 1, 1],
  /* 7 */ [1, 3, 1, 1, 1, 1, 1, 3, 1, 3, 1, 1, 1, 1, 1, 1],
  /* 8 */ [1, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
]

/** Incremental UTF-8 check: `feed` a chunk at a time; once rejected it stays rejected. */
export class Utf8Check {
  state = UTF8_ACCEPT
  reset (): void { this.state = UTF8_ACCEPT }
  /** false as soon as a byte makes the text impossible */
  feed (chunk: Buffer): boolean {
    let s = this.state
    for (let i = 0; i < chunk.length; i++) {
      s = NEXT[s]![CLASS[chunk[i]!]!]!
      if (s === UTF8_REJECT) {
        this.state = s
        return false
      }
    }
    this.state = s
    return true
  }

  /** true when everything fed so far ends on a code point */
  get complete (): boolean { return this.state === UTF8_ACCEPT }
}

export function isValidUtf8 (b: Buffer): boolean {
  const v = new Utf8Check()
  return v.feed(b) && v.complete
}

/** One permessage-deflate offer from `Sec-WebSocket-Extensions`, in the server's terms. */
export interface DeflateOffer {
  /** the client allows `client_max_window_bits` to be set */
  acceptMaxWindowBits: boolean
  /** the client allows `client_no_context_takeover` to be asked (always: RFC 7692 requires it) */
  acceptNoContextTakeover: boolean
  /** `server_max_window_bits` asked by the client, 0 when not */
  requestMaxWindowBits: number
  /** `server_no_context_takeover` asked by the client */
  requestNoContextTakeover: boolean
}

/** The server's answer to an offer. */
export interface DeflateAccept {
  offer: DeflateOffer
  requestNoContextTakeover: boolean
  requestMaxWindowBits: number
}

export function deflateOffers (header: string | string[] | undefined): DeflateOffer[] {
  if (header === undefined) return []
  const text = Array.isArray(header) ? header.join(',') : header
  const offers: DeflateOffer[] = []
  for (const ext of text.split(',')) {
    const parts = ext.split(';').map(s => s.trim())
    if (parts[0] !== 'permessage-deflate') continue
    // any client must honour client_no_context_takeover (RFC 7692 7.1.1.1), offered or not
    const offer: DeflateOffer = { acceptMaxWindowBits: false, acceptNoContextTakeover: true, requestMaxWindowBits: 0, requestNoContextTakeover: false }
    let valid = true
    for (const p of parts.slice(1)) {
      if (p === '') continue
      const eq = p.indexOf('=')
      const key = (eq < 0 ? p : p.slice(0, eq)).trim()
      const value = eq < 0 ? undefined : p.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1')
      if (key === 'client_max_window_bits') {
        if (value !== undefined && !/^(9|1[0-5])$/.test(value)) valid = false
        offer.acceptMaxWindowBits = true
      } else if (key === 'client_no_context_takeover') {
        offer.acceptNoContextTakeover = true
      } else if (key === 'server_max_window_bits') {
        if (value === undefined || !/^(9|1[0-5])$/.test(value)) valid = false
        else offer.requestMaxWindowBits = Number(value)
      } else if (key === 'server_no_context_takeover') {
        offer.requestNoContextTakeover = true
      } else {
        valid = false
      }
    }
    if (valid) offers.push(offer)
  }
  return offers
}

export function acceptString (a: DeflateAccept): string {
  let s = 'permessage-deflate'
  if (a.offer.requestNoContextTakeover) s += '; server_no_context_takeover'
  if (a.offer.requestMaxWindowBits !== 0) s += `; server_max_window_bits=${a.offer.requestMaxWindowBits}`
  if (a.requestNoContextTakeover) s += '; client_no_context_takeover'
  if (a.requestMaxWindowBits !== 0) s += `; client_max_window_bits=${a.requestMaxWindowBits}`
  return s
}
