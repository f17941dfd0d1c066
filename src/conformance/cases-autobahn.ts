// The Autobahn|Testsuite client cases of sections 1-7, 9, 10, 12 and 13, in its numbering and
// order: what each sends (bytes, fragments, chopped writes, timing) and what it expects back.
import { CLOSE_INVALID_PAYLOAD, CLOSE_NORMAL, CLOSE_PROTOCOL_ERROR, type CaseRun, type CaseSpec, type ExpectedClose, type Received, type SendFrameOptions } from './engine.js'
import { CASE_TEXT } from './cases-text.js'
import { caseData, type CaseData } from './case-data.js'
import { isValidUtf8, type DeflateAccept, type DeflateOffer } from './wire.js'

const b = (s: string): Buffer => Buffer.from(s, 'latin1')
const u = (s: string): Buffer => Buffer.from(s, 'utf8')
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex')
const msg = (payload: Buffer, binary = false): Received => ({ kind: 'message', payload, binary })
const pong = (payload: Buffer): Received => ({ kind: 'pong', payload })
const timeout = (tag: string): Received => ({ kind: 'timeout', tag })
const FAIL = (code: number, fatal = false): ExpectedClose => ({ closedByMe: false, closeCode: [code], requireClean: false, ...(fatal ? { closedByWrongEndpointIsFatal: true } : {}) })
const CLEAN: ExpectedClose = { closedByMe: true, closeCode: [CLOSE_NORMAL], requireClean: true }

const specs: CaseSpec[] = []

interface Def {
  largest?: number
  /** the case's own timers, in ms (the longest), for its time limit */
  ms: number
  open: (k: CaseRun) => void
  onMessage?: CaseSpec['onMessage']
  judged?: CaseSpec['judged']
  noWire?: boolean
  deflate?: CaseSpec['deflate']
  needsDeflate?: boolean
  text?: [string, string]
}

function add (id: string, d: Def): void {
  const text = d.text ?? CASE_TEXT[id]
  if (text === undefined) throw new Error(`no words for case ${id}`)
  specs.push({
    id,
    description: text[0],
    expectation: text[1],
    largestMessage: d.largest ?? 0,
    needsDeflate: d.needsDeflate ?? false,
    deviceOnly: false,
    // the case's timers, then a close handshake (1 s) and some slack
    timeoutMs: d.ms + 3000,
    open: d.open,
    ...(d.onMessage ? { onMessage: d.onMessage } : {}),
    ...(d.judged ? { judged: d.judged } : {}),
    ...(d.noWire === true ? { noWire: true } : {}),
    ...(d.deflate ? { deflate: d.deflate } : {})
  })
}

/** sends frames in order, then sets the expectations and a timer */
function frames (k: CaseRun, list: SendFrameOptions[]): void {
  for (const f of list) k.conn.sendFrame(f)
}

// A WRONG CODE on a close case makes the case FAILED too (sections 7.1-7.9).
const wrongCodeFails = (k: CaseRun): void => {
  if (k.behaviorClose === 'WRONG CODE') {
    k.behavior = 'FAILED'
    k.result = k.resultClose
  }
}

// ---- 1 Framing ----------------------------------------------------------------------------

const SIZES: Array<[number, number, number | undefined]> = [[0, 1, undefined], [125, 1, undefined], [126, 1, undefined], [127, 1, undefined], [128, 1, undefined], [65535, 10, undefined], [65536, 10, undefined], [65536, 10, 997]]
for (const [section, opcode, fill] of [['1.1', 1, '*'], ['1.2', 2, '\xfe']] as const) {
  SIZES.forEach(([size, kill, chopsize], i) => {
    add(`${section}.${i + 1}`, {
      largest: size,
      ms: kill * 1000,
      open: k => {
        const payload = b(fill.repeat(size))
        k.expected.set('OK', [msg(payload, opcode === 2)])
        k.expectedClose = CLEAN
        k.conn.sendFrame({ opcode, payload, ...(chopsize ? { chopsize } : {}) })
        k.conn.killAfter(kill * 1000)
      }
    })
  })
}

// ---- 2 Pings/Pongs ------------------------------------------------------------------------

function pingCase (id: string, payload: Buffer, closeAfter: number, chopsize?: number): void {
  add(id, {
    ms: closeAfter,
    open: k => {
      k.expected.set('OK', [pong(payload)])
      k.expectedClose = CLEAN
      k.conn.sendFrame({ opcode: 9, payload, ...(chopsize ? { chopsize } : {}) })
      k.conn.closeAfter(closeAfter)
    }
  })
}
pingCase('2.1', Buffer.alloc(0), 1000)
pingCase('2.2', b('Hello, world!'), 1000)
pingCase('2.3', hex('00fffefdfcfb00ff'), 1000)
pingCase('2.4', b('\xfe'.repeat(125)), 1000)
add('2.5', {
  ms: 1000,
  open: k => {
    k.expected.set('OK', [])
    k.expectedClose = FAIL(CLOSE_PROTOCOL_ERROR)
    k.conn.sendFrame({ opcode: 9, payload: b('\xfe'.repeat(126)) })
    k.conn.killAfter(1000)
  }
})
pingCase('2.6', b('\xfe'.repeat(125)), 2000, 1)
for (const [id, payload] of [['2.7', Buffer.alloc(0)], ['2.8', b('unsolicited pong payload')]] as const) {
  add(id, {
    ms: 1000,
    open: k => {
      k.expected.set('OK', [])
      k.expectedClose = CLEAN
      k.conn.sendFrame({ opcode: 10, payload })
      k.conn.close(CLOSE_NORMAL)
      k.conn.closeAfter(1000)
    }
  })
}
add('2.9', {
  ms: 1000,
  open: k => {
    k.expected.set('OK', [pong(b('ping payload'))])
    k.expectedClose = CLEAN
    k.conn.sendFrame({ opcode: 10, payload: b('unsolicited pong payload') })
    k.conn.sendFrame({ opcode: 9, payload: b('ping payload') })
    k.conn.closeAfter(1000)
  }
})
for (const [id, chopsize] of [['2.10', undefined], ['2.11', 1]] as const) {
  add(id, {
    ms: 3000,
    open: k => {
      const expected: Received[] = []
      for (let i = 0; i < 10; i++) {
        const payload = b(`payload-${i}`)
        expected.push(pong(payload))
        k.conn.sendFrame({ opcode: 9, payload, ...(chopsize ? { chopsize } : {}) })
      }
      k.expected.set('OK', expected)
      k.expectedClose = CLEAN
      k.conn.closeAfter(3000)
    }
  })
}

// ---- 3 Reserved bits, 4 Opcodes -----------------------------------------------------------

const HELLO = b('Hello, world!')

/** a bad frame alone: the client must fail the connection with 1002 */
function badAlone (id: string, frame: SendFrameOptions): void {
  add(id, {
    ms: 1000,
    open: k => {
      k.expected.set('OK', [])
      k.expectedClose = FAIL(CLOSE_PROTOCOL_ERROR)
      frames(k, [frame])
      k.conn.killAfter(1000)
    }
  })
}

/** a text message, a bad frame, a ping: the echo, then the connection failed, no pong */
function badAfterText (id: string, bad: SendFrameOptions, how: { sync?: boolean, chopsize?: number }): void {
  add(id, {
    ms: 1000,
    open: k => {
      k.expected.set('OK', [msg(HELLO)])
      k.expected.set('NON-STRICT', [])
      k.expectedClose = FAIL(CLOSE_PROTOCOL_ERROR)
      frames(k, [{ opcode: 1, payload: HELLO, ...how }, { ...bad, ...how }, { opcode: 9, ...how }])
      k.conn.killAfter(1000)
    }
  })
}

badAlone('3.1', { opcode: 1, payload: HELLO, rsv: 1 })
badAfterText('3.2', { opcode: 1, payload: HELLO, rsv: 2 }, {})
badAfterText('3.3', { opcode: 1, payload: HELLO, rsv: 3 }, { sync: true })
badAfterText('3.4', { opcode: 1, payload: HELLO, rsv: 4 }, { chopsize: 1 })
badAlone('3.5', { opcode: 2, payload: hex('00fffefdfcfb00ff'), rsv: 5 })
badAlone('3.6', { opcode: 2, payload: HELLO, rsv: 6 })
badAlone('3.7', { opcode: 8, rsv: 7 })

const RESERVED = b('reserved opcode payload')
badAlone('4.1.1', { opcode: 3 })
badAlone('4.1.2', { opcode: 4, payload: RESERVED })
badAfterText('4.1.3', { opcode: 5 }, {})
badAfterText('4.1.4', { opcode: 6, payload: HELLO }, {})
badAfterText('4.1.5', { opcode: 7, payload: HELLO }, { chopsize: 1 })
badAlone('4.2.1', { opcode: 11 })
badAlone('4.2.2', { opcode: 12, payload: RESERVED })
badAfterText('4.2.3', { opcode: 13 }, {})
badAfterText('4.2.4', { opcode: 14, payload: HELLO }, {})
badAfterText('4.2.5', { opcode: 15, payload: HELLO }, { chopsize: 1 })

// ---- 5 Fragmentation ----------------------------------------------------------------------

function badFragments (id: string, list: SendFrameOptions[]): void {
  add(id, {
    ms: 1000,
    open: k => {
      k.expected.set('OK', [])
      k.expectedClose = FAIL(CLOSE_PROTOCOL_ERROR)
      frames(k, list)
      k.conn.killAfter(1000)
    }
  })
}
const F = (n: number): Buffer => b(`fragment${n}`)
const NONCONT = b('non-continuation payload')
badFragments('5.1', [{ opcode: 9, fin: false, payload: F(1) }, { opcode: 0, payload: F(2) }])
badFragments('5.2', [{ opcode: 10, fin: false, payload: F(1) }, { opcode: 0, payload: F(2) }])
function goodFragments (id: string, how: { sync?: boolean, chopsize?: number }, withPing: boolean): void {
  add(id, {
    ms: 1000,
    open: k => {
      const ping = b('ping payload')
      k.expected.set('OK', withPing ? [pong(ping), msg(b('fragment1fragment2'))] : [msg(b('fragment1fragment2'))])
      k.expectedClose = CLEAN
      const list: SendFrameOptions[] = [{ opcode: 1, fin: false, payload: F(1), ...how }]
      if (withPing) list.push({ opcode: 9, payload: ping, ...how })
      list.push({ opcode: 0, payload: F(2), ...how })
      frames(k, list)
      k.conn.closeAfter(1000)
    }
  })
}
goodFragments('5.3', {}, false)
goodFragments('5.4', { sync: true }, false)
goodFragments('5.5', { chopsize: 1 }, false)
goodFragments('5.6', {}, true)
goodFragments('5.7', { sync: true }, true)
goodFragments('5.8', { chopsize: 1 }, true)
for (const [id, fin, how] of [['5.9', true, {}], ['5.10', true, { sync: true }], ['5.11', true, { chopsize: 1 }], ['5.12', false, {}], ['5.13', false, { sync: true }], ['5.14', false, { chopsize: 1 }]] as const) {
  badFragments(id, [{ opcode: 0, fin, payload: NONCONT, ...how }, { opcode: 1, payload: HELLO, ...how }])
}
add('5.15', {
  ms: 1000,
  open: k => {
    k.expected.set('OK', [msg(b('fragment1fragment2'))])
    k.expected.set('NON-STRICT', [])
    k.expectedClose = FAIL(CLOSE_PROTOCOL_ERROR)
    frames(k, [{ opcode: 1, fin: false, payload: F(1) }, { opcode: 0, payload: F(2) }, { opcode: 0, fin: false, payload: F(3) }, { opcode: 1, payload: F(4) }])
    k.conn.killAfter(1000)
  }
})
badFragments('5.16', [0, 1].flatMap(() => [{ opcode: 0, fin: false, payload: F(1) }, { opcode: 1, fin: false, payload: F(2) }, { opcode: 0, payload: F(3) }]))
badFragments('5.17', [0, 1].flatMap(() => [{ opcode: 0, payload: F(1) }, { opcode: 1, fin: false, payload: F(2) }, { opcode: 0, payload: F(3) }]))
badFragments('5.18', [{ opcode: 1, fin: false, payload: F(1) }, { opcode: 1, payload: F(2) }])
for (const [id, sync] of [['5.19', false], ['5.20', true]] as const) {
  add(id, {
    ms: 2000,
    open: k => {
      const pings = [b('pongme 1!'), b('pongme 2!')]
      k.expected.set('OK', [pong(pings[0]!), pong(pings[1]!), msg(b('fragment1fragment2fragment3fragment4fragment5'))])
      k.expectedClose = CLEAN
      frames(k, [{ opcode: 1, fin: false, payload: F(1), sync }, { opcode: 0, fin: false, payload: F(2), sync }, { opcode: 9, payload: pings[0], sync }])
      k.conn.later(1000, () => {
        frames(k, [{ opcode: 0, fin: false, payload: F(3), sync }, { opcode: 0, fin: false, payload: F(4), sync }, { opcode: 9, payload: pings[1], sync }, { opcode: 0, payload: F(5), sync }])
        k.conn.closeAfter(1000)
      })
    }
  })
}

// ---- 6 UTF-8 handling ---------------------------------------------------------------------

function textCase (id: string, fragments: Buffer[] | { message: Buffer, fragmentSize: number }, closeAfter = 1000): void {
  add(id, {
    ms: closeAfter,
    largest: Array.isArray(fragments) ? Buffer.concat(fragments).length : fragments.message.length,
    open: k => {
      const whole = Array.isArray(fragments) ? Buffer.concat(fragments) : fragments.message
      k.expected.set('OK', [msg(whole)])
      k.expectedClose = CLEAN
      if (Array.isArray(fragments)) frames(k, fragments.map((payload, i) => ({ opcode: i === 0 ? 1 : 0, fin: i === fragments.length - 1, payload })))
      else k.conn.sendMessage(fragments.message, false, fragments.fragmentSize)
      k.conn.closeAfter(closeAfter)
    }
  })
}
textCase('6.1.1', [Buffer.alloc(0)])
textCase('6.1.2', [Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(0)])
textCase('6.1.3', [Buffer.alloc(0), b('middle frame payload'), Buffer.alloc(0)])
const GREETING = u('Hello-µ@ßöäüàá-UTF-8!!')
const KOSME = hex('cebae1bdb9cf83cebcceb5')
textCase('6.2.1', [GREETING])
textCase('6.2.2', [u('Hello-µ@ßöä'), u('üàá-UTF-8!!')])
textCase('6.2.3', { message: GREETING, fragmentSize: 1 })
textCase('6.2.4', { message: KOSME, fragmentSize: 1 })
const BAD_SURROGATE = Buffer.concat([KOSME, hex('eda080'), b('edited')])
for (const [id, fragmentSize] of [['6.3.1', 0], ['6.3.2', 1]] as const) {
  add(id, {
    ms: 1000,
    largest: BAD_SURROGATE.length,
    open: k => {
      k.expected.set('OK', [])
      k.expectedClose = FAIL(CLOSE_INVALID_PAYLOAD, true)
      if (fragmentSize === 0) k.conn.sendFrame({ opcode: 1, payload: BAD_SURROGATE })
      else k.conn.sendMessage(BAD_SURROGATE, false, fragmentSize)
      k.conn.killAfter(1000)
    }
  })
}
// 6.4: fail fast: the part that makes the text impossible comes 1 s after the first part
const OUT_OF_RANGE = Buffer.concat([KOSME, hex('f4908080'), b('edited')])
function failFast (id: string, parts: [Buffer, Buffer, Buffer], asFrames: boolean): void {
  add(id, {
    ms: 3000,
    largest: OUT_OF_RANGE.length,
    open: k => {
      k.expected.set('OK', [timeout('A')])
      k.expected.set('NON-STRICT', [timeout('A'), timeout('B')])
      k.expectedClose = FAIL(CLOSE_INVALID_PAYLOAD, true)
      const send = (i: number): void => {
        if (asFrames) k.conn.sendFrame({ opcode: i === 0 ? 1 : 0, fin: i === 2, payload: parts[i]! })
        else k.conn.sendRaw(parts[i]!)
      }
      if (!asFrames) {
        k.conn.logRawFrame(1, true, 0, OUT_OF_RANGE)
        k.conn.sendRaw(k.conn.rawHeader(1, OUT_OF_RANGE.length))
      }
      send(0)
      k.conn.later(1000, () => {
        if (k.conn.state !== 'open') return
        k.received.push(timeout('A'))
        send(1)
        k.conn.later(1000, () => {
          if (k.conn.state !== 'open') return
          k.received.push(timeout('B'))
          send(2)
          k.conn.killAfter(1000)
        })
      })
    }
  })
}
failFast('6.4.1', [KOSME, hex('f4908080'), b('edited')], true)
failFast('6.4.2', [OUT_OF_RANGE.subarray(0, 12), OUT_OF_RANGE.subarray(12, 13), OUT_OF_RANGE.subarray(13)], true)
failFast('6.4.3', [KOSME, hex('f4908080'), b('edited')], false)
failFast('6.4.4', [OUT_OF_RANGE.subarray(0, 12), OUT_OF_RANGE.subarray(12, 13), OUT_OF_RANGE.subarray(13)], false)

// 6.5-6.23: Markus Kuhn's UTF-8 decoder stress test, each sequence a text message of its own
for (const [n, group] of utf8Sequences().entries()) {
  group.forEach((payload, j) => {
    const valid = isValidUtf8(payload)
    add(`6.${n + 5}.${j + 1}`, {
      ms: 500,
      largest: payload.length,
      text: [
        `Send a text message with payload which is ${valid ? '' : 'not '}valid UTF-8 in one fragment. Payload: 0x${payload.toString('hex')}`,
        valid ? "The message is echo'ed back to us." : 'The connection is failed immediately, since the payload is not valid UTF-8.'
      ],
      open: k => {
        if (valid) {
          k.expected.set('OK', [msg(payload)])
          k.expectedClose = CLEAN
        } else {
          k.expected.set('OK', [])
          k.expectedClose = FAIL(CLOSE_INVALID_PAYLOAD, true)
        }
        k.conn.sendMessage(payload, false)
        k.conn.killAfter(500)
      }
    })
  })
}

function utf8Sequences (): Buffer[][] {
  const kosme = KOSME
  const prefixes: Buffer[] = []
  for (let i = 1; i <= kosme.length; i++) prefixes.push(kosme.subarray(0, i))
  const range = (from: number, to: number, spaced: boolean): Buffer => {
    const out: number[] = []
    for (let i = from; i < to; i++) { out.push(i); if (spaced) out.push(0x20) }
    return Buffer.from(out)
  }
  const missingLast = ['c0', 'e080', 'f08080', 'f8808080', 'fc80808080', 'df', 'efbf', 'f7bfbf', 'fbbfbfbf', 'fdbfbfbfbf'].map(hex)
  const nonCharacters: Buffer[] = [hex('efbfbe'), hex('efbfbf')]
  for (const z1 of [0xf0, 0xf1, 0xf2, 0xf3, 0xf4]) {
    for (const z2 of [0x8f, 0x9f, 0xaf, 0xbf]) {
      if (z1 === 0xf4 && z2 !== 0x8f) continue
      for (const z3 of [0xbe, 0xbf]) {
        const zz = Buffer.from([z1, z2, 0xbf, z3])
        if (z1 === 0xf0 && z2 === 0x8f) continue
        nonCharacters.push(zz)
      }
    }
  }
  return [
    [b('hello$world'), hex('68656c6c6fc2a2776f726c64'), hex('68656c6c6fe282ac776f726c64'), hex('68656c6c6ff0a4ada2776f726c64'), kosme],
    prefixes,
    ['00', 'c280', 'e0a080', 'f0908080'].map(hex),
    ['f888808080', 'fc8480808080'].map(hex),
    ['7f', 'dfbf', 'efbfbf', 'f48fbfbf'].map(hex),
    ['f7bfbfbf', 'fbbfbfbfbf', 'fdbfbfbfbfbf'].map(hex),
    ['ed9fbf', 'ee8080', 'efbfbd', 'f48fbfbf', 'f4908080'].map(hex),
    ['80', 'bf', '80bf', '80bf80', '80bf80bf', '80bf80bf80', '80bf80bf80bf'].map(hex).concat([range(0x80, 0xbf, false)]),
    [range(0xc0, 0xdf, true), range(0xe0, 0xef, true), range(0xf0, 0xf7, true), range(0xf8, 0xfb, true), range(0xfc, 0xfd, true)],
    missingLast,
    [Buffer.concat(missingLast)],
    ['fe', 'ff', 'fefeffff'].map(hex),
    ['c0af', 'e080af', 'f08080af', 'f8808080af', 'fc80808080af'].map(hex),
    ['c1bf', 'e09fbf', 'f08fbfbf', 'f887bfbfbf', 'fc83bfbfbfbf'].map(hex),
    ['c080', 'e08080', 'f0808080', 'f880808080', 'fc8080808080'].map(hex),
    ['eda080', 'edadbf', 'edae80', 'edafbf', 'edb080', 'edbe80', 'edbfbf'].map(hex),
    ['eda080edb080', 'eda080edbfbf', 'edadbfedb080', 'edadbfedbfbf', 'edae80edb080', 'edae80edbfbf', 'edafbfedb080', 'edafbfedbfbf'].map(hex),
    nonCharacters,
    ['efbfb9', 'efbfba', 'efbfbb', 'efbfbc', 'efbfbd', 'efbfbe', 'efbfbf'].map(hex)
  ]
}

// ---- 7 Close handling ---------------------------------------------------------------------

add('7.1.1', {
  ms: 1000,
  judged: wrongCodeFails,
  open: k => {
    const payload = b('Hello World!')
    k.expected.set('OK', [msg(payload)])
    k.expectedClose = CLEAN
    k.conn.sendFrame({ opcode: 1, payload })
    k.conn.killAfter(1000)
  }
})
function closeThen (id: string, before: SendFrameOptions[], after: SendFrameOptions[]): void {
  add(id, {
    ms: 1000,
    judged: wrongCodeFails,
    open: k => {
      k.suppressClose = true
      k.expected.set('OK', [])
      k.expectedClose = CLEAN
      frames(k, before)
      k.conn.close(CLOSE_NORMAL)
      frames(k, after)
      k.conn.killAfter(1000)
    }
  })
}
closeThen('7.1.2', [], [{ opcode: 8 }])
closeThen('7.1.3', [], [{ opcode: 9 }])
closeThen('7.1.4', [], [{ opcode: 1, payload: b('Hello World!') }])
closeThen('7.1.5', [{ opcode: 1, fin: false, payload: F(1) }], [{ opcode: 0, payload: F(2) }])
add('7.1.6', {
  ms: 1000,
  largest: 256 * 1024,
  judged: k => {
    if (k.behavior === 'OK') k.result = 'Text message was processed before close.'
    else if (k.behavior === 'NON-STRICT') k.result = 'Close was processed before text message could be returned.'
    k.behavior = 'INFORMATIONAL'
    k.behaviorClose = 'INFORMATIONAL'
  },
  open: k => {
    k.suppressClose = true
    const payload = b('Hello World!')
    k.expected.set('OK', [msg(payload)])
    k.expected.set('NON-STRICT', [])
    k.expectedClose = CLEAN
    k.conn.sendFrame({ opcode: 1, payload: b('BAsd7&jh23'), payloadLen: 256 * 1024 })
    k.conn.sendFrame({ opcode: 1, payload })
    k.conn.close(CLOSE_NORMAL)
    k.conn.sendFrame({ opcode: 9 })
    k.conn.killAfter(1000)
  }
})

/** a close frame with this payload; the expected answer */
function closeCase (id: string, payload: Buffer | null, expectedClose: ExpectedClose, text?: [string, string]): void {
  add(id, {
    ms: 1000,
    judged: wrongCodeFails,
    ...(text ? { text } : {}),
    open: k => {
      k.suppressClose = true
      k.expected.set('OK', [])
      k.expectedClose = expectedClose
      if (payload === null) k.conn.sendCloseFrame(null, null, false)
      else k.conn.sendCloseFrame(payload.length >= 2 ? payload.readUInt16BE(0) : null, payload.length >= 2 ? payload.subarray(2) : payload, false)
      k.conn.killAfter(1000)
    }
  })
}
const code = (c: number, reason: Buffer = Buffer.alloc(0)): Buffer => {
  const out = Buffer.alloc(2)
  out.writeUInt16BE(c)
  return Buffer.concat([out, reason])
}
const NORMAL_OR_PROTOCOL = { closedByMe: true, closeCode: [CLOSE_PROTOCOL_ERROR], requireClean: false }
closeCase('7.3.1', null, CLEAN)
closeCase('7.3.2', b('a'), NORMAL_OR_PROTOCOL)
closeCase('7.3.3', code(1000), CLEAN)
closeCase('7.3.4', code(1000, b('Hello World!')), CLEAN)
closeCase('7.3.5', code(1000, b('*'.repeat(123))), CLEAN)
closeCase('7.3.6', code(1000, b('*'.repeat(124))), NORMAL_OR_PROTOCOL)
closeCase('7.5.1', code(1000, BAD_SURROGATE), { closedByMe: true, closeCode: [CLOSE_PROTOCOL_ERROR, CLOSE_INVALID_PAYLOAD], requireClean: false })
;[1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999].forEach((c, i) => {
  closeCase(`7.7.${i + 1}`, code(c), { closedByMe: true, closeCode: [CLOSE_NORMAL, c], requireClean: true },
    [`Send close with valid close code ${c}`, 'Clean close with normal or echoed code'])
})
;[0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999].forEach((c, i) => {
  closeCase(`7.9.${i + 1}`, code(c), NORMAL_OR_PROTOCOL,
    [`Send close with invalid close code ${c}`, 'Clean close with protocol error code or drop TCP'])
})
for (const [id, c] of [['7.13.1', 5000], ['7.13.2', 65535]] as const) {
  add(id, {
    ms: 1000,
    judged: k => {
      k.behavior = 'INFORMATIONAL'
      k.behaviorClose = 'INFORMATIONAL'
      k.result = 'Actual events are undefined by the spec.'
    },
    open: k => {
      k.suppressClose = true
      k.expected.set('OK', [])
      k.expectedClose = { closedByMe: true, closeCode: [CLOSE_NORMAL, c, CLOSE_PROTOCOL_ERROR], requireClean: false }
      k.conn.sendCloseFrame(c, null, false)
      k.conn.killAfter(1000)
    }
  })
}

// ---- 9 Limits/performance -----------------------------------------------------------------

const KB = 1024
const MB = 1024 * 1024

/** one large message; OK when it comes back whole, of the same type */
function bigCase (id: string, binary: boolean, length: number, waitSecs: number, send: (k: CaseRun) => void): void {
  add(id, {
    ms: waitSecs * 1000,
    largest: length,
    noWire: true,
    onMessage: (k, payload, isBinary) => {
      const kind = binary ? 'binary' : 'text'
      if (isBinary !== binary) k.result = `Expected ${kind} message with payload, but got ${binary ? 'text' : 'binary'}.`
      else if (payload.length !== length) k.result = `Expected ${kind} message with payload of length ${length}, but got ${payload.length}.`
      else {
        k.behavior = 'OK'
        k.result = `Received ${kind} message of length ${payload.length}.`
      }
      k.conn.close(CLOSE_NORMAL)
    },
    open: k => {
      k.behavior = 'FAILED'
      k.expectedClose = CLEAN
      k.result = `Did not receive message within ${waitSecs} seconds.`
      send(k)
      k.conn.closeAfter(waitSecs * 1000)
    }
  })
}
const TEXT_PATTERN = b('BAsd7&jh23')
const BINARY_PATTERN = hex('00fe23faf0')
;[[64 * KB, 10], [256 * KB, 10], [MB, 100], [4 * MB, 100], [8 * MB, 100], [16 * MB, 100]].forEach(([len, secs], i) => {
  bigCase(`9.1.${i + 1}`, false, len!, secs!, k => k.conn.sendFrame({ opcode: 1, payload: TEXT_PATTERN, payloadLen: len! }))
})
;[[64 * KB, 10], [256 * KB, 10], [MB, 10], [4 * MB, 10], [8 * MB, 100], [16 * MB, 100]].forEach(([len, secs], i) => {
  bigCase(`9.2.${i + 1}`, true, len!, secs!, k => k.conn.sendFrame({ opcode: 2, payload: BINARY_PATTERN, payloadLen: len! }))
})
const FRAG_SIZES = [64, 256, KB, 4 * KB, 16 * KB, 64 * KB, 256 * KB, MB, 4 * MB]
FRAG_SIZES.forEach((size, i) => {
  bigCase(`9.3.${i + 1}`, false, 4 * MB, 100, k => k.conn.sendMessage(Buffer.alloc(4 * MB, '*'), false, size))
})
FRAG_SIZES.forEach((size, i) => {
  // Autobahn sends 0xfe in 9.4.1 and '*' in the others
  bigCase(`9.4.${i + 1}`, true, 4 * MB, 100, k => k.conn.sendMessage(Buffer.alloc(4 * MB, i === 0 ? 0xfe : 0x2a), true, size))
})
const CHOPS = [64, 128, 256, 512, 1024, 2048]
CHOPS.forEach((chopsize, i) => {
  bigCase(`9.5.${i + 1}`, false, MB, 1000, k => k.conn.sendFrame({ opcode: 1, payload: TEXT_PATTERN, payloadLen: MB, chopsize }))
})
CHOPS.forEach((chopsize, i) => {
  bigCase(`9.6.${i + 1}`, true, MB, 1000, k => k.conn.sendFrame({ opcode: 2, payload: BINARY_PATTERN, payloadLen: MB, chopsize }))
})

/** COUNT messages one after another, each sent when the previous came back */
function roundTrips (id: string, binary: boolean, len: number, count: number, waitSecs: number): void {
  const kind = binary ? 'binary' : 'text'
  const payload = binary ? Buffer.alloc(len, 0xfe) : Buffer.alloc(len, '*')
  add(id, {
    ms: waitSecs * 1000,
    largest: len,
    noWire: true,
    text: [`Send ${count} ${kind} messages of payload size ${len} to measure implementation/network RTT (round trip time) / latency.`,
      `Receive echo'ed ${kind} messages (with payload as sent). Timeout case after ${waitSecs} secs.`],
    onMessage: (k, got, isBinary) => {
      const sent = k.state.count as number
      if (isBinary !== binary || got.length !== len) {
        k.behavior = 'FAILED'
        k.result = `Echo'ed message type or length differs from what I sent (got binary = ${isBinary ? 'True' : 'False'}, payload length = ${got.length}).`
        k.conn.close(CLOSE_NORMAL)
      } else if (sent < count) {
        k.state.count = sent + 1
        k.conn.sendFrame({ opcode: binary ? 2 : 1, payload })
      } else {
        k.behavior = 'OK'
        k.result = "Ok, received all echo'ed messages in time."
        k.conn.close(CLOSE_NORMAL)
      }
    },
    open: k => {
      k.behavior = 'FAILED'
      k.expectedClose = CLEAN
      k.result = `Case did not finish within ${waitSecs} seconds.`
      k.conn.closeAfter(waitSecs * 1000)
      k.state.count = 1
      k.conn.sendFrame({ opcode: binary ? 2 : 1, payload })
    }
  })
}
const RTT: Array<[number, number, number]> = [[0, 1000, 60], [16, 1000, 60], [64, 1000, 60], [256, 1000, 120], [1024, 1000, 240], [4096, 1000, 480]]
RTT.forEach(([len, count, secs], i) => roundTrips(`9.7.${i + 1}`, false, len, count, secs))
RTT.forEach(([len, count, secs], i) => roundTrips(`9.8.${i + 1}`, true, len, count, secs))

// ---- 10 Misc ------------------------------------------------------------------------------

add('10.1.1', {
  ms: 10000,
  largest: 65536,
  open: k => {
    const payload = Buffer.alloc(65536, '*')
    k.expected.set('OK', [msg(payload)])
    k.expectedClose = CLEAN
    k.conn.autoFragmentSize = 1300
    k.conn.sendMessage(payload, false)
    k.conn.killAfter(10000)
  }
})

// ---- 12, 13 permessage-deflate ------------------------------------------------------------

const DEFLATE_SIZES: Array<[len: number, count: number, secs: number, frag: number]> = [
  [16, 1000, 60, 0], [64, 1000, 60, 0], [256, 1000, 120, 0], [1024, 1000, 240, 0], [4096, 1000, 480, 0],
  [8192, 1000, 480, 0], [16384, 1000, 480, 0], [32768, 1000, 480, 0], [65536, 1000, 480, 0], [131072, 1000, 480, 0],
  [8192, 1000, 480, 256], [16384, 1000, 480, 256], [32768, 1000, 480, 256], [65536, 1000, 480, 256], [131072, 1000, 480, 256],
  [131072, 1000, 480, 1024], [131072, 1000, 480, 4096], [131072, 1000, 480, 32768]
]

type Acceptor = (offers: DeflateOffer[]) => DeflateAccept | null
const acceptAs = (pick: (o: DeflateOffer) => boolean, requestNoContextTakeover: boolean, requestMaxWindowBits: number): Acceptor =>
  offers => {
    const offer = offers.find(pick)
    return offer ? { offer, requestNoContextTakeover, requestMaxWindowBits } : null
  }
const accept1 = acceptAs(() => true, false, 0)
const accept2 = acceptAs(o => o.acceptNoContextTakeover, true, 0)
const accept5 = acceptAs(o => o.acceptNoContextTakeover && o.acceptMaxWindowBits, true, 9)
const PARAMS: Array<[Acceptor, string, string]> = [
  [accept1, '[(False, 0)]', '[(False, 0)]'],
  [accept2, '[(True, 0)]', '[(True, 0)]'],
  [acceptAs(o => o.acceptMaxWindowBits, false, 9), '[(False, 9)]', '[(False, 9)]'],
  [acceptAs(o => o.acceptMaxWindowBits, false, 15), '[(False, 15)]', '[(False, 15)]'],
  [accept5, '[(True, 9)]', '[(True, 9)]'],
  [acceptAs(o => o.acceptNoContextTakeover && o.acceptMaxWindowBits, true, 15), '[(True, 15)]', '[(True, 15)]'],
  [offers => accept5(offers) ?? accept2(offers) ?? accept1(offers), '[(True, 9), (True, 0), (False, 0)]', '[(True, 9), (True, 0), (False, 0)]']
]

function deflateCase (id: string, data: CaseData, size: typeof DEFLATE_SIZES[number], accept: Acceptor, offerWords: string): void {
  const [len, count, secs, frag] = size
  add(id, {
    ms: secs * 1000,
    largest: len,
    noWire: true,
    needsDeflate: true,
    deflate: accept,
    text: [`Send ${count} compressed messages each of payload size ${len}, auto-fragment to ${frag} octets. Use ${offerWords}`,
      `Receive echo'ed messages (with payload as sent). Timeout case after ${secs} secs.`],
    onMessage: (k, got, binary) => {
      const sent = k.state.sent as Buffer
      if (binary !== data.binary || got.length !== sent.length || !got.equals(sent)) {
        k.behavior = 'FAILED'
        k.result = binary !== data.binary
          ? `Echo'ed message type differs from what I sent (got binary ${binary}, expected binary ${data.binary}).`
          : got.length !== sent.length
            ? `Echo'ed message length differs from what I sent (got length ${got.length}, expected length ${sent.length}).`
            : "Echo'ed message contents differs from what I sent."
        k.conn.close(CLOSE_NORMAL)
      } else if ((k.state.count as number) < count) {
        sendNext(k)
      } else {
        k.behavior = 'OK'
        k.result = "Ok, received all echo'ed messages in time."
        k.conn.close(CLOSE_NORMAL)
      }
    },
    open: k => {
      k.expectedClose = CLEAN
      k.conn.autoFragmentSize = frag
      if (k.conn.deflate === null) {
        k.behavior = 'UNIMPLEMENTED'
        k.result = 'The client offered no permessage-deflate with parameters this case accepts.'
        k.conn.close(CLOSE_NORMAL)
        return
      }
      k.behavior = 'FAILED'
      k.result = `Case did not finish within ${secs} seconds.`
      k.conn.closeAfter(secs * 1000)
      k.state.count = 0
      k.state.ptr = 0
      sendNext(k)
    }
  })
  function sendNext (k: CaseRun): void {
    const ptr = k.state.ptr as number
    const message = data.slice(ptr, len)
    k.state.ptr = (ptr + len) % data.length
    k.state.sent = message
    k.state.count = (k.state.count as number) + 1
    k.conn.sendMessage(message, data.binary)
  }
}

const KINDS = ['json', 'bitmap', 'prose', 'html', 'pdf'] as const
KINDS.forEach((kind, j) => {
  const data = caseData(kind)
  DEFLATE_SIZES.forEach((size, i) => deflateCase(`12.${j + 1}.${i + 1}`, data, size, accept1, 'default permessage-deflate offer.'))
})
PARAMS.forEach(([accept, offers], j) => {
  const data = caseData('json')
  DEFLATE_SIZES.forEach((size, i) => deflateCase(`13.${j + 1}.${i + 1}`, data, size, accept, `permessage-deflate client offers (requestNoContextTakeover, requestMaxWindowBits): ${offers}`))
})

export const AUTOBAHN_CASES: readonly CaseSpec[] = specs
