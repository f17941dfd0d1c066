// The peer for bench/run.ts: the chat a web developer would write with socket.io instead of echohub,
// as its documentation shows it. WebSocket transport only, compression off. A `message` event is
// relayed with the same fields echohub's chat adds (from, id, timestamp) to everyone (`io.emit`), or
// to a room (`io.to(room).emit`) when it names one; `join` joins a room and answers `joined`.
// With `--redis URL`, @socket.io/redis-adapter carries broadcasts between instances.
//   node dist-bench/socketio-server.js --port 0 [--redis redis://127.0.0.1:6379 --key bench#1]
//   (prints {"ready":true,...} when listening)
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'
import { Server } from 'socket.io'
import { createAdapter } from '@socket.io/redis-adapter'
import { Redis } from 'ioredis'

const { values: args } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
    redis: { type: 'string' },
    key: { type: 'string', default: 'socket.io' }
  }
})

const server = http.createServer((req, res) => {
  const ok = req.url === '/health'
  res.writeHead(ok ? 200 : 404, { 'content-type': 'application/json' })
  res.end(ok ? '{"status":"ok"}' : '{}')
})
const io = new Server(server, { transports: ['websocket'], perMessageDeflate: false, serveClient: false })

const redis: Redis[] = []
if (args.redis !== undefined) {
  const pub = new Redis(args.redis, { lazyConnect: true })
  const sub = pub.duplicate()
  await Promise.all([pub.connect(), sub.connect()])
  redis.push(pub, sub)
  io.adapter(createAdapter(pub, sub, { key: args.key }))
}

let messageIds = 0
io.on('connection', (socket) => {
  socket.on('join', (room: unknown) => {
    if (typeof room !== 'string') return
    void socket.join(room)
    socket.emit('joined', room)
  })
  socket.on('message', (msg: { room?: unknown, payload?: unknown } | null) => {
    if (msg === null || typeof msg !== 'object') return
    const out = { payload: msg.payload, from: socket.id, id: ++messageIds, timestamp: new Date().toISOString() }
    if (typeof msg.room === 'string') io.to(msg.room).emit('message', out)
    else io.emit('message', out)
  })
})

server.listen(Number(args.port), args.host, () => {
  const { port } = server.address() as AddressInfo
  process.stdout.write(JSON.stringify({ ready: true, pid: process.pid, port }) + '\n')
})

const stop = () => {
  for (const client of redis) client.disconnect()
  process.exit(0)
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
