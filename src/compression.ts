// permessage-deflate as echohub offers it (`--compression`): what ws negotiates and how much memory
// each connection's zlib state may take.
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
