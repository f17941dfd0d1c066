// The yardstick for bench/run.ts: echohub's wire protocol hand-rolled on plain `ws`, the way a user
// would write it in an afternoon. Keep it that plain; it is what echohub has to beat.
//   node dist-bench/baseline.js --echo-port 0 --chat-port 0   (prints {"ready":true,...} when listening)
// `--gc-tuned` sets echohub's garbage-collector flags first, the way echohub's CLI does (app/heap.ts).
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Socket } from 'node:net'
import { parseArgs } from 'node:util'
import { WebSocket, WebSocketServer } from 'ws'
import { tuneGarbageCollector } from '../dist/app/heap.js'

const { values: args } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    'echo-port': { type: 'string', default: '0' },
    'chat-port': { type: 'string', default: '0' },
    'gc-tuned': { type: 'boolean', default: false }
  }
})
if (args['gc-tuned']) tuneGarbageCollector()

// The same strings as echohub's defaults, so both servers send frames of the same size.
const ECHO_INFO = 'echohub echo server'
const CHAT_INFO = 'echohub chat server'

/** `address:port` as SPEC writes it: IPv4-mapped as plain IPv4, other IPv6 in brackets. */
function peer (socket: Socket): string {
  let address = socket.remoteAddress ?? 'unknown'
  if (address.startsWith('::ffff:')) address = address.slice(7)
  else if (address.includes(':')) address = `[${address}]`
  return `${address}:${socket.remotePort}`
}

function pathOf (req: http.IncomingMessage): string {
  const url = req.url ?? '/'
  const q = url.indexOf('?')
  return q === -1 ? url : url.slice(0, q)
}

function health (req: http.IncomingMessage, res: http.ServerResponse): void {
  if (pathOf(req) === '/health') {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end('{"status":"ok"}')
  } else {
    res.writeHead(404)
    res.end()
  }
}

// Echo port: `/raw` echoes as is, every other path wraps text in the JSON envelope.
const echoServer = http.createServer(health)
const echoWss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 })
echoServer.on('upgrade', (req, socket, head) => {
  echoWss.handleUpgrade(req, socket, head, (ws) => {
    ws.on('error', () => {}) // a client's protocol error closes its socket; nothing else to do
    if (pathOf(req) === '/raw') {
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
      return
    }
    const client = peer(req.socket)
    let messageId = 0
    ws.on('message', (data, isBinary) => {
      messageId++
      if (isBinary) {
        ws.send(data, { binary: true })
        return
      }
      ws.send(JSON.stringify({
        type: 'echo',
        original_message: data.toString(),
        timestamp: new Date().toISOString(),
        client,
        message_id: messageId,
        server_info: ECHO_INFO
      }))
    })
  })
})

// Chat port: broadcast at `/ws`, serialized once per message and sent to every client in a loop.
const chatServer = http.createServer(health)
const chatWss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 })
let clientIds = 0
let messageIds = 0
chatServer.on('upgrade', (req, socket, head) => {
  if (pathOf(req) !== '/ws') {
    socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
    return
  }
  chatWss.handleUpgrade(req, socket, head, (ws) => {
    const id = ++clientIds
    ws.on('error', () => {})
    ws.send(JSON.stringify({
      type: 'welcome',
      payload: { client_id: id, message: 'Welcome to the echohub chat!', server_info: CHAT_INFO },
      timestamp: new Date().toISOString()
    }))
    ws.on('message', (data, isBinary) => {
      if (isBinary) return
      let msg: { type?: unknown, payload?: unknown } | null
      try {
        msg = JSON.parse(data.toString()) as typeof msg
      } catch {
        return
      }
      if (msg === null || typeof msg !== 'object') return
      if (msg.type === 'message' && 'payload' in msg) {
        const out = JSON.stringify({
          type: 'message',
          payload: msg.payload,
          from: id,
          id: ++messageIds,
          timestamp: new Date().toISOString()
        })
        for (const client of chatWss.clients) {
          if (client.readyState === WebSocket.OPEN) client.send(out)
        }
      } else if (msg.type === 'ping') {
        ws.send(JSON.stringify({ type: 'pong', timestamp: new Date().toISOString() }))
      }
    })
  })
})

function listen (server: http.Server, port: string | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(Number(port), args.host, () => resolve((server.address() as AddressInfo).port))
  })
}

const echoPort = await listen(echoServer, args['echo-port'])
const chatPort = await listen(chatServer, args['chat-port'])
process.stdout.write(JSON.stringify({ ready: true, pid: process.pid, echoPort, chatPort }) + '\n')

const stop = () => process.exit(0)
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
