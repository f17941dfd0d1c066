// The behaviour of ws and @fastify/websocket that echohub relies on beyond their documented API
// (plugins/ws-internals.ts). Each test fails if a new version of either package changes it.
import t from 'tap'
import websocket from '@fastify/websocket'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import { addFirstPreClose, allowPendingPongs, directSocket, explainOversize, raiseMaxPayload, releaseUpgrade, rememberUpgrade, replaceHandleProtocols, takeUpgrade } from '../plugins/ws-internals.js'
import { connect as netConnect } from 'node:net'
import { dataFrame, textFrame } from '../src/transport/frames.js'
import { deflateMessage, PER_MESSAGE_DEFLATE } from '../src/transport/compression.js'
import { closed, connect, listen, nextMessage } from './helpers/index.js'
import { frame, isUpgraded, rawClient, rawUpgrade } from './helpers/raw.js'

t.test('releaseUpgrade: @fastify/websocket adds its error listener last, and its response holds the upgrade socket', async (t) => {
  const handled: Error[] = []
  let sawResponseOnSocket = false
  let response: FastifyReply['raw'] | undefined
  let released: { before: number, after: number, detached: boolean } | undefined
  const probe = new Error('probe')
  const { url } = await listen(t, async (app) => {
    await app.register(websocket, { errorHandler: (err) => { handled.push(err) } })
    app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
      if (!request.ws) return
      // The ServerResponse the library made is attached to the TCP socket: detaching it frees it.
      sawResponseOnSocket = reply.raw.socket === request.raw.socket
      response = reply.raw
      rememberUpgrade(request, reply)
    })
    app.get('/', { websocket: true }, (socket: WebSocket, request: FastifyRequest) => {
      // The last error listener at this point is the library's: it calls the errorHandler.
      const last = socket.listeners('error').at(-1) as ((err: Error) => void) | undefined
      last?.(probe)
      const before = socket.listeners('error').length
      releaseUpgrade(socket, request)
      released = { before, after: socket.listeners('error').length, detached: response?.socket === null }
      socket.on('message', (data) => socket.send(data))
    })
  })
  const ws = await connect(t, url)
  ws.send('after release')
  t.equal((await nextMessage(ws)).text, 'after release', 'the connection works after the release')
  t.same(handled, [probe], 'the last error listener is the one that reaches the errorHandler')
  t.equal(sawResponseOnSocket, true, 'the reply\'s ServerResponse is the one assigned to the upgrade socket')
  t.same(released, { before: 1, after: 0, detached: true }, 'releaseUpgrade removed that listener and detached the response')
})

t.test('directSocket: frames written to the TCP socket keep their place among ws\'s own and count in bufferedAmount', async (t) => {
  let buffered: { before: number, during: number } | undefined
  const { url } = await listen(t, async (app) => {
    await app.register(websocket)
    app.get('/', { websocket: true }, (socket: WebSocket, request: FastifyRequest) => {
      const direct = directSocket(socket, request)
      if (direct === undefined || direct.deflate !== undefined) {
        socket.close(1011, 'no plain direct socket')
        return
      }
      socket.send('one')
      direct.write(textFrame(Buffer.from('two')))
      socket.send('three')
      const before = socket.bufferedAmount
      request.raw.socket.cork()
      direct.write(textFrame(Buffer.alloc(1000, 'x')))
      buffered = { before, during: socket.bufferedAmount }
      request.raw.socket.uncork()
    })
  })
  const ws = await connect(t, url)
  const texts = []
  for (let i = 0; i < 4; i++) texts.push((await nextMessage(ws)).text)
  t.same(texts.slice(0, 3), ['one', 'two', 'three'], 'in the order they were written')
  t.equal(texts[3]!.length, 1000)
  t.ok(buffered !== undefined && buffered.during - buffered.before >= 1000, 'bytes waiting in the TCP socket count in bufferedAmount')
})

t.test('directSocket with permessage-deflate: busy while ws compresses a frame, and a message deflated once inflates on the client', async (t) => {
  const idle: boolean[] = []
  const { url } = await listen(t, async (app) => {
    await app.register(websocket, { options: { perMessageDeflate: PER_MESSAGE_DEFLATE } })
    app.get('/', { websocket: true }, (socket: WebSocket, request: FastifyRequest) => {
      const direct = directSocket(socket, request)
      if (direct?.deflate === undefined) {
        socket.close(1011, 'no deflating direct socket')
        return
      }
      idle.push(direct.deflate.idle())
      socket.send('one '.repeat(1000), () => {
        idle.push(direct.deflate!.idle())
        direct.write(dataFrame(deflateMessage(Buffer.from('two '.repeat(1000))), false, true))
        socket.send('three')
      })
      idle.push(direct.deflate.idle()) // ws compresses 'one' off the main thread meanwhile
    })
  })
  const ws = await connect(t, url, { perMessageDeflate: true })
  const texts = []
  for (let i = 0; i < 3; i++) texts.push((await nextMessage(ws)).text)
  t.match(ws.extensions, /^permessage-deflate/, 'compression was negotiated')
  t.same(texts, ['one '.repeat(1000), 'two '.repeat(1000), 'three'], 'in order, the directly written one inflated by the ws client')
  t.same(idle, [true, false, true], 'idle, then busy while ws compresses, then idle once it has sent')
})

t.test('directSocket: none when permessage-deflate keeps the server\'s context between messages', async (t) => {
  let direct: unknown = 'unset'
  const { url } = await listen(t, async (app) => {
    await app.register(websocket, { options: { perMessageDeflate: true } })
    app.get('/', { websocket: true }, (socket: WebSocket, request: FastifyRequest) => {
      direct = directSocket(socket, request)
      socket.send('hi')
    })
  })
  const ws = await connect(t, url, { perMessageDeflate: true })
  await nextMessage(ws)
  t.equal(ws.extensions.includes('permessage-deflate'), true, 'compression was negotiated')
  t.equal(direct, undefined, 'a message compressed elsewhere would break the context ws and the client share')
})

t.test('raiseMaxPayload: ws reads maxPayload at each upgrade, so raising it after the server is built works', async (t) => {
  const build = (raise: boolean) => listen(t, async (app) => {
    await app.register(websocket, { options: { maxPayload: 10 } })
    app.get('/', { websocket: true }, (socket: WebSocket) => {
      socket.on('message', (data) => socket.send(data))
    })
    await app.ready()
    if (raise) raiseMaxPayload(app.websocketServer, 100)
  })
  const message = 'x'.repeat(50)
  const raised = await build(true)
  const ws = await connect(t, raised.url)
  ws.send(message)
  t.equal((await nextMessage(ws)).text, message, 'a message under the raised cap is accepted')
  t.equal(raised.app.websocketServer.options.maxPayload, 100)
  raiseMaxPayload(raised.app.websocketServer, 20)
  t.equal(raised.app.websocketServer.options.maxPayload, 100, 'never lowered')

  const kept = await build(false)
  const small = await connect(t, kept.url)
  small.send(message)
  t.equal((await closed(small)).code, 1009, 'without raising it, the same message is too big')
})

t.test('allowPendingPongs: ws cuts off a client with maxPendingAutoPongs unwritten pongs, reading the option at each upgrade', async (t) => {
  const build = (allow: number | undefined) => listen(t, async (app) => {
    await app.register(websocket)
    app.get('/', { websocket: true }, () => {})
    await app.ready()
    if (allow !== undefined) allowPendingPongs(app.websocketServer, allow)
  })
  const pongsFor = async (port: number) => {
    const reader = await rawClient(t, port, '/')
    reader.upgraded.socket.write(Buffer.concat(Array.from({ length: 150 }, () => frame(0x9, Buffer.alloc(0)))))
    await reader.ended()
    return { pongs: reader.frames.filter((f) => f.opcode === 0xa).length, closes: reader.frames.filter((f) => f.opcode === 0x8).length }
  }
  const plain = await build(undefined)
  t.same(await pongsFor(plain.port), { pongs: 60, closes: 0 }, 'ws\'s default: 60 pongs, then the TCP connection ends without a close frame')
  const raised = await build(120)
  t.equal((raised.app.websocketServer.options as { maxPendingAutoPongs?: number }).maxPendingAutoPongs, 120)
  t.same(await pongsFor(raised.port), { pongs: 120, closes: 0 }, 'raised after the server was built: 120')
  allowPendingPongs(raised.app.websocketServer, 30)
  t.equal((raised.app.websocketServer.options as { maxPendingAutoPongs?: number }).maxPendingAutoPongs, 120, 'never lowered')
})

t.test('replaceHandleProtocols: ws reads handleProtocols at each upgrade, so replacing it after the server is built works', async (t) => {
  let before: unknown
  const { app, port } = await listen(t, async (app) => {
    await app.register(websocket, { options: { handleProtocols: () => 'first' } })
    app.get('/', { websocket: true }, (socket: WebSocket) => { socket.close() })
    await app.ready()
  })
  replaceHandleProtocols(app.websocketServer, (current) => {
    before = current
    return (offered) => [...offered].at(-1) ?? false
  })
  t.type(before, 'function', 'the app\'s own function is handed over')
  const answer = await rawUpgrade(t, port, '/', { 'Sec-WebSocket-Protocol': 'a, b, c' })
  if (!isUpgraded(answer)) throw new Error('not upgraded')
  t.equal(answer.headers['sec-websocket-protocol'], 'c', 'the replacement decided')
})

t.test('explainOversize: ws reports a message over its cap to the receiver\'s error listeners before it closes, so the close frame can carry a reason', async (t) => {
  const { url } = await listen(t, async (app) => {
    await app.register(websocket, { options: { maxPayload: 100 } })
    app.get('/', { websocket: true }, (socket) => { explainOversize(socket, 1000) })
  })
  for (const [what, send] of [
    ['one frame', (ws: WebSocket) => ws.send('x'.repeat(150))],
    ['fragments', (ws: WebSocket) => { ws.send('x'.repeat(60), { fin: false }); ws.send('x'.repeat(60), { fin: true }) }]
  ] as const) {
    const ws = await connect(t, url)
    send(ws)
    const { code, reason } = await closed(ws)
    t.same([code, reason], [1009, `message of ${what === 'one frame' ? 150 : 120} bytes over the 100-byte limit`], `${what}: the size and the lower of the two limits`)
  }
})

t.test('takeUpgrade: @fastify/websocket keeps the bytes read past the head under "ws-head", and a hijacked upgrade is the route\'s alone', async (t) => {
  let handlerRan = false
  const { port } = await listen(t, async (app) => {
    await app.register(websocket)
    app.route({
      method: 'GET',
      url: '/own',
      preHandler: async (request, reply) => {
        const { socket, head, headers } = takeUpgrade(request, reply)
        // The route answers the handshake itself, and sends back what came after the request.
        socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Key: ${String(headers['sec-websocket-key'])}\r\n\r\n`)
        socket.end(head)
        return reply
      },
      handler: async () => 'plain',
      wsHandler: () => { handlerRan = true }
    })
  })
  const answer = await new Promise<string>((resolve, reject) => {
    const socket = netConnect(port, '127.0.0.1', () => {
      socket.write('GET /own HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\nEARLY-BYTES')
    })
    let got = ''
    socket.on('data', (chunk) => { got += chunk.toString('latin1') })
    socket.on('end', () => resolve(got))
    socket.on('error', reject)
  })
  t.match(answer, /^HTTP\/1\.1 101 Switching Protocols\r\n/, 'only the route answered')
  t.match(answer, /X-Key: dGhlIHNhbXBsZSBub25jZQ==/)
  t.ok(answer.endsWith('\r\n\r\nEARLY-BYTES'), 'the head reached the route')
  t.notOk(handlerRan, 'ws never took the upgrade')
})

t.test('addFirstPreClose: Fastify runs an instance\'s preClose hooks in the order of its hooks array, so one put first runs first', async (t) => {
  const order: string[] = []
  const { app } = await listen(t, async (app) => {
    app.addHook('preClose', async () => { order.push('added first') })
    addFirstPreClose(app, async () => { order.push('put first') })
    app.addHook('preClose', async () => { order.push('added last') })
  })
  await app.close()
  t.same(order, ['put first', 'added first', 'added last'])
})
