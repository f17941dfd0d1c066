// The connection registry on its own, without Fastify or ws: a socket attached to an endpoint is
// counted until it closes, however it closes, and the heartbeat pings it through its Connection.
import t from 'tap'
import { EventEmitter } from 'node:events'
import { ConnectionRegistry, connectionOf, type RegistrySocket } from '../src/registry.js'
import { LIMIT_NAMES } from '../src/limits.js'

/** The least a socket must do for the registry; records what the registry did to it. */
class FakeSocket extends EventEmitter implements RegistrySocket {
  readyState = 1
  pings = 0
  closedWith: [number | undefined, string | undefined] | undefined
  terminated = false

  close (code?: number, reason?: string): void {
    this.closedWith = [code, reason]
    this.readyState = 2
  }

  terminate (): void {
    this.terminated = true
    this.finish()
  }

  ping (): void {
    this.pings++
  }

  /** The socket is gone: 'close' is emitted once, as ws does. */
  finish (): void {
    this.readyState = 3
    this.emit('close', 1006, Buffer.alloc(0))
  }
}

t.test('attach opens a Connection that leaves the registry when its socket closes', async (t) => {
  const registry = new ConnectionRegistry()
  const echo = registry.addEndpoint('echo')
  const socket = new FakeSocket()
  const conn = registry.attach(socket, echo, { address: '::ffff:10.0.0.7', port: 5123, path: '/device/1?token=s3cret' })
  t.equal(conn.id, 1)
  t.equal(conn.socket, socket, 'the Connection keeps its socket')
  t.equal(connectionOf(socket), conn, 'and the socket leads back to it')
  t.equal(conn.peer, '10.0.0.7:5123')
  t.equal(conn.path, '/device/1', 'the query, which may hold a token, is not kept')
  t.equal(registry.connections.size, 1)
  t.equal(registry.connectionsFrom('10.0.0.7'), 1)
  t.same(echo.connections, { current: 1, peak: 1, total: 1 })

  // The endpoint's own close listener, added after attach, sees the registry without the connection.
  let seenByEndpoint = -1
  socket.on('close', () => { seenByEndpoint = registry.connections.size })
  socket.finish()
  t.equal(seenByEndpoint, 0)
  t.equal(conn.isOpen, false)
  t.equal(registry.connectionsFrom('10.0.0.7'), 0)
  t.same(echo.connections, { current: 0, peak: 1, total: 1 })
  conn.remove()
  t.same(echo.connections, { current: 0, peak: 1, total: 1 }, 'a second remove counts nothing')
})

t.test('a socket already closed when attached is counted as opened and closed', async (t) => {
  const registry = new ConnectionRegistry()
  const echo = registry.addEndpoint('echo')
  const socket = new FakeSocket()
  socket.readyState = 3
  registry.attach(socket, echo, { address: '127.0.0.1', port: 1, path: '/' })
  t.equal(registry.connections.size, 0)
  t.same(echo.connections, { current: 0, peak: 1, total: 1 })
})

t.test('attach refuses an endpoint this registry does not hold', async (t) => {
  const registry = new ConnectionRegistry()
  const stranger = new ConnectionRegistry().addEndpoint('echo')
  t.throws(() => registry.attach(new FakeSocket(), stranger, { address: undefined, port: undefined, path: '/' }), /not declared/)
})

t.test('connectionsOf picks the connections of some endpoints only', async (t) => {
  const registry = new ConnectionRegistry()
  const a = registry.addEndpoint('a')
  const b = registry.addEndpoint('b')
  const inA = registry.attach(new FakeSocket(), a, { address: '127.0.0.1', port: 1, path: '/' })
  registry.attach(new FakeSocket(), b, { address: '127.0.0.1', port: 2, path: '/' })
  t.same(registry.connectionsOf(new Set([a])), [inA])
  t.equal(registry.connectionsOf(new Set([a, b])).length, 2)
  t.same(registry.connectionsOf(new Set()), [])
})

t.test('heartbeat: a ping goes out while the last one was answered; an unanswered one says so', async (t) => {
  const registry = new ConnectionRegistry()
  const socket = new FakeSocket()
  const conn = registry.attach(socket, registry.addEndpoint('echo'), { address: '127.0.0.1', port: 1, path: '/' })
  t.equal(socket.listenerCount('pong'), 0, 'no pong listener until the first ping')
  t.equal(conn.heartbeat(), true)
  t.equal(socket.pings, 1)
  socket.emit('pong')
  t.equal(conn.heartbeat(), true, 'answered: pinged again')
  t.equal(socket.pings, 2)
  t.equal(socket.listenerCount('pong'), 1, 'one pong listener however many pings')
  t.equal(conn.heartbeat(), false, 'not answered: the caller cuts it off')
  t.equal(socket.pings, 2, 'and no further ping is sent')
})

t.test('hit counts limits by their listed names', async (t) => {
  const registry = new ConnectionRegistry()
  for (const limit of LIMIT_NAMES) registry.hit(limit)
  registry.hit('oversize')
  t.equal(registry.limitHits.oversize, 2)
  t.same(Object.keys(registry.snapshot().limits.hits), [...LIMIT_NAMES])
})
