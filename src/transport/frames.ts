// WebSocket framing for frames echohub writes itself: built once and written as the same bytes to
// many receivers, or many frames built into one write (the lab's fragments). RFC 6455 §5.2; a
// server's frames are never masked.

/** One unmasked, final text frame holding `payload`. */
export function textFrame (payload: Buffer): Buffer {
  return dataFrame(payload, false)
}

/**
 * One unmasked, final text or binary frame holding `payload`; `deflated` sets RSV1, which says the
 * payload is a message compressed with permessage-deflate.
 */
export function dataFrame (payload: Buffer, binary: boolean, deflated = false): Buffer {
  const length = payload.length
  const frame = Buffer.allocUnsafe(headerLength(length) + length)
  payload.copy(frame, writeHeader(frame, 0, (binary ? 0x82 : 0x81) | (deflated ? 0x40 : 0), length)) // FIN + RSV1 + opcode
  return frame
}

/** The bytes of an unmasked frame header for a payload of `length` bytes. */
export function headerLength (length: number): number {
  return length < 126 ? 2 : length < 65536 ? 4 : 10
}

/**
 * Writes an unmasked frame header at `offset` of `target`: `first` is its first byte (FIN, RSV
 * bits, opcode), then the payload length in its shortest form. Returns the offset after it.
 */
export function writeHeader (target: Buffer, offset: number, first: number, length: number): number {
  target[offset] = first
  if (length < 126) {
    target[offset + 1] = length
    return offset + 2
  }
  if (length < 65536) {
    target[offset + 1] = 126
    target.writeUInt16BE(length, offset + 2)
    return offset + 4
  }
  target[offset + 1] = 127
  target.writeBigUInt64BE(BigInt(length), offset + 2)
  return offset + 10
}
