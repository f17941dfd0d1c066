// Redis for tests: the shared one at REDIS_URL (each test on its own key prefix, deleted in
// teardown), or a private redis-server on a free port that a test may stop and start.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { createServer } from 'node:net'
import { Redis } from 'ioredis'
import type { Test } from 'tap'

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

/** Why Redis cannot be used (undefined: it answers PING). */
export async function redisMissing (url = REDIS_URL): Promise<string | undefined> {
  const client = new Redis(url, { lazyConnect: true, retryStrategy: () => null, connectTimeout: 2000, maxRetriesPerRequest: 0 })
  client.on('error', () => {})
  try {
    await client.connect()
    await client.ping()
    return undefined
  } catch (err) {
    return `no Redis at ${url} (${(err as Error).message}); start one or set REDIS_URL`
  } finally {
    client.disconnect()
  }
}

/** A key prefix of the test's own, whose keys are deleted in teardown. */
export function testPrefix (t: Test, url = REDIS_URL): string {
  const prefix = `echohub-test:${randomUUID().slice(0, 8)}:`
  t.teardown(() => dropPrefix(url, prefix))
  return prefix
}

export async function dropPrefix (url: string, prefix: string): Promise<void> {
  const client = new Redis(url, { retryStrategy: () => null, maxRetriesPerRequest: 0 })
  client.on('error', () => {})
  try {
    let cursor = '0'
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500)
      cursor = next
      if (keys.length > 0) await client.del(...keys)
    } while (cursor !== '0')
  } catch {} finally {
    client.disconnect()
  }
}

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

/** A redis-server of the test's own on a free port, without persistence; stopped in teardown. */
export interface OwnRedis {
  url: string
  port: number
  /** Starts it (again) and resolves once it answers PING. */
  start: () => Promise<void>
  /** Stops it and resolves once the process has exited. */
  stop: () => Promise<void>
}

/** `password`: the server requires it (`url` then carries it). */
export async function ownRedis (t: Test, options: { password?: string } = {}): Promise<OwnRedis> {
  const port = await freePort()
  const url = options.password === undefined ? `redis://127.0.0.1:${port}` : `redis://:${options.password}@127.0.0.1:${port}`
  const auth = options.password === undefined ? [] : ['--requirepass', options.password]
  let child: ChildProcess | undefined
  const stop = async (): Promise<void> => {
    const running = child
    child = undefined
    if (running === undefined || running.exitCode !== null) return
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()))
    running.kill('SIGKILL')
    await exited
  }
  const start = async (): Promise<void> => {
    if (child !== undefined) throw new Error('already running')
    const started = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...auth], { stdio: 'ignore' })
    child = started
    const failed = new Promise<never>((_resolve, reject) => {
      started.once('error', reject)
      started.once('exit', (code) => reject(new Error(`redis-server exited with ${String(code)}`)))
    })
    failed.catch(() => {})
    const deadline = Date.now() + 10000
    for (;;) {
      const why = await Promise.race([redisMissing(url), failed])
      if (why === undefined) return
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer: ${why}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  t.teardown(stop)
  await start()
  return { url, port, start, stop }
}

/** Why no private redis-server can be started (undefined: the binary is there). */
export async function redisServerMissing (): Promise<string | undefined> {
  return await new Promise((resolve) => {
    const probe = spawn('redis-server', ['--version'], { stdio: 'ignore' })
    probe.once('error', () => resolve('redis-server is not installed (apt-get install redis-server)'))
    probe.once('exit', (code) => resolve(code === 0 ? undefined : `redis-server --version exited with ${String(code)}`))
  })
}
