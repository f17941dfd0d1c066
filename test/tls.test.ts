// https/wss: the self-signed certificate kept in .echohub/, certificate files and what is wrong
// with bad ones, and a device-style client that pins the certificate's SHA-256 fingerprint.
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { X509Certificate, generateKeyPairSync } from 'node:crypto'
import type { PeerCertificate } from 'node:tls'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { WebSocket, type ClientOptions } from 'ws'
import { pino } from 'pino'
import { parseConfig, startEchohub, type Config } from '../index.js'
import { loadTls, selfSignedTls } from '../src/transport/tls.js'
import { connect, nextJson, nextMessage } from './helpers/index.js'

const CLI = fileURLToPath(new URL('../dist/app/cli.js', import.meta.url))
const silent = pino({ level: 'silent' })

function testConfig (extra: string[] = []): Config {
  const parsed = parseConfig(['--host', '127.0.0.1', '--echo-port', '0', '--debug-port', '0', '--chat-port', '0', '--log-level', 'silent', ...extra], {})
  if (parsed.help) throw new Error('unexpected')
  return parsed.config
}

/** What a device does: trust exactly this certificate, and only if its SHA-256 fingerprint is the pinned one. */
function pinned (cert: string, fingerprint: string): ClientOptions {
  const check = (_host: string, peer: PeerCertificate): Error | undefined =>
    peer.fingerprint256 === fingerprint ? undefined : new Error(`certificate fingerprint ${peer.fingerprint256} is not the pinned ${fingerprint}`)
  // Node's tls calls it with the certificate and refuses the connection on an Error; @types/ws types it loosely.
  return { ca: cert, checkServerIdentity: check as unknown as ClientOptions['checkServerIdentity'] }
}

t.test('--tls-self-signed makes a certificate once, keeps it in .echohub/ with the key at 0600, and reuses it', async (t) => {
  const dir = path.join(t.testdir(), '.echohub')
  const first = await selfSignedTls(dir, ['localhost', '127.0.0.1', '::1'])
  t.equal(first.created, true)
  t.equal(statSync(path.join(dir, 'key.pem')).mode & 0o777, 0o600, 'only the owner reads the key')
  const x509 = new X509Certificate(readFileSync(path.join(dir, 'cert.pem')))
  t.equal(x509.fingerprint256, first.fingerprint)
  t.equal(x509.checkHost('localhost'), 'localhost')
  t.equal(x509.checkIP('127.0.0.1'), '127.0.0.1')
  t.equal(x509.checkIP('::1'), '::1')
  t.ok(first.validTo.getTime() > Date.now() + 365 * 24 * 3600 * 1000, 'valid for more than a year')

  const second = await selfSignedTls(dir, ['localhost', '127.0.0.1', '::1', '192.0.2.77'])
  t.equal(second.created, false, 'the kept certificate is reused')
  t.equal(second.fingerprint, first.fingerprint, 'so a pinned fingerprint stays valid across restarts')
  t.same(second.uncovered, ['192.0.2.77'], 'an address the kept certificate does not name is reported')
})

t.test('bad certificate or key files fail with an error naming the flag, the file and the problem', async (t) => {
  const dir = t.testdir({ 'garbage.pem': 'not a certificate\n' })
  const kept = await selfSignedTls(path.join(dir, '.echohub'), ['localhost'])
  const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
  writeFileSync(path.join(dir, 'other.key'), other)
  const cases: Array<[string, string, RegExp]> = [
    [path.join(dir, 'missing.pem'), kept.keyFile, /^--tls-cert \S+missing\.pem: no such file$/],
    [path.join(dir, 'garbage.pem'), kept.keyFile, /^--tls-cert \S+garbage\.pem: not PEM text/],
    [kept.keyFile, kept.keyFile, /^--tls-cert \S+key\.pem: not a PEM certificate/],
    [kept.certFile, kept.certFile, /^--tls-key \S+cert\.pem: not a PEM private key/],
    [kept.certFile, path.join(dir, 'other.key'), /^--tls-key \S+other\.key: is not the private key of the certificate in \S+cert\.pem$/]
  ]
  for (const [cert, key, message] of cases) {
    await t.rejects(loadTls(cert, key), { code: 'ECHOHUB_ERR_TLS_FILE', message }, message.source)
  }
  const loaded = await loadTls(kept.certFile, kept.keyFile)
  t.equal(loaded.fingerprint, kept.fingerprint, 'good files load')
})

t.test('a wss client pinning the fingerprint talks to every server; another fingerprint is refused', async (t) => {
  t.chdir(t.testdir())
  const hub = await startEchohub(testConfig(['--tls-self-signed']), { logger: silent })
  t.teardown(() => hub.close())
  t.ok(existsSync('.echohub/cert.pem'), 'kept in .echohub/ of the working directory')
  const fingerprint = hub.tls!.fingerprint
  t.match(fingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/)
  t.equal(hub.tls!.selfSigned?.created, true)
  const cert = readFileSync('.echohub/cert.pem', 'utf8')
  const [echoServer, debugServer, chatServer] = hub.servers
  t.same(echoServer!.urls, [`wss://127.0.0.1:${echoServer!.port}/`, `wss://127.0.0.1:${echoServer!.port}/raw`, `wss://127.0.0.1:${echoServer!.port}/conformance`], 'the banner shows wss:// URLs')
  t.equal(chatServer!.urls[0], `https://127.0.0.1:${chatServer!.port}/`, 'and https:// for the pages')

  const device = await connect(t, `wss://127.0.0.1:${echoServer!.port}/device/1`, pinned(cert, fingerprint))
  device.send('over tls')
  const envelope = await nextJson(device)
  t.equal(envelope.original_message, 'over tls')
  t.match(envelope.client, /^127\.0\.0\.1:\d+$/)
  device.send(Buffer.from([0, 1, 2, 255]))
  t.same([...(await nextMessage(device)).data], [0, 1, 2, 255], 'binary echo over tls')

  const debug = await connect(t, `wss://localhost:${debugServer!.port}/`, pinned(cert, fingerprint))
  t.equal((await nextJson(debug)).type, 'welcome', 'by name too: the certificate names localhost')
  const chat = await connect(t, `wss://127.0.0.1:${chatServer!.port}/ws`, pinned(cert, fingerprint))
  t.equal((await nextJson(chat)).type, 'welcome')
  const other = await connect(t, `wss://127.0.0.1:${chatServer!.port}/ws`, pinned(cert, fingerprint))
  t.equal((await nextJson(other)).type, 'welcome')
  chat.send(JSON.stringify({ type: 'message', payload: 'over tls' }))
  const copies = await Promise.all([nextJson(chat), nextJson(other)])
  t.same(copies.map((f) => f.payload), ['over tls', 'over tls'], 'the pre-framed broadcast goes through TLS to every client')

  const wrong = fingerprint.replace(/^../, fingerprint.startsWith('00') ? '01' : '00')
  const refused = new WebSocket(`wss://127.0.0.1:${echoServer!.port}/`, pinned(cert, wrong))
  t.teardown(() => refused.terminate())
  const [err] = await once(refused, 'error') as [Error]
  t.match(err.message, /is not the pinned/, 'a different fingerprint is refused before any frame')
  const unpinned = new WebSocket(`wss://127.0.0.1:${echoServer!.port}/`)
  t.teardown(() => unpinned.terminate())
  const [err2] = await once(unpinned, 'error') as [NodeJS.ErrnoException]
  t.equal(err2.code, 'DEPTH_ZERO_SELF_SIGNED_CERT', 'a client trusting only public CAs refuses the self-signed certificate')

  const page = await fetch(`https://127.0.0.1:${chatServer!.port}/health`).catch((e: Error) => e)
  t.type(page, Error, 'plain fetch refuses it too (nothing here is served over http)')
})

t.test('the CLI: --tls-self-signed prints the fingerprint; a bad file exits 1 with one line', { skip: existsSync(CLI) ? false : 'run npm run build first (npm test does)' }, async (t) => {
  const cwd = t.testdir({ 'garbage.pem': 'nope' })
  const started = spawn(process.execPath, [CLI, '--tls-self-signed', '--host', '127.0.0.1', '--only', 'echo', '--echo-port', '0', '--log-format', 'json'], { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (started.exitCode === null) started.kill('SIGKILL') })
  const banner = JSON.parse(await bannerLine(started.stdout!)) as Record<string, any>
  t.equal(banner.certificate.fingerprint_sha256, new X509Certificate(readFileSync(path.join(cwd, '.echohub/cert.pem'))).fingerprint256, 'the banner line carries the fingerprint')
  t.equal(banner.certificate.self_signed, true)
  t.match(banner.servers[0].urls[0], /^wss:\/\/127\.0\.0\.1:\d+\/$/)
  started.kill('SIGTERM')
  t.equal((await once(started, 'exit'))[0], 0)

  await expectFailure(t, cwd, ['--tls-cert', 'garbage.pem', '--tls-key', '.echohub/key.pem'], /^echohub: --tls-cert garbage\.pem: not PEM text/)
  await expectFailure(t, cwd, ['--tls-cert', '.echohub/cert.pem', '--tls-key', 'missing.key'], /^echohub: --tls-key missing\.key: no such file$/)
  await expectFailure(t, cwd, ['--tls-cert', '.echohub/cert.pem'], /^echohub: --tls-cert needs --tls-key too$/)
})

async function expectFailure (t: Test, cwd: string, args: string[], line: RegExp): Promise<void> {
  const child = spawn(process.execPath, [CLI, '--only', 'echo', '--echo-port', '0', ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => { stderr += String(chunk) })
  const [code] = await once(child, 'exit')
  t.equal(code, 1, `${args.join(' ')}: exit 1`)
  const out = stderr.trimEnd().split('\n')
  t.equal(out.length, 1, 'one line')
  t.match(out[0], line)
}

/** The banner line; the stream is read on, so the child never writes to a closed pipe. */
async function bannerLine (stream: NodeJS.ReadableStream): Promise<string> {
  return await new Promise((resolve, reject) => {
    createInterface({ input: stream }).on('line', (line) => {
      if (line.includes('"msg":"echohub listening"')) resolve(line)
    }).on('close', () => reject(new Error('the process ended early')))
  })
}

t.test('a plain http:// or ws:// request on a TLS port is answered 400 with a hint to use https/wss, not an empty reply', async (t) => {
  t.chdir(t.testdir())
  const hub = await startEchohub(testConfig(['--tls-self-signed']), { logger: silent })
  t.teardown(() => hub.close())
  for (const server of hub.servers) {
    const res = await fetch(`http://127.0.0.1:${server.port}/health`)
    t.equal(res.status, 400, `${server.name}: http:// gets an answer`)
    t.same(await res.json(), { error: 'tls_required', message: 'this port speaks TLS: use https:// (and wss:// for WebSockets) instead of http:// (ws://)' })
  }
  const plain = new WebSocket(`ws://127.0.0.1:${hub.servers[0]!.port}/`)
  plain.on('error', () => {}) // ws reports the end of the refused attempt as an error
  t.teardown(() => plain.terminate())
  const [, response] = await once(plain, 'unexpected-response') as [unknown, { statusCode: number }]
  t.equal(response.statusCode, 400, 'a ws:// client sees the 400 too')
})
