// The conformance suite's case runner on its own (no routes): the case table, the selection,
// what is skipped or left unimplemented, section R against clients that pass and fail each,
// and the wire log. The comparison with the Autobahn fuzzingserver is in conformance-{ws,sloppy,
// python,chromium}.test.ts.
import t from 'tap'
import WebSocket from 'ws'
import { SUITE, selectCases, caseSpec } from '../src/conformance/cases.js'
import { caseServer, resultOf, sloppyEcho, wsEcho } from './helpers/conformance.js'

t.test('the suite lists Autobahn\'s cases of sections 1-7, 9, 10, 12, 13 in its order, then R.1-R.6', async t => {
  const ids = SUITE.map(c => c.id)
  t.equal(new Set(ids).size, ids.length, 'ids are unique')
  t.equal(ids.filter(id => !id.startsWith('R.')).length, 517, '517 Autobahn cases')
  t.same(ids.slice(0, 3), ['1.1.1', '1.1.2', '1.1.3'])
  t.same(ids.slice(-6), ['R.1', 'R.2', 'R.3', 'R.4', 'R.5', 'R.6'])
  t.equal(ids.indexOf('2.10'), ids.indexOf('2.9') + 1, 'numeric order: 2.9 before 2.10')
  t.equal(ids.indexOf('10.1.1'), ids.indexOf('9.8.6') + 1)
  t.ok(SUITE.filter(c => c.needsDeflate).every(c => /^1[23]\./.test(c.id)), 'only 12 and 13 need permessage-deflate')
  t.equal(SUITE.filter(c => c.needsDeflate).length, 90 + 126, '5 and 7 groups of 18')
  t.same(SUITE.filter(c => c.deviceOnly).map(c => c.id), ['R.3', 'R.4', 'R.6'])
  t.equal(caseSpec('9.1.6')?.largestMessage, 16 * 1024 * 1024)
  t.ok(SUITE.every(c => c.description.length > 0 && c.expectation.length > 0), 'every case has a description and an expectation')
})

t.test('selectCases takes Autobahn\'s patterns', async t => {
  t.equal(selectCases(undefined).length, SUITE.length, 'no patterns: every case')
  t.equal(selectCases([]).length, SUITE.length)
  t.equal(selectCases(['1.*']).length, 16, '1.* is 1.1.x and 1.2.x, not 10.1.1')
  t.same(selectCases(['7.1.1']).map(c => c.id), ['7.1.1'])
  t.equal(selectCases(['12.1.*']).length, 18)
  t.same(selectCases(['2.1', '1.1.1']).map(c => c.id), ['1.1.1', '2.1'], 'in the suite\'s order, exact ids exact')
  t.equal(selectCases(['R.*']).length, 6)
  t.equal(selectCases(['nothing']).length, 0)
  t.same(selectCases(['*.1.1']).map(c => c.id).slice(0, 3), ['1.1.1', '4.1.1', '6.1.1'], 'a star in front')
  t.same(selectCases(['1*1']).map(c => c.id).slice(0, 3), ['1.1.1', '1.2.1', '10.1.1'], 'a star between')
  // A run of stars is cheap to send; matched by backtracking it took seconds per pattern.
  t.same(selectCases(['*'.repeat(40) + 'x']), [], 'a run of stars matches as one star')
})

t.test('a case larger than max_size is SKIPPED without running, and the client is closed with 1000', async t => {
  const server = await caseServer()
  t.teardown(() => server.close())
  const codes: number[] = []
  await new Promise<void>(resolve => {
    const ws = new WebSocket(`${server.url}/runCase?casetuple=9.1.6&max_size=65536`)
    ws.on('message', () => t.fail('nothing is sent'))
    ws.on('close', code => { codes.push(code); resolve() })
  })
  const r = await resultOf(server, '9.1.6')
  t.equal(r.behavior, 'SKIPPED')
  t.equal(r.behaviorClose, 'SKIPPED')
  t.match(r.result, /16777216 bytes, more than max_size 65536/)
  t.same(codes, [1000])
})

t.test('R.3, R.4 and R.6 through runCase are UNIMPLEMENTED: they need device mode', async t => {
  const server = await caseServer()
  t.teardown(() => server.close())
  await wsEcho(`${server.url}/runCase?casetuple=R.4`)
  const r = await resultOf(server, 'R.4')
  t.equal(r.behavior, 'UNIMPLEMENTED')
  t.equal(r.result, 'needs device mode')
})

t.test('section 12 is UNIMPLEMENTED for a client that offers no permessage-deflate, and runs for one that does', async t => {
  const server = await caseServer()
  t.teardown(() => server.close())
  await wsEcho(`${server.url}/runCase?casetuple=12.1.1`, false)
  const without = await resultOf(server, '12.1.1')
  t.equal(without.behavior, 'UNIMPLEMENTED')
  t.equal(without.behaviorClose, 'OK', 'closed cleanly at once')
  await wsEcho(`${server.url}/runCase?casetuple=12.2.10`, true)
  const withDeflate = await resultOf(server, '12.2.10')
  t.equal(withDeflate.behavior, 'OK', withDeflate.result)
  t.equal(withDeflate.behaviorClose, 'OK')
  t.same(withDeflate.wire, [], 'no wire log for section 12')
})

t.test('the wire log shows the frames each way, the client\'s as it sent them', async t => {
  const server = await caseServer()
  t.teardown(() => server.close())
  await wsEcho(`${server.url}/runCase?casetuple=3.1`)
  const r = await resultOf(server, '3.1')
  t.equal(r.behavior, 'OK')
  t.match(r.wire[0], { dir: 'out', opcode: 1, rsv: 1, fin: true, length: 13, data: 'Hello, world!' })
  t.match(r.wire.find(w => w.dir === 'in'), { dir: 'in', opcode: 8 })
  t.equal(r.remoteCloseCode, 1002)
  await wsEcho(`${server.url}/runCase?casetuple=9.1.1`)
  t.same((await resultOf(server, '9.1.1')).wire, [], 'none for section 9')
})

t.test('R.1 heartbeat: OK for a client that answers pings, FAILED for one that ignores them', async t => {
  const server = await caseServer()
  t.teardown(() => server.close())
  await wsEcho(`${server.url}/runCase?casetuple=R.1`)
  const ok = await resultOf(server, 'R.1')
  t.equal(ok.behavior, 'OK', ok.result)
  t.equal(ok.behaviorClose, 'OK')
  t.equal(ok.details?.pings, 10)
  const server2 = await caseServer()
  t.teardown(() => server2.close())
  await sloppyEcho(`${server2.url}/runCase?casetuple=R.1`)
  const bad = await resultOf(server2, 'R.1')
  t.equal(bad.behavior, 'FAILED')
  t.match(bad.result, /10 of 10 pings never answered/)
})

t.test('R.2 large frames: OK when each comes back intact, FAILED when binary comes back as text; max_size leaves sizes out', async t => {
  const server = await caseServer()
  t.teardown(() => server.close())
  await wsEcho(`${server.url}/runCase?casetuple=R.2`)
  const ok = await resultOf(server, 'R.2')
  t.equal(ok.behavior, 'OK', ok.result)
  t.same(ok.details?.sent, ['text 16384', 'binary 16384', 'text 32768', 'binary 32768', 'text 65536', 'binary 65536'])
  const server2 = await caseServer()
  t.teardown(() => server2.close())
  await sloppyEcho(`${server2.url}/runCase?casetuple=R.2`)
  const bad = await resultOf(server2, 'R.2')
  t.equal(bad.behavior, 'FAILED')
  t.match(bad.result, /16384-byte binary message came back as text that is not valid UTF-8/)
  const server3 = await caseServer()
  t.teardown(() => server3.close())
  await wsEcho(`${server3.url}/runCase?casetuple=R.2&max_size=40000`)
  t.same((await resultOf(server3, 'R.2')).details?.sent, ['text 16384', 'binary 16384', 'text 32768', 'binary 32768'])
})

t.test('R.5 silent server: OK for a client that gives up on a connection whose pongs stopped', async t => {
  const server = await caseServer()
  t.teardown(() => server.close())
  // a client with its own liveness check: a ping, and no pong within 300 ms ends the connection
  await new Promise<void>(resolve => {
    const ws = new WebSocket(`${server.url}/runCase?casetuple=R.5`)
    ws.on('open', () => {
      let alive = false
      ws.on('pong', () => { alive = true })
      ws.ping()
      setTimeout(() => { if (!alive) ws.terminate() }, 300)
    })
    ws.on('close', () => resolve())
  })
  const r = await resultOf(server, 'R.5')
  t.equal(r.behavior, 'OK', r.result)
  t.equal(r.details?.how, 'TCP connection closed')
  t.ok((r.details?.client_gave_up_ms as number) >= 300, 'the time it took is reported')
})

t.test('R.5 silent server: INFORMATIONAL for a client that waits the whole minute', async t => {
  const server = await caseServer()
  t.teardown(() => server.close())
  const started = Date.now()
  await wsEcho(`${server.url}/runCase?casetuple=R.5`)
  const r = await resultOf(server, 'R.5')
  t.equal(r.behavior, 'INFORMATIONAL', r.result)
  t.ok(Date.now() - started >= 60000, 'the server waited 60 s')
})

t.test('a request that is no WebSocket upgrade gets 400, and the runner does not throw', async t => {
  const server = await caseServer()
  t.teardown(() => server.close())
  const { request } = await import('node:http')
  const status = await new Promise<number>(resolve => {
    const req = request(`${server.url.replace('ws:', 'http:')}/runCase?casetuple=1.1.1`, { headers: { Connection: 'Upgrade', Upgrade: 'websocket' } })
    req.on('response', res => resolve(res.statusCode ?? 0))
    req.on('error', () => resolve(-1))
    req.end()
  })
  t.equal(status, 400)
  const r = await resultOf(server, '1.1.1')
  t.equal(r.behavior, 'FAILED')
  t.equal(r.resultClose, 'The WebSocket opening handshake was never completed!')
})
