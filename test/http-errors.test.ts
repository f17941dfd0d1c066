// Every echohub HTTP route answers an error as `{"error","message"}` in plain words, whatever raised
// it (a body parser, the body limit, a content type); the host app's own routes keep Fastify's.
import t from 'tap'
import { chat, stats } from '../index.js'
import { listen } from './helpers/index.js'

async function server (t: Parameters<typeof listen>[0]) {
  return await listen(t, async (app) => {
    await app.register(chat, { path: '/chat' })
    await app.register(stats)
    app.post('/mine', async (request) => request.body)
  })
}

async function post (port: number, path: string, body: string | Buffer | undefined, contentType: string | undefined) {
  const headers: Record<string, string> = contentType === undefined ? {} : { 'content-type': contentType }
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', headers, body })
  const text = await res.text()
  return { status: res.status, body: JSON.parse(text) as Record<string, unknown> }
}

t.test('POST /publish: bad JSON, an empty body, a body over the limit, a missing or wrong content type', async (t) => {
  const { port } = await server(t)
  const cases: Array<[string, string | Buffer | undefined, string | undefined, number, string, RegExp]> = [
    ['bad JSON', '{"payload":', 'application/json', 400, 'invalid_json', /^the body is not valid JSON$/],
    ['an empty body', '', 'application/json', 400, 'invalid_json', /^the body is empty/],
    ['over 1 MiB', JSON.stringify({ payload: 'x'.repeat(1048576) }), 'application/json', 413, 'body_too_large', /^the body is over the 1048576-byte limit$/],
    ['no content type', Buffer.from('{"payload":1}'), undefined, 415, 'unsupported_media_type', /Content-Type: application\/json" \(this request gave no Content-Type\)$/],
    ['a form, as curl -d sends', '{"payload":1}', 'application/x-www-form-urlencoded', 415, 'unsupported_media_type', /not application\/x-www-form-urlencoded\)$/],
    ['text that is no JSON object', '{"payload":1}', 'text/plain', 400, 'invalid_message', /^the body must be \{"room":"<name>","payload":<any JSON>\}/]
  ]
  for (const [what, body, type, status, error, message] of cases) {
    const answer = await post(port, '/publish', body, type)
    t.equal(answer.status, status, `${what}: ${status}`)
    t.same(Object.keys(answer.body), ['error', 'message'], `${what}: {"error","message"}`)
    t.equal(answer.body.error, error)
    t.match(answer.body.message, message)
  }
  t.equal((await post(port, '/publish', '{"payload":1}', 'application/json')).status, 202, 'a good one is accepted')
})

t.test('POST /connections/:id/send: bad JSON and a body over the limit, in the same words', async (t) => {
  const { port } = await server(t)
  const bad = await post(port, '/connections/1/send', '{', 'application/json')
  t.same([bad.status, Object.keys(bad.body)], [400, ['error', 'message']])
  const big = await post(port, '/connections/1/send', JSON.stringify({ text: 'x'.repeat(1048576) }), 'application/json')
  t.same([big.status, big.body], [413, { error: 'body_too_large', message: 'the body is over the 1048576-byte limit' }])
})

t.test('the host app\'s own route keeps Fastify\'s error body', async (t) => {
  const { port } = await server(t)
  const mine = await post(port, '/mine', '{', 'application/json')
  t.equal(mine.status, 400)
  t.equal(mine.body.code, 'FST_ERR_CTP_INVALID_JSON_BODY', 'echohub\'s handler does not reach it')
})
