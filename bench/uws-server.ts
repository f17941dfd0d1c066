// The native ceiling for bench/run.ts: echohub's protocol on uWebSockets.js (C++ sockets, HTTP
// and WebSocket framing, topic publish), through `@trufflesuite/uws-js-unofficial`, which ships its
// prebuilt binaries. Written as plainly as the `ws` baseline: the same envelopes, JSON.stringify.
//   node dist-bench/uws-server.js --echo-port 0 --chat-port 0
//   prints {"ready":true,...} when listening, or {"ready":false,"missing":"..."} and exits 3 when
//   the package is absent or what loads is its JavaScript fallback (then nothing here is native and
//   a figure would mislead).
// Echo port: `/raw` echoes as is; every other path wraps text in the JSON envelope.
// Chat port, `/ws`: a welcome; `join` subscribes to the room's topic and answers `joined`; a
// `message` is published to the lobby topic (everyone) or the room's topic, the sender included.
// Not the whole chat: no presence events and no member list (socket.io's peer has neither).
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'
import type * as UWS from '@trufflesuite/uws-js-unofficial'

const { values: args } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    'echo-port': { type: 'string', default: '0' },
    'chat-port': { type: 'string', default: '0' }
  }
})

function missing (why: string): never {
  process.stdout.write(JSON.stringify({ ready: false, missing: why }) + '\n')
  process.exit(3)
}

/** The package, when it loads and its App is native code; the JavaScript fallback is refused. */
function load (): typeof UWS {
  let uws: typeof UWS
  const warn = console.warn
  console.warn = () => {} // the package says on stderr when it falls back; the check below says it on stdout
  try {
    uws = createRequire(import.meta.url)('@trufflesuite/uws-js-unofficial') as typeof UWS
  } catch (err) {
    missing(`@trufflesuite/uws-js-unofficial does not load: ${(err as Error).message.split('\n')[0]}`)
  } finally {
    console.warn = warn
  }
  if (!/native code/.test(String(uws.App))) {
    missing(`the uWebSockets.js binary for node ${process.version} (ABI ${process.versions.modules}) did not load: the package fell back to JavaScript`)
  }
  return uws
}

const uws = load()

// The same strings as echohub's defaults, so every server sends frames of the same size.
const ECHO_INFO = 'echohub echo server'
const CHAT_INFO = 'echohub chat server'
const decoder = new TextDecoder()
/** Topics: the lobby, and one per room (a room name cannot clash with it). */
const LOBBY = '#lobby'
const roomTopic = (room: string) => `room:${room}`

function health (app: UWS.TemplatedApp): void {
  app.get('/health', (res) => { res.writeHeader('content-type', 'application/json').end('{"status":"ok"}') })
  app.any('/*', (res) => { res.writeStatus('404 Not Found').end() })
}

// uWS gives the peer's address but not its port: a port of the same width keeps the envelope as long
// as the other servers' (the bench's clients all come from 127.0.0.1, ports 5 digits).
let peers = 0
interface EchoData { client: string, messageId: number }

const echo = uws.App()
health(echo)
const common = { maxPayloadLength: 1024 * 1024, maxBackpressure: 64 * 1024 * 1024, idleTimeout: 120 }
echo.ws<EchoData>('/raw', {
  ...common,
  message: (ws, message, isBinary) => { ws.send(message, isBinary) }
})
echo.ws<EchoData>('/*', {
  ...common,
  upgrade: (res, req, context) => {
    const client = `${decoder.decode(res.getRemoteAddressAsText())}:${40000 + (peers++ % 20000)}`
    res.upgrade<EchoData>({ client, messageId: 0 }, req.getHeader('sec-websocket-key'),
      req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context)
  },
  message: (ws, message, isBinary) => {
    const data = ws.getUserData()
    data.messageId++
    if (isBinary) {
      ws.send(message, true)
      return
    }
    ws.send(JSON.stringify({
      type: 'echo',
      original_message: decoder.decode(message),
      timestamp: new Date().toISOString(),
      client: data.client,
      message_id: data.messageId,
      server_info: ECHO_INFO
    }))
  }
})

interface ChatData { id: number }
let clientIds = 0
let messageIds = 0
const seqs = new Map<string, number>()

const chat = uws.App()
health(chat)
chat.ws<ChatData>('/ws', {
  ...common,
  maxPayloadLength: 64 * 1024,
  upgrade: (res, req, context) => {
    res.upgrade<ChatData>({ id: ++clientIds }, req.getHeader('sec-websocket-key'),
      req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context)
  },
  open: (ws) => {
    ws.subscribe(LOBBY)
    ws.send(JSON.stringify({
      type: 'welcome',
      payload: { client_id: ws.getUserData().id, message: 'Welcome to the echohub chat!', server_info: CHAT_INFO },
      timestamp: new Date().toISOString()
    }))
  },
  message: (ws, message, isBinary) => {
    if (isBinary) return
    let msg: { type?: unknown, room?: unknown, payload?: unknown } | null
    try {
      msg = JSON.parse(decoder.decode(message)) as typeof msg
    } catch {
      return
    }
    if (msg === null || typeof msg !== 'object') return
    if (msg.type === 'message' && 'payload' in msg) {
      const from = ws.getUserData().id
      if (typeof msg.room === 'string') {
        const topic = roomTopic(msg.room)
        if (!ws.isSubscribed(topic)) {
          ws.send(JSON.stringify({ type: 'error', payload: { code: 'not_in_room', room: msg.room }, timestamp: new Date().toISOString() }))
          return
        }
        const seq = (seqs.get(msg.room) ?? 0) + 1
        seqs.set(msg.room, seq)
        chat.publish(topic, JSON.stringify({ type: 'message', room: msg.room, payload: msg.payload, from, id: ++messageIds, seq, timestamp: new Date().toISOString() }))
      } else {
        chat.publish(LOBBY, JSON.stringify({ type: 'message', payload: msg.payload, from, id: ++messageIds, timestamp: new Date().toISOString() }))
      }
    } else if (msg.type === 'join' && typeof msg.room === 'string') {
      ws.subscribe(roomTopic(msg.room))
      ws.send(JSON.stringify({ type: 'joined', room: msg.room, payload: { seq: seqs.get(msg.room) ?? 0 }, timestamp: new Date().toISOString() }))
    } else if (msg.type === 'ping') {
      ws.send(JSON.stringify({ type: 'pong', timestamp: new Date().toISOString() }))
    }
  }
})

function listen (app: UWS.TemplatedApp, port: string | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    app.listen(args.host!, Number(port), (token) => {
      if (token === false) reject(new Error(`uWS could not listen on ${args.host}:${port}`))
      else resolve(uws.us_socket_local_port(token))
    })
  })
}

const echoPort = await listen(echo, args['echo-port'])
const chatPort = await listen(chat, args['chat-port'])
process.stdout.write(JSON.stringify({ ready: true, pid: process.pid, echoPort, chatPort, native: true }) + '\n')

const stop = () => process.exit(0)
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
