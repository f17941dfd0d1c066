// permessage-deflate as echohub offers it (`--compression`): what ws negotiates and how much memory
// each connection's zlib state may take, and one message compressed the way ws would send it.
import zlib from 'node:zlib'
import type { PerMessageDeflateOptions } from 'ws'

/** Messages smaller than this go out uncompressed: deflating them costs more CPU than it saves bytes. */
export const COMPRESSION_THRESHOLD = 1024

/**
 * ws's settings for `--compression`.
 * - server_no_context_takeover: each message is compressed on its own. ws applies `threshold` only
 *   then (with a shared context it compresses every message), and small chat frames stay cheap.
 * - server_max_window_bits=9: a connection that has sent a compressed message keeps its deflate
 *   state for its lifetime, about 250 KB with zlib's default 32 KiB window; a 512-byte window halves
 *   that, and a single JSON message of a few KiB compresses within a few percent of the large one.
 *   9 is the smallest zlib writes, so every offer is accepted but one asking for 8 bits.
 * - level 1: the fastest, for nearly the same size on JSON.
 * - at most 10 zlib jobs at once across all connections (ws's default).
 */
export const PER_MESSAGE_DEFLATE: PerMessageDeflateOptions = {
  threshold: COMPRESSION_THRESHOLD,
  serverNoContextTakeover: true,
  serverMaxWindowBits: 9,
  zlibDeflateOptions: { level: 1 },
  concurrencyLimit: 10
}

/** The smallest window a deflated message may need of the client's inflater (`server_max_window_bits`). */
export const DEFLATE_WINDOW_BITS = 9

/**
 * One message compressed on its own, as permessage-deflate carries it (RFC 7692 §7.2.1: sync flush,
 * the final 00 00 ff ff removed), with the settings above. With server_no_context_takeover each
 * message stands alone, so these bytes inflate on every client that negotiated a window of at least
 * DEFLATE_WINDOW_BITS: a broadcast is compressed once, not once per client.
 */
export function deflateMessage (data: Buffer): Buffer {
  const out = zlib.deflateRawSync(data, {
    level: PER_MESSAGE_DEFLATE.zlibDeflateOptions?.level,
    windowBits: DEFLATE_WINDOW_BITS,
    finishFlush: zlib.constants.Z_SYNC_FLUSH
  })
  return out.subarray(0, out.length - 4)
}
