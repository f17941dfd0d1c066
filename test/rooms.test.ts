// Chat rooms on the wire: join, leave, room messages with seq, presence, history, resume with
// since, the room limits and their errors, GET /rooms, POST /publish and /stats rooms.
import t, { type Test } from 'tap'
import { chat, stats, type ChatOptions } from '../index.js'
import { eventually, listen } from './helpers/index.js'
import { drain, joinChat, type ChatClient, type Frame } from './helpers/chat.js'

const ISO_MS_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

async function chatServer (t: Test, options: ChatOptions = {}) {
  const server = await listen(t, async (app) => {
    await app.register(chat, { rateLimit: 0, ...options })
    await app.register(stats)
  })
  return { ...server, url: server.url + '/ws' }
}

function send (client: ChatClient, frame: object): void {
  client.ws.send(JSON.stringify(frame))
}

/** Sends a frame and reads the client's next frame of `type`, skipping presence and broadcasts. */
async function ask (client: ChatClient, frame: object, type: string): Promise<Frame> {
  send(client, frame)
  for (;;) {
    const next = await client.inbox.next()
    if (next.type === type) return next
    if (next.type === 'error') throw new Error(`expected ${type}, got error ${JSON.stringify(next)}`)
  }
}

async function nextOf (client: ChatClient, type: string): Promise<Frame> {
  for (;;) {
    const next = await client.inbox.next()
    if (next.type === type) return next
  }
}

async function errorFor (client: ChatClient, frame: object): Promise<Frame['payload']> {
  send(client, frame)
  const next = await nextOf(client, 'error')
  return next.payload
}

t.test('join answers joined with members, seq and recovered; the others get presence join', async (t) => {
  const { url } = await chatServer(t)
  const a = await joinChat(t, url)
  const b = await joinChat(t, url)
  const joinedA = await ask(a, { type: 'join', room: 'lab-1' }, 'joined')
  t.same(Object.keys(joinedA), ['type', 'room', 'payload', 'timestamp'], 'keys in the SPEC order')
  t.same(Object.keys(joinedA.payload), ['members', 'seq', 'epoch', 'recovered', 'history'])
  t.match(joinedA.payload.epoch, /^[A-Za-z0-9_.:-]{1,64}$/)
  t.same(joinedA.payload, { members: [a.clientId], seq: 0, epoch: joinedA.payload.epoch, recovered: true, history: [] })
  t.match(joinedA.timestamp, ISO_MS_UTC)

  const joinedB = await ask(b, { type: 'join', room: 'lab-1' }, 'joined')
  t.same(joinedB.payload.members, [a.clientId, b.clientId], 'the joiner included')
  const presence = await nextOf(a, 'presence')
  t.same(Object.keys(presence), ['type', 'room', 'payload', 'timestamp'])
  t.same(presence.payload, { event: 'join', client_id: b.clientId, count: 2 })
  t.equal(presence.room, 'lab-1')

  const again = await ask(b, { type: 'join', room: 'lab-1' }, 'joined')
  t.same(again.payload.members, [a.clientId, b.clientId], 'joining again answers joined again')
  t.same(await drain(a), [], 'with no presence event')
})

t.test('a room message reaches its members only, the sender included, with id and seq in order', async (t) => {
  const { url } = await chatServer(t)
  const a = await joinChat(t, url)
  const b = await joinChat(t, url)
  const outsider = await joinChat(t, url)
  await ask(a, { type: 'join', room: 'r' }, 'joined')
  await ask(b, { type: 'join', room: 'r' }, 'joined')
  send(a, { type: 'message', room: 'r', payload: 'one' })
  send(b, { type: 'message', room: 'r', payload: { n: 2 } })
  send(outsider, { type: 'message', payload: 'lobby' })
  for (const member of [a, b]) {
    const first = await nextOf(member, 'message')
    t.same(Object.keys(first), ['type', 'room', 'payload', 'from', 'id', 'seq', 'timestamp'], 'keys in the SPEC order')
    t.same([first.room, first.payload, first.from, first.seq], ['r', 'one', a.clientId, 1])
    const second = await nextOf(member, 'message')
    t.same([second.payload, second.from, second.seq], [{ n: 2 }, b.clientId, 2])
    t.ok(second.id > first.id, 'id keeps counting the endpoint')
    const lobby = await nextOf(member, 'message')
    t.same([lobby.payload, lobby.room, lobby.seq], ['lobby', undefined, undefined], 'lobby messages still reach everyone, without room or seq')
  }
  const seen = await drain(outsider)
  t.same(seen.map((f) => f.payload), ['lobby'], 'a non-member sees no room message')
  t.same(await errorFor(outsider, { type: 'message', room: 'r', payload: 'x' }), { code: 'not_in_room', message: 'You are not in room "r": join it first.', room: 'r' }, 'a non-member gets not_in_room, naming the room')
})

t.test('leave answers left, the others get presence leave, and a disconnect leaves every room', async (t) => {
  const { url } = await chatServer(t)
  const a = await joinChat(t, url)
  const b = await joinChat(t, url)
  const c = await joinChat(t, url)
  for (const x of [a, b, c]) await ask(x, { type: 'join', room: 'r' }, 'joined')
  await drain(a)
  const left = await ask(b, { type: 'leave', room: 'r' }, 'left')
  t.same(Object.keys(left), ['type', 'room', 'timestamp'])
  t.same((await nextOf(a, 'presence')).payload, { event: 'leave', client_id: b.clientId, count: 2 })
  send(a, { type: 'message', room: 'r', payload: 'after b left' })
  await nextOf(a, 'message')
  t.same((await drain(b)).filter((f) => f.type === 'message'), [], 'a member that left gets no more room messages')
  t.same(await errorFor(b, { type: 'leave', room: 'r' }), { code: 'not_in_room', message: 'You are not in room "r".', room: 'r' })

  c.ws.close()
  t.same((await nextOf(a, 'presence')).payload, { event: 'leave', client_id: c.clientId, count: 1 }, 'a disconnect is a leave')
})

t.test('history answers the last limit messages oldest first, or those after since; members only', async (t) => {
  const { url } = await chatServer(t)
  const a = await joinChat(t, url)
  const outsider = await joinChat(t, url)
  await ask(a, { type: 'join', room: 'h' }, 'joined')
  for (let i = 1; i <= 5; i++) send(a, { type: 'message', room: 'h', payload: i })
  for (let i = 1; i <= 5; i++) await nextOf(a, 'message')

  const last3 = await ask(a, { type: 'history', room: 'h', limit: 3 }, 'history')
  t.same(Object.keys(last3), ['type', 'room', 'epoch', 'payload'])
  t.same(last3.payload.map((m: Frame) => [m.seq, m.payload]), [[3, 3], [4, 4], [5, 5]])
  t.same(Object.keys(last3.payload[0]), ['type', 'room', 'payload', 'from', 'id', 'seq', 'timestamp'], 'each entry is the room message frame')
  const after1 = await ask(a, { type: 'history', room: 'h', since: 1, limit: 2 }, 'history')
  t.same(after1.payload.map((m: Frame) => m.seq), [2, 3], 'with since: at most limit of those after it, oldest first')
  const all = await ask(a, { type: 'history', room: 'h' }, 'history')
  t.equal(all.payload.length, 5, 'limit defaults to 100')

  t.same((await errorFor(outsider, { type: 'history', room: 'h' })).code, 'not_in_room')
  t.same((await errorFor(a, { type: 'history', room: 'h', limit: 0 })).code, 'invalid_message', 'limit 0 is an error, not clamped')
  t.same((await errorFor(a, { type: 'history', room: 'h', limit: 1001 })).code, 'invalid_message', 'limit 1001 too')
  t.match((await errorFor(a, { type: 'history', room: 'h', limit: 2.5 })).message, /"limit" must be a whole number from 1 to 1000/)
})

t.test('join with since resumes: the missed messages in joined, then the live ones, none twice', async (t) => {
  const { url } = await chatServer(t)
  const a = await joinChat(t, url)
  await ask(a, { type: 'join', room: 'resume' }, 'joined')
  for (let i = 1; i <= 4; i++) send(a, { type: 'message', room: 'resume', payload: i })
  for (let i = 1; i <= 4; i++) await nextOf(a, 'message')

  const b = await joinChat(t, url)
  const joined = await ask(b, { type: 'join', room: 'resume', since: 2 }, 'joined')
  t.same(joined.payload.history.map((m: Frame) => m.seq), [3, 4])
  t.equal(joined.payload.seq, 4)
  t.equal(joined.payload.recovered, true)
  send(a, { type: 'message', room: 'resume', payload: 5 })
  t.equal((await nextOf(b, 'message')).seq, 5, 'then the live ones')

  const future = await ask(await joinChat(t, url), { type: 'join', room: 'resume', since: 99 }, 'joined')
  t.same([future.payload.recovered, future.payload.reason], [false, 'ahead'], 'a since beyond the room seq: not recovered (the history was lost)')
  const current = await ask(await joinChat(t, url), { type: 'join', room: 'resume', since: 5 }, 'joined')
  t.same([current.payload.recovered, current.payload.history], [true, []], 'since the current seq: nothing missed')
  for (const bad of [-1, 1.5, '3']) {
    const c = await joinChat(t, url)
    const error = await errorFor(c, { type: 'join', room: 'resume', since: bad })
    t.same([error.code, error.room], ['invalid_message', 'resume'], `since ${JSON.stringify(bad)} is an error`)
  }
})

t.test('a resume whose messages left the history says recovered false and gives what is kept', async (t) => {
  const { url } = await chatServer(t, { historySize: 3 })
  const a = await joinChat(t, url)
  await ask(a, { type: 'join', room: 'small' }, 'joined')
  for (let i = 1; i <= 6; i++) send(a, { type: 'message', room: 'small', payload: i })
  for (let i = 1; i <= 6; i++) await nextOf(a, 'message')
  const b = await joinChat(t, url)
  const joined = await ask(b, { type: 'join', room: 'small', since: 1 }, 'joined')
  t.same(joined.payload.history.map((m: Frame) => m.seq), [4, 5, 6])
  t.same([joined.payload.recovered, joined.payload.reason], [false, 'evicted'], 'not recovered: the messages after since were evicted')
  t.same(Object.keys(joined.payload), ['members', 'seq', 'epoch', 'recovered', 'reason', 'history'], 'reason right after recovered')
  const c = await joinChat(t, url)
  t.equal((await ask(c, { type: 'join', room: 'small', since: 3 }, 'joined')).payload.recovered, true, 'all after 3 are kept')
})

t.test('a joined or history reply holds at most 1 MiB of messages and says more', async (t) => {
  const { url } = await chatServer(t, { historySize: 40, maxPayload: 65536 })
  const a = await joinChat(t, url)
  await ask(a, { type: 'join', room: 'big' }, 'joined')
  const payload = 'x'.repeat(60000)
  for (let i = 1; i <= 20; i++) send(a, { type: 'message', room: 'big', payload })
  for (let i = 1; i <= 20; i++) await nextOf(a, 'message')
  const b = await joinChat(t, url)
  const joined = await ask(b, { type: 'join', room: 'big', since: 0 }, 'joined')
  t.same(Object.keys(joined.payload), ['members', 'seq', 'epoch', 'recovered', 'history', 'more'])
  t.equal(joined.payload.more, true)
  t.ok(joined.payload.history.length < 20 && joined.payload.history.length > 10, 'the oldest that fit')
  t.equal(joined.payload.history[0].seq, 1)
  const rest = await ask(b, { type: 'history', room: 'big', since: joined.payload.history.at(-1).seq, limit: 1000 }, 'history')
  t.equal(rest.payload.at(-1).seq, 20, 'the client continues with history and since')
  t.notOk(rest.more, 'what is left fits')
})

t.test('room names, the per-client room cap and the room cap answer their errors, counted in /stats', async (t) => {
  const { url, app } = await chatServer(t, { maxRoomsPerClient: 2, maxRooms: 3 })
  const a = await joinChat(t, url)
  for (const room of ['', 'a b', 'x'.repeat(65), 'é', 'a/b']) {
    const error = await errorFor(a, { type: 'join', room })
    t.equal(error.code, 'invalid_room', `${JSON.stringify(room)} is not a room name`)
  }
  t.equal((await errorFor(a, { type: 'join', room: 7 })).code, 'invalid_room')
  t.equal((await errorFor(a, { type: 'join' })).code, 'invalid_room')
  await ask(a, { type: 'join', room: 'A-z_0.9:x' }, 'joined')
  await ask(a, { type: 'join', room: 'two' }, 'joined')
  const tooMany = await errorFor(a, { type: 'join', room: 'three' })
  t.same([tooMany.code, tooMany.room], ['too_many_rooms', 'three'])
  const b = await joinChat(t, url)
  await ask(b, { type: 'join', room: 'three' }, 'joined')
  const full = await errorFor(b, { type: 'join', room: 'four' })
  t.same([full.code, full.room], ['room_limit', 'four'])
  t.equal(a.ws.readyState, a.ws.OPEN, 'errors keep the connection')
  const body = (await app.inject('/stats')).json()
  t.equal(body.limits.hits.too_many_rooms, 1)
  t.equal(body.limits.hits.room_limit, 1)
  t.match(body.endpoints.chat.limits, { max_rooms_per_client: 2, max_rooms: 3, history_size: 100, room_ttl_ms: 300000 })
})

t.test('a flood of joins and leaves keeps every reply in order and leaves no member behind', async (t) => {
  const { url, app } = await chatServer(t, { maxRoomsPerClient: 1000 })
  const a = await joinChat(t, url)
  // 240 frames at once: within the 256 a client may have waiting behind a room operation.
  for (let i = 0; i < 120; i++) {
    send(a, { type: 'join', room: `r${i}` })
    send(a, { type: 'leave', room: `r${i}` })
  }
  for (let i = 0; i < 120; i++) {
    const joined = await a.inbox.next()
    const left = await a.inbox.next()
    if (joined.type !== 'joined' || left.type !== 'left' || joined.room !== `r${i}` || left.room !== `r${i}`) {
      t.fail(`reply ${i} out of order: ${JSON.stringify([joined, left])}`)
      return
    }
  }
  const rooms = (await app.inject('/rooms')).json().rooms
  t.equal(rooms.length, 120, 'empty rooms stay until their ttl')
  t.ok(rooms.every((r: Frame) => r.members === 0), 'with no member left')
})

t.test('GET /rooms, /stats rooms and POST /publish', async (t) => {
  const { url, app } = await chatServer(t)
  const a = await joinChat(t, url)
  const b = await joinChat(t, url)
  await ask(a, { type: 'join', room: 'lab-1' }, 'joined')
  await ask(b, { type: 'join', room: 'lab-1' }, 'joined')
  await ask(b, { type: 'join', room: 'lab-2' }, 'joined')

  const published = await app.inject({ method: 'POST', url: '/publish', payload: { room: 'lab-1', payload: { temp: 21.5 } } })
  t.equal(published.statusCode, 202)
  t.same(Object.keys(published.json()), ['id', 'seq'])
  t.equal(published.json().seq, 1)
  const fromServer = await nextOf(a, 'message')
  t.same([fromServer.from, fromServer.payload, fromServer.seq, fromServer.room], [0, { temp: 21.5 }, 1, 'lab-1'], 'from 0')
  const lobby = await app.inject({ method: 'POST', url: '/publish', payload: { payload: 'to all' } })
  t.same([lobby.statusCode, lobby.json().seq], [202, null])
  t.same((await nextOf(b, 'message')).room, 'lab-1')
  const lobbyMessage = await nextOf(b, 'message')
  t.same([lobbyMessage.payload, lobbyMessage.from, lobbyMessage.room], ['to all', 0, undefined])

  t.same((await app.inject('/rooms')).json(), { rooms: [{ room: 'lab-1', members: 2, seq: 1 }, { room: 'lab-2', members: 1, seq: 0 }] })
  const roomStats = (await app.inject('/stats')).json().rooms
  t.same(roomStats, { count: 2, members: 3, history: { messages: 1, bytes: roomStats.history.bytes } })
  t.ok(roomStats.history.bytes > 20, 'the stored message counts in bytes')

  const badRoom = await app.inject({ method: 'POST', url: '/publish', payload: { room: 'no spaces', payload: 1 } })
  t.same([badRoom.statusCode, badRoom.json().error], [400, 'invalid_room'])
  const noPayload = await app.inject({ method: 'POST', url: '/publish', payload: { room: 'x' } })
  t.same([noPayload.statusCode, noPayload.json().error], [400, 'invalid_message'])
  const crossSite = await app.inject({ method: 'POST', url: '/publish', headers: { origin: 'https://evil.example' }, payload: { payload: 1 } })
  t.same([crossSite.statusCode, crossSite.json().error], [403, 'origin_not_allowed'], 'another site cannot publish through a browser')
  const ownPage = await app.inject({ method: 'POST', url: '/publish', headers: { origin: 'http://localhost:80', host: 'localhost:80' }, payload: { payload: 1 } })
  t.equal(ownPage.statusCode, 202, 'the page on its own localhost origin can')
})

t.test('a library user publishes through the registry', async (t) => {
  const { url, app } = await chatServer(t)
  const a = await joinChat(t, url)
  await ask(a, { type: 'join', room: 'dev' }, 'joined')
  const result = await app.echohub.chats.get('chat')!.publish('dev', { hello: 'from code' })
  t.same(result, { id: 1, seq: 1 })
  t.same((await nextOf(a, 'message')).payload, { hello: 'from code' })
})

t.test('an empty room is forgotten after its ttl, history included', async (t) => {
  const { url, app } = await chatServer(t, { roomTtl: 50 })
  const a = await joinChat(t, url)
  await ask(a, { type: 'join', room: 'brief' }, 'joined')
  send(a, { type: 'message', room: 'brief', payload: 'gone soon' })
  await nextOf(a, 'message')
  await ask(a, { type: 'leave', room: 'brief' }, 'left')
  await eventually(async () => (await app.inject('/rooms')).json().rooms.length === 0, 'the room to be forgotten')
  const joined = await ask(a, { type: 'join', room: 'brief' }, 'joined')
  t.same([joined.payload.seq, joined.payload.history], [0, []], 'a new room starts from seq 0')
})

t.test('frames sent right behind a join wait for joined and keep their order', async (t) => {
  const { url } = await chatServer(t)
  const a = await joinChat(t, url)
  send(a, { type: 'join', room: 'fast' })
  send(a, { type: 'message', room: 'fast', payload: 'right away' })
  send(a, { type: 'ping' })
  const [first, second, third] = [await a.inbox.next(), await a.inbox.next(), await a.inbox.next()]
  t.same([first.type, second.type, third.type], ['joined', 'message', 'pong'])
  t.equal(second.seq, 1)
})
