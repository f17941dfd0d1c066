// Payloads of the permessage-deflate cases (sections 12 and 13): generated data of the size and
// kind of the Autobahn|Testsuite's sample files (JSON, a bitmap, prose, HTML, a PDF), made from a
// fixed seed so every run sends the same bytes. The cases send slices of it, wrapping around.

export type DataKind = 'json' | 'bitmap' | 'prose' | 'html' | 'pdf'

export interface CaseData {
  kind: DataKind
  binary: boolean
  length: number
  /** `len` bytes from `from`, wrapping around at the end */
  slice: (from: number, len: number) => Buffer
}

const SIZES: Record<DataKind, [bytes: number, binary: boolean]> = {
  json: [194056, false],
  bitmap: [263222, true],
  prose: [222218, true],
  html: [263647, false],
  pdf: [1042328, true]
}

const cache = new Map<DataKind, CaseData>()

export function caseData (kind: DataKind): CaseData {
  let d = cache.get(kind)
  if (d === undefined) {
    const [bytes, binary] = SIZES[kind]
    let buf: Buffer | null = null
    const get = (): Buffer => { buf ??= generate(kind, bytes); return buf }
    d = {
      kind,
      binary,
      length: bytes,
      slice: (from, len) => {
        const all = get()
        const start = from % all.length
        if (start + len <= all.length) return Buffer.from(all.subarray(start, start + len))
        const out = Buffer.alloc(len)
        let filled = 0
        let at = start
        while (filled < len) {
          const n = Math.min(len - filled, all.length - at)
          all.copy(out, filled, at, at + n)
          filled += n
          at = (at + n) % all.length
        }
        return out
      }
    }
    cache.set(kind, d)
  }
  return d
}

/** xorshift32: small, fast, the same everywhere */
function rng (seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    return x
  }
}

const WORDS = ('und der die das ist nicht ein eine ich du er sie es wir ihr mit von zu auf im den dem ' +
  'Faust Mephistopheles Gretchen Himmel Erde Geist Nacht Studierzimmer Wissen Welt Liebe Seele ' +
  'habe nun ach Philosophie Juristerei Medizin leider auch Theologie durchaus studiert heissem ' +
  'Bemuehn da steh ich armer Tor bin so klug als wie zuvor heisse Magister Doktor gar').split(' ')

function generate (kind: DataKind, bytes: number): Buffer {
  const next = rng(0x5eed + kind.length * 7919 + kind.charCodeAt(0))
  const pick = <T>(list: readonly T[]): T => list[next() % list.length]!
  const parts: string[] = []
  const filled = { size: 0 }
  const push = (s: string): void => { parts.push(s); filled.size += s.length }
  switch (kind) {
    case 'json':
      push('[')
      for (let i = 0; filled.size < bytes; i++) {
        push(`{"id":${i},"name":"${pick(WORDS)} ${pick(WORDS)}","active":${next() % 2 === 0},"score":${(next() % 100000) / 100},` +
          `"tags":["${pick(WORDS)}","${pick(WORDS)}"],"location":{"lat":${(next() % 18000) / 100 - 90},"lon":${(next() % 36000) / 100 - 180}}},\n`)
      }
      break
    case 'html':
      push('<!DOCTYPE html>\n<html><head><title>echohub</title></head><body>\n')
      while (filled.size < bytes) {
        const tag = pick(['p', 'div', 'span', 'li', 'td'])
        push(`<${tag} class="${pick(WORDS)}">${Array.from({ length: 4 + next() % 12 }, () => pick(WORDS)).join(' ')}</${tag}>\n`)
      }
      break
    case 'prose':
      while (filled.size < bytes) {
        const line = Array.from({ length: 5 + next() % 9 }, () => pick(WORDS)).join(' ')
        push(line.charAt(0).toUpperCase() + line.slice(1) + (next() % 4 === 0 ? '!\n' : ',\n'))
      }
      break
    case 'bitmap': {
      // a 512 x 512 8-bit grey image: smooth areas with some noise, as a photograph
      const out = Buffer.alloc(bytes)
      out.write('BM', 0, 'latin1')
      out.writeUInt32LE(bytes, 2)
      out.writeUInt32LE(1078, 10)
      for (let i = 54; i < 1078; i += 4) out.fill((i - 54) >> 2, i, i + 3)
      for (let i = 1078; i < bytes; i++) {
        const p = i - 1078
        const x = p % 512
        const y = Math.floor(p / 512)
        out[i] = (128 + 60 * Math.sin(x / 37) * Math.cos(y / 23) + (next() % 24)) & 0xff
      }
      return out
    }
    case 'pdf': {
      // text objects between stretches of already-compressed (random) stream data
      const out = Buffer.alloc(bytes)
      let at = 0
      while (at < bytes) {
        const text = Buffer.from(`\n${at} 0 obj\n<< /Type /${pick(['Page', 'Font', 'XObject', 'Stream'])} /Length ${next() % 9000} >>\nstream\n`, 'latin1')
        at += text.copy(out, at)
        const n = Math.min(bytes - at, 2000 + next() % 6000)
        for (let i = 0; i < n; i++) out[at + i] = next() & 0xff
        at += n
      }
      return out
    }
  }
  return Buffer.from(parts.join('').slice(0, bytes), 'latin1')
}
