// Test helpers of the conformance suite: a bare HTTP server whose upgrades run suite cases
// (the routes are not needed to test the runner), and the clients the suite is compared on.
import { createServer, type Server } from 'node:http'
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { Test } from 'tap'
import WebSocket from 'ws'
import { chromium, type Browser } from 'playwright-core'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { caseSpec, runCase, SUITE } from '../../src/conformance/cases.js'
import type { CaseResult } from '../../src/conformance/types.js'

export interface CaseServer {
  url: string
  results: Map<string, CaseResult>
  close: () => Promise<void>
}

/** `ws://127.0.0.1:PORT/runCase?casetuple=1.1.1` runs that case; its result lands in `results`. */
export async function caseServer (): Promise<CaseServer> {
  const results = new Map<string, CaseResult>()
  const waiting = new Map<string, Array<(r: CaseResult) => void>>()
  const sockets = new Set<Socket>()
  const server: Server = createServer((_req, res) => { res.statusCode = 404; res.end() })
  server.on('connection', s => { sockets.add(s); s.on('close', () => sockets.delete(s)) })
  server.on('upgrade', (req, socket: Socket, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://x')
    const id = url.searchParams.get('casetuple') ?? ''
    const c = caseSpec(id)
    if (c === undefined) { socket.destroy(); return }
    const maxSize = url.searchParams.get('max_size')
    void runCase(c, { socket, head, headers: req.headers }, maxSize === null ? {} : { maxSize: Number(maxSize) }).then(r => {
      results.set(id, r)
      for (const w of waiting.get(id) ?? []) w(r)
      waiting.delete(id)
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    url: `ws://127.0.0.1:${port}`,
    results,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>(resolve => server.close(() => resolve()))
    }
  }
}

/** Waits for the result of a case run through `server`. */
export function resultOf (server: CaseServer, id: string, timeoutMs = 120000): Promise<CaseResult> {
  const known = server.results.get(id)
  if (known) return Promise.resolve(known)
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`case ${id}: no result in ${timeoutMs} ms`)), timeoutMs)
    const poll = setInterval(() => {
      const r = server.results.get(id)
      if (r) { clearTimeout(t); clearInterval(poll); resolve(r) }
    }, 20)
  })
}

/** The version of Node's `ws` the tests run. */
export const wsVersion = (JSON.parse(readFileSync(new URL('../../node_modules/ws/package.json', import.meta.url), 'utf8')) as { version: string }).version

/** Node's `ws` as a testee: echoes every message with its type, closes when closed. */
export function wsEcho (url: string, deflate = true): Promise<void> {
  return new Promise(resolve => {
    const ws = new WebSocket(url, { perMessageDeflate: deflate, maxPayload: 64 * 1024 * 1024 })
    ws.on('message', (data, isBinary) => { ws.send(data as Buffer, { binary: isBinary }) })
    ws.on('error', () => {})
    ws.on('close', () => resolve())
  })
}

/**
 * A deliberately sloppy testee on a raw socket: masks its frames but checks nothing (no UTF-8,
 * no reserved bits, no opcodes), ignores pings, echoes every data message as text, and answers
 * any close with close 1000.
 */
export function sloppyEcho (url: string): Promise<void> {
  const u = new URL(url)
  return new Promise(resolve => {
    const socket: Socket = netConnect(Number(u.port), u.hostname)
    let buf = Buffer.alloc(0)
    let upgraded = false
    let parts: Buffer[] = []
    let closed = false
    socket.setNoDelay(true)
    socket.on('connect', () => {
      socket.write(`GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`)
    })
    const send = (opcode: number, payload: Buffer): void => {
      if (closed || socket.destroyed) return
      const mask = randomBytes(4)
      const len = payload.length
      const head = len < 126 ? Buffer.from([0x80 | opcode, 0x80 | len]) : len < 65536 ? Buffer.alloc(4) : Buffer.alloc(10)
      if (len >= 126 && len < 65536) { head[0] = 0x80 | opcode; head[1] = 0x80 | 126; head.writeUInt16BE(len, 2) }
      if (len >= 65536) { head[0] = 0x80 | opcode; head[1] = 0x80 | 127; head.writeBigUInt64BE(BigInt(len), 2) }
      const body = Buffer.from(payload)
      for (let i = 0; i < len; i++) body[i]! ^= mask[i & 3]!
      socket.write(Buffer.concat([head, mask, body]))
    }
    // chunks are joined only once a whole frame is in (messages run to 16 MiB)
    const pending: Buffer[] = []
    let pendingLength = 0
    const take = (n: number): Buffer | null => {
      if (pendingLength < n) return null
      if (pending[0]!.length < n) pending.splice(0, pending.length, Buffer.concat(pending))
      return pending[0]!.subarray(0, n)
    }
    const consume = (n: number): void => {
      pending[0] = pending[0]!.subarray(n)
      pendingLength -= n
      if (pending[0].length === 0) pending.shift()
    }
    socket.on('data', (d: Buffer) => {
      if (!upgraded) {
        buf = Buffer.concat([buf, d])
        const end = buf.indexOf('\r\n\r\n')
        if (end < 0) return
        upgraded = true
        d = buf.subarray(end + 4)
      }
      if (d.length > 0) { pending.push(d); pendingLength += d.length }
      for (;;) {
        const two = take(2)
        if (two === null) return
        const opcode = two[0]! & 0x0f
        const fin = (two[0]! & 0x80) !== 0
        const len1 = two[1]! & 0x7f
        const at = len1 === 126 ? 4 : len1 === 127 ? 10 : 2
        const head = take(at)
        if (head === null) return
        const len = len1 === 126 ? head.readUInt16BE(2) : len1 === 127 ? Number(head.readBigUInt64BE(2)) : len1
        const frame = take(at + len)
        if (frame === null) return
        const payload = Buffer.from(frame.subarray(at))
        consume(at + len)
        if (opcode === 8) {
          const c = Buffer.alloc(2)
          c.writeUInt16BE(1000)
          send(8, c)
          closed = true
          continue
        }
        if (opcode === 9 || opcode === 10) continue
        parts.push(payload)
        if (fin) {
          const message = Buffer.concat(parts)
          parts = []
          send(1, message)
        }
      }
    })
    socket.on('error', () => {})
    socket.on('close', () => resolve())
  })
}

/** Autobahn's cases of sections 1-7, 9 and 10. */
export const PLAIN_IDS = SUITE.filter(c => !c.needsDeflate && !c.id.startsWith('R.')).map(c => c.id)
/** Sections 12 and 13: 216 cases of 1000 compressed messages each. */
export const DEFLATE_IDS = SUITE.filter(c => c.needsDeflate).map(c => c.id)
/**
 * What `npm test` compares of 12 and 13: sizes 1, 2 and 11 of each group (16 and 64 bytes, and
 * 8 KiB in 256-byte fragments), every data kind and parameter set. All 216 take about half an hour
 * of compression per client: `npm run test:long` (test/long/).
 */
export const DEFLATE_SAMPLE = DEFLATE_IDS.filter(id => ['1', '2', '11'].includes(id.split('.')[2]!))

/**
 * A text message, then a bad frame: whether a client echoes the text before it fails the
 * connection on the bad frame depends on its scheduling (OK or NON-STRICT; in Chromium a race
 * between the page and its network side), tipped by load; these are reported, not failed, when
 * they differ twice.
 */
export const RACY = ['3.2', '3.3', '3.4', '4.1.3', '4.1.4', '4.1.5', '4.2.3', '4.2.4', '4.2.5', '5.15']

export const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']

export function launchChromium (): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS })
}

interface PageSocket {
  binaryType: string
  onmessage: ((e: { data: unknown }) => void) | null
  onclose: (() => void) | null
  send: (data: unknown) => void
}

/** Chromium's own WebSocket as a testee: each URL in turn, every message echoed with its type. */
export async function chromiumEcho (browser: Browser, urls: string[]): Promise<void> {
  // The page comes from 127.0.0.1 too: Chromium blocks a public (or blank) page's connections
  // to a local address (local network access checks).
  const blank = createServer((_req, res) => { res.setHeader('Content-Type', 'text/html'); res.end('<!doctype html><title>testee</title>') })
  await new Promise<void>(resolve => blank.listen(0, '127.0.0.1', resolve))
  const context = await browser.newContext()
  try {
    const page = await context.newPage()
    await page.goto(`http://127.0.0.1:${(blank.address() as AddressInfo).port}/`)
    await page.evaluate(async (list: string[]) => {
      for (const url of list) {
        // the page's WebSocket (this runs in Chromium), typed here by what is used of it
        const Socket = (globalThis as unknown as { WebSocket: new (url: string) => PageSocket }).WebSocket
        await new Promise<void>(resolve => {
          let ws: PageSocket
          try { ws = new Socket(url) } catch { resolve(); return }
          ws.binaryType = 'arraybuffer'
          ws.onmessage = (e) => { try { ws.send(e.data) } catch { /* closing */ } }
          ws.onclose = () => resolve()
        })
      }
    }, urls)
  } finally {
    await context.close()
    await new Promise<void>(resolve => blank.close(() => resolve()))
  }
}

export const PYTHON = '/usr/bin/python3'
const PYTHON_CLIENT = fileURLToPath(new URL('../../scripts/conformance-python-client.py', import.meta.url))

/** The version of Python's `websockets` here, or null when it is not installed. */
export function pythonWebsocketsVersion (): Promise<string | null> {
  return new Promise(resolve => {
    const p = spawn(PYTHON, ['-c', 'import websockets; print(websockets.__version__)'], { stdio: ['ignore', 'pipe', 'ignore'] })
    let out = ''
    p.stdout.on('data', (d: Buffer) => { out += d.toString() })
    p.on('error', () => resolve(null))
    p.on('close', code => resolve(code === 0 ? out.trim() : null))
  })
}

/**
 * The version of Python's `websockets`, or why it cannot run: a reason to skip on a user's
 * machine, a failure in CI, which must run the comparison.
 */
export async function pythonMissing (t: Test): Promise<{ version: string | null, missing: string | undefined }> {
  const version = await pythonWebsocketsVersion()
  const missing = version === null ? 'Python\'s websockets is not installed (apt-get install python3-websockets)' : undefined
  if (missing !== undefined && process.env.CI) t.fail(`${missing}: CI must run the conformance comparison with it`)
  return { version, missing }
}

/** Python's `websockets` as a testee (scripts/conformance-python-client.py): each URL in turn. */
export function pythonEcho (urls: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(PYTHON, [PYTHON_CLIENT, ...urls], { stdio: ['ignore', 'ignore', 'inherit'] })
    p.on('error', reject)
    p.on('close', code => code === 0 ? resolve() : reject(new Error(`python client exited ${code}`)))
  })
}

export interface ReferenceEntry { behavior: string, behaviorClose: string, stable: boolean, runs?: string[][] }
export interface ReferenceTable { clients: Record<string, { version: string, cases: Record<string, ReferenceEntry> }> }

/** The fuzzingserver's recorded verdicts (scripts/conformance-reference.py writes them). */
export function referenceTable (): ReferenceTable {
  return JSON.parse(readFileSync(new URL('../fixtures/conformance-reference.json', import.meta.url), 'utf8')) as ReferenceTable
}

/** Case URLs on a case server, in order. */
export function caseUrls (server: CaseServer, ids: string[], agent = 'test'): string[] {
  return ids.map(id => `${server.url}/runCase?casetuple=${id}&agent=${encodeURIComponent(agent)}`)
}

/**
 * Runs `ids` with `client` against echohub's runner and compares each verdict with the
 * fuzzingserver's recorded one where that was stable; returns the counts for the test's story.
 */
export async function compareWithReference (t: Test, name: string, version: string, ids: string[], client: (urls: string[]) => Promise<void>, racy: string[] = []): Promise<{ compared: number, agreed: number, unstable: string[] }> {
  const table = referenceTable().clients[name]
  if (table === undefined) throw new Error(`no reference verdicts for ${name}: run scripts/conformance-reference.py`)
  if (table.version !== version) t.comment(`the reference was recorded with ${name} ${table.version}, this is ${version}`)
  const server = await caseServer()
  t.teardown(() => server.close())
  await client(caseUrls(server, ids, name))
  let compared = 0
  let agreed = 0
  const unstable: string[] = []
  for (const id of ids) {
    const ref = table.cases[id]
    let got = await resultOf(server, id, 30000)
    if (ref === undefined) {
      t.fail(`${name} ${id}: no reference verdict recorded`)
      continue
    }
    if (!ref.stable) {
      unstable.push(id)
      continue
    }
    compared++
    let same = got.behavior === ref.behavior && got.behaviorClose === ref.behaviorClose
    if (!same) {
      // Some cases race the client's own scheduling against a timer or a chopped write, and a
      // loaded machine can tip them: as "stable" asks two runs of the fuzzingserver, a
      // difference gets a second run here, and only a difference twice fails.
      server.results.delete(id)
      await client(caseUrls(server, [id], name))
      got = await resultOf(server, id, 30000)
      same = got.behavior === ref.behavior && got.behaviorClose === ref.behaviorClose
      if (same) t.comment(`${name} ${id}: agreed on a second run`)
    }
    if (same) agreed++
    else if (racy.includes(id)) {
      // an echo racing the client's own failure on the next frame: OK and NON-STRICT are both
      // its behaviour, which one depends on the client's scheduling
      t.comment(`${name} ${id}: echohub ${got.behavior}/${got.behaviorClose}, fuzzingserver ${ref.behavior}/${ref.behaviorClose} (a race in the client, not counted)`)
      compared--
      continue
    }
    t.ok(same, `${name} ${id}: echohub ${got.behavior}/${got.behaviorClose}, fuzzingserver ${ref.behavior}/${ref.behaviorClose}`,
      same ? {} : { result: got.result, resultClose: got.resultClose, remoteCloseCode: got.remoteCloseCode, details: got.details })
  }
  t.comment(`${name} ${version}: ${compared} cases compared, ${agreed} agree; the fuzzingserver varied on ${unstable.join(' ') || 'none'}`)
  return { compared, agreed, unstable }
}
