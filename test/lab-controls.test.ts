// The device lab's query-string controls, parsed on their own: typed values, or a refusal naming the control.
import t, { type Test } from 'tap'
import { CONTROL_NAMES, parseControls, type ControlsResult } from '../src/lab/controls.js'

const limits = { maxPayload: 1048576 }
const parse = (query: string): ControlsResult => parseControls(`/device/1?${query}`, limits)

function refused (t: Test, query: string, control: string, message?: RegExp): void {
  const result = parse(query)
  if (result.ok) {
    t.fail(`${query} was accepted`)
    return
  }
  t.equal(result.refusal.error, 'invalid_control', `${query}: invalid_control`)
  t.equal(result.refusal.control, control, `${query}: names ${control}`)
  t.match(result.refusal.message, message ?? new RegExp(`^${control}: `), `${query}: says what is wrong`)
}

t.test('no query, or no control in it, means no controls at all', async (t) => {
  t.same(parseControls('/', limits), { ok: true, controls: undefined })
  t.same(parseControls('/raw?', limits), { ok: true, controls: undefined })
  t.same(parse('token=s3cret&device=esp32&delay_ms=5'), { ok: true, controls: undefined }, 'unknown parameters and token are ignored')
})

t.test('every control with a good value, as numbers, in the SPEC table order', async (t) => {
  const result = parse('ping=0&burst_binary=1&burst_size=128&burst=10&push=10&drop_after=2&close_reason=bye%20now&close_code=4001&close_after=3&fragment=7&repeat=3&jitter=20&delay=200&foo=bar')
  t.same(result, {
    ok: true,
    controls: { delay: 200, jitter: 20, repeat: 3, fragment: 7, close_after: 3, close_code: 4001, close_reason: 'bye now', drop_after: 2, push: 10, burst: 10, burst_size: 128, burst_binary: 1, ping: 0 }
  })
  if (result.ok) t.same(Object.keys(result.controls!), CONTROL_NAMES.filter((n) => n !== 'silent'), 'keys follow the table')
  t.same(parse('silent=1'), { ok: true, controls: { silent: 1 } })
  t.same(parse('close_after=1&close_reason='), { ok: true, controls: { close_after: 1, close_reason: '' } }, 'an empty reason is a reason')
})

t.test('the edges of each range are accepted, one past them refused', async (t) => {
  const ranges: Array<[string, number, number]> = [
    ['delay', 0, 60000], ['jitter', 0, 60000], ['repeat', 1, 100], ['fragment', 1, 1048576],
    ['close_after', 1, 1000000], ['drop_after', 1, 1000000], ['push', 10, 3600000], ['burst', 1, 1000000]
  ]
  for (const [name, min, max] of ranges) {
    t.ok(parse(`${name}=${min}`).ok, `${name}=${min}`)
    t.ok(parse(`${name}=${max}`).ok, `${name}=${max}`)
    refused(t, `${name}=${max + 1}`, name, new RegExp(`^${name}: must be a whole number from ${min} to ${max}`))
    if (min > 0) refused(t, `${name}=${min - 1}`, name)
  }
  t.ok(parse('ping=0').ok, 'ping=0')
  t.ok(parse('ping=1000').ok && parse('ping=3600000').ok, 'ping 1000 and 3600000')
  refused(t, 'ping=999', 'ping', /from 0 or 1000 to 3600000 ms/)
  refused(t, 'ping=1', 'ping')
  t.ok(parse('burst=1&burst_size=1048576').ok, 'burst_size up to the max payload')
  refused(t, 'burst=1&burst_size=1048577', 'burst_size', /from 1 to 1048576 bytes/)
  refused(t, 'burst=1&burst_size=0', 'burst_size')
  t.ok(parseControls('/?burst=1&burst_size=100', { maxPayload: 100 }).ok)
  refused(t, 'burst=1&burst_size=2000000', 'burst_size')
})

t.test('values that are not plain whole numbers are refused', async (t) => {
  for (const value of ['', 'abc', '1.5', '-1', '+1', '1e3', '0x10', ' 10', '10ms', '99999999999999999999']) {
    refused(t, `delay=${encodeURIComponent(value)}`, 'delay')
  }
})

t.test('close_code takes the codes a server may send', async (t) => {
  for (const code of [1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4001, 4999]) {
    t.ok(parse(`close_after=1&close_code=${code}`).ok, `${code} accepted`)
  }
  for (const code of ['999', '1004', '1005', '1006', '1015', '2000', '2999', '5000', 'normal']) {
    refused(t, `close_after=1&close_code=${code}`, 'close_code', /1000-1003, 1007-1014 or 3000-4999/)
  }
})

t.test('close_reason holds at most 123 bytes, counted in UTF-8', async (t) => {
  t.ok(parse(`close_after=1&close_reason=${'a'.repeat(123)}`).ok, '123 ASCII bytes')
  refused(t, `close_after=1&close_reason=${'a'.repeat(124)}`, 'close_reason', /at most 123 bytes.*got 124/)
  refused(t, `close_after=1&close_reason=${encodeURIComponent('é'.repeat(62))}`, 'close_reason', /got 124/)
})

t.test('silent and burst_binary take 1', async (t) => {
  refused(t, 'silent=true', 'silent', /takes 1/)
  refused(t, 'silent=0', 'silent')
  refused(t, 'silent', 'silent')
  refused(t, 'burst=1&burst_binary=yes', 'burst_binary')
})

t.test('a control given twice, or one that means nothing alone, is refused', async (t) => {
  refused(t, 'delay=1&delay=2', 'delay', /given more than once/)
  refused(t, 'close_code=4001', 'close_code', /only with close_after/)
  refused(t, 'close_reason=bye', 'close_reason', /only with close_after/)
  refused(t, 'burst_size=10', 'burst_size', /only with burst/)
  refused(t, 'burst_binary=1', 'burst_binary', /only with burst/)
  refused(t, 'silent=1&close_after=2', 'silent', /close_after would never fire/)
  refused(t, 'silent=1&drop_after=2', 'silent', /drop_after would never fire/)
})

t.test('the first bad control is the one named', async (t) => {
  refused(t, 'repeat=0&delay=x', 'repeat')
  refused(t, 'token=abc&fragment=0', 'fragment')
})
