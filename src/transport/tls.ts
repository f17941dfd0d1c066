// Certificates for https/wss: reads a PEM certificate and key and checks they belong together, or
// makes a self-signed one once and keeps it, so the fingerprint a device pins stays the same.
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto'
import { chmod, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type { Socket } from 'node:net'
import type { Server as TlsServer, TLSSocket } from 'node:tls'
import { TlsFileError } from '../errors.js'

export interface TlsMaterial {
  /** PEM certificate (with its chain, if the file had one) and private key, as Node's https takes them. */
  cert: string
  key: string
  /** SHA-256 fingerprint of the certificate, `AB:CD:...`, as devices pin it. */
  fingerprint: string
  /** When the certificate stops being valid. */
  validTo: Date
  certFile: string
  keyFile: string
}

export interface SelfSigned extends TlsMaterial {
  /** Made at this start (false: the kept one was reused). */
  created: boolean
  /** Addresses of this machine the kept certificate does not name (the LAN address changed). */
  uncovered: string[]
}

/** The flags an error names, and what to do about it. */
interface TlsFlags {
  cert: string
  key: string
  remedy?: string
}

/** Where `--tls-self-signed` keeps its certificate and key, relative to the working directory. */
export const SELF_SIGNED_DIR = '.echohub'
const CERT_NAME = 'cert.pem'
const KEY_NAME = 'key.pem'
/** 825 days: the longest validity Apple platforms accept for a TLS server certificate. */
const VALID_DAYS = 825
/** A kept certificate closer than this to its end is replaced at start. */
const RENEW_BEFORE_MS = 24 * 3600 * 1000

/** The non-internal IPv4 addresses of this machine, as a device on the LAN reaches it. */
export function lanAddresses (): string[] {
  return Object.values(os.networkInterfaces())
    .flatMap((list) => list ?? [])
    .filter((a) => a.family === 'IPv4' && !a.internal)
    .map((a) => a.address)
}

/** What a self-signed certificate names: localhost, the loopback addresses and the LAN addresses. */
export function selfSignedHosts (): string[] {
  return ['localhost', '127.0.0.1', '::1', ...lanAddresses()]
}

/** SHA-256 fingerprint of a PEM certificate, `AB:CD:...`. */
export function fingerprint (certPem: string): string {
  return new X509Certificate(certPem).fingerprint256
}

/**
 * Reads a certificate and its key. Each problem (unreadable file, not PEM, an encrypted key, a key
 * of another certificate) throws a TlsFileError naming the flag and the file.
 */
export async function loadTls (certFile: string, keyFile: string, flags: TlsFlags = { cert: '--tls-cert', key: '--tls-key' }): Promise<TlsMaterial> {
  const remedy = flags.remedy ?? ''
  const fail = (flag: string, file: string, problem: string) => new TlsFileError(flag, file, problem + remedy)
  const cert = await readPem(certFile, flags.cert, fail)
  const key = await readPem(keyFile, flags.key, fail)
  let x509: X509Certificate
  try {
    x509 = new X509Certificate(cert)
  } catch {
    throw fail(flags.cert, certFile, 'not a PEM certificate (expected a -----BEGIN CERTIFICATE----- block)')
  }
  let keyObject: KeyObject
  try {
    keyObject = createPrivateKey(key)
  } catch (err) {
    // OpenSSL asks for the passphrase and, with none to give, reports the prompt as cancelled.
    const problem = key.includes('ENCRYPTED') || (err as NodeJS.ErrnoException).code === 'ERR_MISSING_PASSPHRASE'
      ? 'the private key is encrypted; give echohub an unencrypted one (openssl pkey -in KEY -out KEY.plain)'
      : 'not a PEM private key (expected a -----BEGIN PRIVATE KEY----- block)'
    throw fail(flags.key, keyFile, problem)
  }
  if (!x509.checkPrivateKey(keyObject)) {
    throw fail(flags.key, keyFile, `is not the private key of the certificate in ${certFile}`)
  }
  return { cert, key, fingerprint: x509.fingerprint256, validTo: new Date(x509.validTo), certFile, keyFile }
}

async function readPem (file: string, flag: string, fail: (flag: string, file: string, problem: string) => Error): Promise<string> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    const problem = code === 'ENOENT'
      ? 'no such file'
      : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory, not a file' : `cannot be read (${code ?? String(err)})`
    throw fail(flag, file, problem)
  }
  if (!text.includes('-----BEGIN ')) throw fail(flag, file, 'not PEM text (no -----BEGIN ...----- line)')
  return text
}

/**
 * The self-signed certificate kept in `dir`: made at the first start (key file mode 0600), read
 * at every later one, and made anew only once it has (nearly) expired.
 */
export async function selfSignedTls (dir: string = SELF_SIGNED_DIR, hosts: string[] = selfSignedHosts()): Promise<SelfSigned> {
  const certFile = path.join(dir, CERT_NAME)
  const keyFile = path.join(dir, KEY_NAME)
  if (await exists(certFile) && await exists(keyFile)) {
    const kept = await loadTls(certFile, keyFile, { cert: '--tls-self-signed', key: '--tls-self-signed', remedy: ` (delete ${dir}/ and start again to make a new certificate)` })
    if (kept.validTo.getTime() - Date.now() > RENEW_BEFORE_MS) {
      // A key copied in with looser permissions is tightened rather than left readable.
      if (((await stat(keyFile)).mode & 0o077) !== 0) await chmod(keyFile, 0o600)
      const x509 = new X509Certificate(kept.cert)
      const uncovered = hosts.filter((h) => (h.includes(':') || /^\d/.test(h) ? x509.checkIP(h) : x509.checkHost(h)) === undefined)
      return { ...kept, created: false, uncovered }
    }
  }
  await makeSelfSigned(dir, certFile, keyFile, hosts)
  return { ...await loadTls(certFile, keyFile), created: true, uncovered: [] }
}

async function makeSelfSigned (dir: string, certFile: string, keyFile: string, hosts: string[]): Promise<void> {
  const notBeforeDate = new Date(Date.now() - 60_000) // a device whose clock is a little behind still accepts it
  const notAfterDate = new Date(notBeforeDate.getTime() + VALID_DAYS * 24 * 3600 * 1000)
  const altNames = hosts.map((h) => h.includes(':') || /^\d/.test(h) ? { type: 7 as const, ip: h } : { type: 2 as const, value: h })
  // Loaded here, not at start: it is a large module that only --tls-self-signed needs, once.
  const { generate } = await import('selfsigned')
  // RSA rather than EC: the TLS stacks of small devices all speak it.
  const pems = await generate([{ name: 'commonName', value: 'localhost' }, { name: 'organizationName', value: 'echohub self-signed' }], {
    keyType: 'rsa',
    keySize: 2048,
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames }
    ]
  })
  await mkdir(dir, { recursive: true, mode: 0o700 })
  // Written aside and renamed, so a second process starting at the same moment never reads half a file.
  const suffix = `.${process.pid}.tmp`
  await writeFile(keyFile + suffix, pems.private, { mode: 0o600 })
  await chmod(keyFile + suffix, 0o600)
  await writeFile(certFile + suffix, pems.cert, { mode: 0o644 })
  await rename(keyFile + suffix, keyFile)
  await rename(certFile + suffix, certFile)
}

async function exists (file: string): Promise<boolean> {
  try {
    await stat(file)
    return true
  } catch {
    return false
  }
}

/** What a plain HTTP request on a TLS port is answered, so the client learns why instead of an empty reply. */
export const PLAIN_HTTP_ANSWER = {
  error: 'tls_required',
  message: 'this port speaks TLS: use https:// (and wss:// for WebSockets) instead of http:// (ws://)'
}

/**
 * Answers a plain HTTP request (or ws:// upgrade) sent to a TLS port with a 400 saying to use
 * https/wss, instead of the connection closing without a word ("Empty reply from server").
 * OpenSSL recognises an HTTP request line where a TLS handshake was expected; the answer is
 * written on the TCP socket under the failed TLS one, before Node closes it. `onPlainHttp` is told
 * the peer, for a log line.
 */
export function answerPlainHttp (server: TlsServer, onPlainHttp: (peer: { address: string | undefined, port: number | undefined }) => void): void {
  const body = JSON.stringify(PLAIN_HTTP_ANSWER)
  const response = `HTTP/1.1 400 Bad Request\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
    if (err.code !== 'ERR_SSL_HTTP_REQUEST') return
    // The TCP socket the TLS one was wrapped around: what is written there goes out as is.
    const raw = (socket as TLSSocket & { _parent?: Socket | null })._parent
    if (raw === undefined || raw === null || raw.destroyed) return
    onPlainHttp({ address: raw.remoteAddress, port: raw.remotePort })
    raw.end(response)
  })
}
