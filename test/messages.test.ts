import t from 'tap'
import { randomBytes } from 'node:crypto'
import { echoEnvelopeWriter, needsJsonEscape } from '../src/echo/messages.js'

/** What needsJsonEscape must agree with: a quote, a backslash or a control character anywhere. */
const reference = (data: Buffer): boolean => [...data].some((byte) => byte < 0x20 || byte === 0x22 || byte === 0x5c)

t.test('needsJsonEscape finds every byte that needs an escape, at every position and alignment', async (t) => {
  let mismatches = 0
  for (let byte = 0; byte < 256; byte++) {
    for (let offset = 0; offset < 4; offset++) {
      for (let at = 0; at < 40; at++) {
        const backing = Buffer.alloc(44, 0x41)
        const data = backing.subarray(offset, offset + 40)
        data[at] = byte
        if (needsJsonEscape(data) !== reference(data)) mismatches++
      }
    }
  }
  t.equal(mismatches, 0, 'each of the 256 byte values in each of 40 places of a 40-byte text, at 4 alignments')
})

t.test('needsJsonEscape agrees with a regular expression on random text of every length', async (t) => {
  let mismatches = 0
  let escapes = 0
  const noise = randomBytes(300 * 20_000)
  for (let i = 0; i < 20_000; i++) {
    const length = i % 300
    // printable ASCII and UTF-8 bytes, none that needs an escape; every other text gets one
    const data = Buffer.from(noise.subarray(i * 300, i * 300 + length).map((b) => b === 0x22 || b === 0x5c || b < 0x20 ? 0x41 : b))
    if (length > 0 && i % 2 === 0) data[noise[i]! % length] = [0x00, 0x09, 0x1f, 0x22, 0x5c][i % 5]!
    if (reference(data)) escapes++
    if (needsJsonEscape(data) !== reference(data)) mismatches++
  }
  t.equal(mismatches, 0)
  t.ok(escapes > 5000 && escapes < 15_000, 'both answers were exercised')
})

t.test('the echo envelope is the bytes of JSON.stringify, whether its text needs escapes or not', async (t) => {
  const texts = ['', 'hello', 'x'.repeat(16384), 'héllo wörld 😀 \u2028', 'a "quoted" word', 'back\\slash', 'line\nbreak\ttab\u0000nul',
    'The quick brown fox jumps over the lazy dog. '.repeat(50) + '"', '{"temp":21.5}']
  for (const serverInfo of ['echohub echo server', 'ünïcode "quoted" info']) {
    const write = echoEnvelopeWriter(serverInfo)
    for (const [i, text] of texts.entries()) {
      const out = write(Buffer.from(text), '127.0.0.1:5555', i + 1).toString()
      const timestamp = (JSON.parse(out) as { timestamp: string }).timestamp
      const expected = JSON.stringify({ type: 'echo', original_message: text, timestamp, client: '127.0.0.1:5555', message_id: i + 1, server_info: serverInfo })
      t.equal(out, expected, `text ${i} (${Buffer.byteLength(text)} bytes) with server_info ${JSON.stringify(serverInfo)}`)
    }
  }
})
