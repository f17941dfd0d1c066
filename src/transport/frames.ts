// WebSocket framing for frames echohub writes to many sockets at once: built once, written as the
// same bytes to every receiver (RFC 6455 §5.2; a server's frames are never masked).

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
  const headerLength = length < 126 ? 2 : length < 65536 ? 4 : 10
  const frame = Buffer.allocUnsafe(headerLength + length)
  frame[0] = (binary ? 0x82 : 0x81) | (deflated ? 0x40 : 0) // FIN + RSV1 + opcode
  if (length < 126) {
    frame[1] = length
  } else if (length < 65536) {
    frame[1] = 126
    frame.writeUInt16BE(length, 2)
  } else {
    frame[1] = 127
    frame.writeBigUInt64BE(BigInt(length), 2)
  }
  payload.copy(frame, headerLength)
  return frame
}
