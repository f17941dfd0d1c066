// The chat core on its own, with no Fastify and no network: fake sockets, a real registry, and an
// adapter whose joins can be held back to show what happens meanwhile.
import t from 'tap'
import { setImmediate as nextTurn } from 'node:timers/promises'
import zlib from 'node:zlib'
import { ConnectionRegistry } from '../src/registry.js'
import { ChatCore, type ChatClient, type ChatSocket } from '../src/chat/core.js'
import type { DirectWriter } from '../src/registry.js'
import { MemoryAdapter } from '../src/chat/memory-adapter.js'
import type { JoinResult, Member, AdapterRefusal } from '../src/chat/adapter.js'
import { customEventAck, type JsonObject } from '../src/chat/messages.js'
import { DEFAULT_LIMITS } from '../src/limits.js'

const silent = { info () {}, warn () {}, error () {}, debug () {} }

class FakeSocket implements ChatSocket {
  readyState = 1
  bufferedAmount = 0
  readonly sent: string[] = []
  closedWith: [number | undefined, string | undefined] | undefined
  terminated = false
  send (data: Buffer): void { this.sent.push(data.toString()) }
  close (code?: number, reason?: string): void { this.closedWith = [code, reason] }
  terminate (): void { this.terminated = true; this.readyState = 3 }
  // What the registry needs to attach it; these fake sockets never emit 'close'.
  ping (): void {}
  on (): this { return this }
  /** Parsed frames sent so far, taken off the list. */
  take (): Array<Record<string, any>> { return this.sent.splice(0).map((s) => JSON.parse(s)) }
}

class FakeWire implements DirectWriter {
  readonly writes: Buffer[] = []
  write (data: Buffer): boolean { this.writes.push(data); return true }
}

/** A client that negotiated permessage-deflate; `busy` plays ws's sender compressing a frame. */
class FakeDeflateWire extends FakeWire {
  busy = false
  readonly deflate = { idle: () => !this.busy }
}

/** The messages in a run of server frames, inflating those with RSV1 set (each compressed on its own). */
function unframe (bytes: Buffer): Array<{ deflated: boolean, text: string }> {
  const out = []
  for (let i = 0; i < bytes.length;) {
    const deflated = (bytes[i]! & 0x40) !== 0
    let len = bytes[i + 1]! & 0x7f
    let at = i + 2
    if (len === 126) { len = bytes.readUInt16BE(i + 2); at += 2 } else if (len === 127) { len = Number(bytes.readBigUInt64BE(i + 2)); at += 8 }
    const payload = bytes.subarray(at, at + len)
    const data = deflated ? zlib.inflateRawSync(Buffer.concat([payload, Buffer.from([0, 0, 0xff, 0xff])]), { finishFlush: zlib.constants.Z_SYNC_FLUSH }) : payload
    out.push({ deflated, text: data.toString() })
    i = at + len
  }
  return out
}

/** An in-memory adapter whose joins wait until released. */
class HeldAdapter extends MemoryAdapter {
  readonly held: Array<() => void> = []
  override async join (room: string, member: Member): Promise<JoinResult | AdapterRefusal> {
    await new Promise<void>((resolve) => this.held.push(resolve))
    return await super.join(room, member)
  }
}

function setup (overrides: Partial<Record<keyof typeof DEFAULT_LIMITS, number>> & { adapter?: MemoryAdapter } = {}) {
  const registry = new ConnectionRegistry()
  const endpoint = registry.addEndpoint('chat')
  const adapter = overrides.adapter ?? new MemoryAdapter()
  const core = new ChatCore<null>({
    settings: {
      serverInfo: 'core test',
      welcomeMessage: 'hi',
      maxPayload: overrides.chatMaxPayload ?? 1024,
      rateLimit: overrides.rateLimit ?? 0,
      rateBurst: overrides.rateBurst ?? 40,
      maxBuffered: overrides.maxBuffered ?? 0,
      maxRoomsPerClient: DEFAULT_LIMITS.maxRoomsPerClient,
      historySize: DEFAULT_LIMITS.historySize,
      maxRooms: DEFAULT_LIMITS.maxRooms,
      roomTtl: DEFAULT_LIMITS.roomTtl,
      historyMaxBytes: DEFAULT_LIMITS.historyMaxBytes,
      dedupeWindow: DEFAULT_LIMITS.dedupeWindow,
      dedupeMaxKeys: DEFAULT_LIMITS.dedupeMaxKeys
    },
    registry,
    adapter,
    log: silent,
    handlers: new Map([['add', (p: JsonObject) => Number(p.a) + Number(p.b)]]),
    fallback: (p: JsonObject) => customEventAck(p)
  })
  const join = (direct?: FakeWire) => {
    const socket = new FakeSocket()
    const conn = registry.attach(socket, endpoint, { address: '127.0.0.1', port: 40000 + registry.connections.size, path: '/ws' })
    conn.direct = direct
    const client = core.accept(socket, conn, silent, null)
    socket.take()
    return { socket, client }
  }
  const say = (c: { client: ChatClient<null> }, frame: object) => core.receive(c.client, Buffer.from(JSON.stringify(frame)), false)
  return { core, registry, join, say }
}

t.test('broadcasts of one turn are framed once and written to each plain client in one write', async (t) => {
  const { core, join, say } = setup()
  await core.start()
  const wires = [new FakeWire(), new FakeWire(), new FakeWire()]
  const clients = wires.map((w) => join(w))
  say(clients[0]!, { type: 'message', payload: 'one' })
  say(clients[1]!, { type: 'message', payload: 'two' })
  t.same(wires.map((w) => w.writes.length), [0, 0, 0], 'nothing is written before the turn ends')
  await nextTurn()
  t.same(wires.map((w) => w.writes.length), [1, 1, 1], 'one write per client')
  t.ok(wires.every((w) => w.writes[0] === wires[0]!.writes[0]), 'the very same buffer for every client')
  const bytes = wires[0]!.writes[0]!
  t.equal(bytes[0], 0x81, 'an unmasked final text frame')
  t.match(bytes.toString(), /"payload":"one".*"payload":"two"/s, 'both messages, in order')
})

t.test('presence events of one turn go out with the room\'s messages, in one write per member, none to the client they are about', async (t) => {
  const { core, join, say } = setup()
  await core.start()
  const wires = [new FakeWire(), new FakeWire(), new FakeWire()]
  const [a, b, c] = wires.map((w) => join(w))
  say(a!, { type: 'join', room: 'r' })
  await nextTurn()
  for (const w of wires) w.writes.length = 0
  a!.socket.take()
  // b and c join in one turn, after a message to the room
  say(a!, { type: 'message', room: 'r', payload: 'before' })
  say(b!, { type: 'join', room: 'r' })
  say(c!, { type: 'join', room: 'r' })
  await nextTurn()
  await nextTurn()
  const label = (f: Record<string, any>) => f.type === 'presence' ? `${f.payload.event} ${f.payload.client_id}` : f.type
  // what reached a client: pre-framed writes, then what followed its `joined` through its socket
  const seen = (i: number) => [
    ...wires[i]!.writes.splice(0).flatMap((bytes) => unframe(bytes)).map((m) => label(JSON.parse(m.text))),
    ...[a, b, c][i]!.socket.take().map(label)
  ]
  const [, idB, idC] = [a, b, c].map((x) => x!.client.conn.id)
  t.same(wires[0]!.writes.map((bytes) => unframe(bytes).length), [3], 'a gets the message and both joins in one write')
  t.same(seen(0), ['message', `join ${idB}`, `join ${idC}`], 'in the room\'s order')
  const cJoined = c!.socket.sent.map((f) => JSON.parse(f)).find((f) => f.type === 'joined')
  const [toB, toC] = [seen(1), seen(2)]
  t.same(toB.filter((e) => e.startsWith('join ')), [`join ${idC}`], 'b hears of c, not of itself')
  t.same(toC.filter((e) => e.startsWith('join ')), [], 'c, a member only after b joined, hears of no join...')
  t.ok(cJoined?.payload.members.includes(idB), '...its joined lists b')
  t.ok(toB.includes('joined') && toC.includes('joined'))

  say(c!, { type: 'leave', room: 'r' })
  await nextTurn()
  t.equal(wires[0]!.writes.length, 1, 'a leave is written the same way')
  t.same(seen(0), [`leave ${idC}`])
  t.same(seen(2), ['left'], 'the one who left gets left, not its own leave')
})

t.test('clients with permessage-deflate get large messages compressed once for all of them, small ones as they are', async (t) => {
  const { core, join, say } = setup({ chatMaxPayload: 65536 })
  await core.start()
  const plain = new FakeWire()
  const deflating = [new FakeDeflateWire(), new FakeDeflateWire()]
  const [sender] = [plain, ...deflating].map((w) => join(w))
  const big = 'the same words again '.repeat(200)
  say(sender!, { type: 'message', payload: 'small' })
  say(sender!, { type: 'message', payload: big })
  await nextTurn()
  t.equal(deflating[0]!.writes.length, 1, 'one write per client')
  t.equal(deflating[0]!.writes[0], deflating[1]!.writes[0], 'the very same buffer for both: compressed once')
  const compressed = unframe(deflating[0]!.writes[0]!)
  const asIs = unframe(plain.writes[0]!)
  t.same(compressed.map((m) => m.deflated), [false, true], 'under 1 KiB as it is, the large one deflated')
  t.same(asIs.map((m) => m.deflated), [false, false], 'plain clients get no compressed frame')
  t.same(compressed.map((m) => m.text), asIs.map((m) => m.text), 'the same messages once inflated')
  t.ok(deflating[0]!.writes[0]!.length < plain.writes[0]!.length / 4, 'and much smaller')
})

t.test('while a client\'s own sender compresses a frame, broadcasts to it go through its send, after that frame', async (t) => {
  const { core, join, say } = setup()
  await core.start()
  const wire = new FakeDeflateWire()
  const busy = join(wire)
  wire.busy = true
  say(join(), { type: 'message', payload: 'queued' })
  await nextTurn()
  t.same(wire.writes, [], 'nothing written past the sender')
  t.same(busy.socket.take().map((f) => f.payload), ['queued'], 'sent through the socket instead')
  wire.busy = false
  say(join(), { type: 'message', payload: 'direct' })
  await nextTurn()
  t.equal(wire.writes.length, 1, 'once idle, written straight through again')
})

t.test('a reply never overtakes a broadcast already queued for its client', async (t) => {
  const { core, join, say } = setup()
  await core.start()
  const a = join()
  say(a, { type: 'message', payload: 'first' })
  say(a, { type: 'ping' })
  t.same(a.socket.take().map((f) => f.type), ['message', 'pong'])
})

t.test('a client over the unsent-bytes cap is terminated as a slow consumer and counted', async (t) => {
  const { core, registry, join, say } = setup({ maxBuffered: 100 })
  await core.start()
  const slow = join()
  const fine = join()
  slow.socket.bufferedAmount = 101
  say(fine, { type: 'message', payload: 'x' })
  await nextTurn()
  t.ok(slow.socket.terminated, 'terminated, not closed: a close frame would wait behind the unread bytes')
  t.notOk(fine.socket.terminated)
  t.equal(registry.limitHits.slow_consumer, 1)
  t.notOk(core.clients.has(slow.client), 'it left the chat')
})

t.test('the token bucket drops with rate_limited and closes a client that keeps flooding with 1008', async (t) => {
  const { core, registry, join, say } = setup({ rateLimit: 1, rateBurst: 2 })
  await core.start()
  const a = join()
  for (let i = 0; i < 3; i++) say(a, { type: 'ping' })
  t.same(a.socket.take().map((f) => f.type === 'error' ? f.payload.code : f.type), ['pong', 'pong', 'rate_limited'])
  for (let i = 0; i < 3; i++) say(a, { type: 'ping' })
  t.same(a.socket.closedWith, [1008, 'too many messages: over the rate limit'], 'after 2 x burst drops in a row')
  t.equal(registry.limitHits.rate_limited, 4)
  t.equal(registry.limitHits.rate_flood, 1)
})

t.test('custom events: a handler by action answers the sender alone', async (t) => {
  const { core, join, say } = setup()
  await core.start()
  const a = join()
  const b = join()
  say(a, { type: 'custom_event', payload: { action: 'add', a: 2, b: 3 } })
  t.same(a.socket.take().map((f) => [f.type, f.payload]), [['custom_event', 5]])
  t.same(b.socket.take(), [])
})

t.test('messages published while a join is under way follow joined once each, the stored ones not twice', async (t) => {
  const adapter = new HeldAdapter()
  const { core, join, say } = setup({ adapter })
  await core.start()
  const a = join()
  const b = join()
  say(a, { type: 'join', room: 'r' })
  adapter.held.shift()!()
  await nextTurn()
  t.equal(a.socket.take()[0]!.type, 'joined')
  say(a, { type: 'message', room: 'r', payload: 1 })
  await nextTurn()
  a.socket.take()

  say(b, { type: 'join', room: 'r', since: 0 })
  // b is a member from here on; these are published before its join completes.
  say(a, { type: 'message', room: 'r', payload: 2 })
  await nextTurn()
  say(a, { type: 'message', room: 'r', payload: 3 })
  await nextTurn()
  t.same(b.socket.take(), [], 'nothing reaches b before its joined')
  adapter.held.shift()!()
  await nextTurn()
  await nextTurn()
  const seen = b.socket.take()
  t.equal(seen[0]!.type, 'joined')
  t.same(seen[0]!.payload.history.map((m: Record<string, any>) => m.seq), [1, 2, 3], 'the history covers what was published meanwhile')
  t.same(seen.slice(1).filter((f) => f.type === 'message'), [], 'so the held copies are not sent again')
  say(a, { type: 'message', room: 'r', payload: 4 })
  await nextTurn()
  t.same(b.socket.take().map((f) => f.seq), [4], 'then the live ones')
})

t.test('a client that closes during its join leaves the room in the adapter', async (t) => {
  const adapter = new HeldAdapter()
  const { core, join, say } = setup({ adapter })
  await core.start()
  const a = join()
  say(a, { type: 'join', room: 'gone' })
  core.closed(a.client)
  adapter.held.shift()!()
  await nextTurn()
  await nextTurn()
  t.same(await adapter.rooms(), [{ room: 'gone', members: 0, seq: 0 }], 'no member is left behind')
})

t.test('server-side publish: from 0, to a room or the lobby; a bad room name is refused', async (t) => {
  const { core, join, say } = setup()
  await core.start()
  const a = join()
  say(a, { type: 'join', room: 'r' })
  await nextTurn()
  a.socket.take()
  t.same(await core.publish('r', 'hello'), { id: 1, seq: 1 })
  t.same(await core.publish(null, 'all'), { id: 2, seq: null })
  await t.rejects(core.publish('bad name', 1), { code: 'invalid_room' })
  await nextTurn()
  t.same(a.socket.take().map((f) => [f.from, f.room, f.payload]), [[0, 'r', 'hello'], [0, undefined, 'all']])
})

t.test('a join the adapter fails halfway answers unavailable and leaves no membership behind', async (t) => {
  class FailingHistory extends MemoryAdapter {
    override async history (): Promise<never> { throw new Error('broker gone') }
  }
  const { core, join, say } = setup({ adapter: new FailingHistory() })
  await core.start()
  const a = join()
  say(a, { type: 'join', room: 'r', since: 0 })
  await nextTurn()
  await nextTurn()
  t.same(a.socket.take().map((f) => f.payload?.code), ['unavailable'])
  t.notOk(a.client.rooms.has('r'), 'not left half-joined')
  say(a, { type: 'message', room: 'r', payload: 'x' })
  t.same(a.socket.take().map((f) => f.payload?.code), ['not_in_room'])
})
