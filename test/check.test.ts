// `GET <WebSocket path>?check`: the upgrade's admission checks, answered over plain HTTP, so a
// browser page (which never sees a refused upgrade's status) can say why it cannot connect.
import t, { type Test } from 'tap'
import { pino } from 'pino'
import { chat, echo, stats, echohubRegistry, parseConfig, startEchohub, type RegistryPluginOptions } from '../index.js'
import { connect, listen } from './helpers/index.js'
import { isUpgraded, rawUpgrade } from './helpers/raw.js'
import { SECRET, token } from './helpers/tokens.js'

async function server (t: Test, options: RegistryPluginOptions = {}) {
  return await listen(t, async (app) => {
    await app.register(echohubRegistry, options)
    await app.register(echo, { path: '/echo' })
    await app.register(chat, { path: '/chat' })
    await app.register(stats)
  })
}

async function check (port: number, path: string, headers: Record<string, string> = {}) {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers })
  return { status: res.status, body: await res.json() as Record<string, unknown>, headers: res.headers }
}

t.test('a check answers 200 where an upgrade would be admitted, and opens nothing', async (t) => {
  const { app, port } = await server(t)
  for (const path of ['/echo?check', '/echo/raw?check', '/chat?check']) {
    const answer = await check(port, path)
    t.same([answer.status, answer.body], [200, { ok: true }], path)
  }
  t.equal(app.echohub.connections.size, 0)
  t.same(app.echohub.limitHits, {}, 'nothing counted')
  t.equal((await check(port, '/echo')).status, 426, 'without ?check a plain GET still says how to connect')
})

t.test('a check answers the refusal an upgrade would get: 401, 403, 429, 503 with the JSON reason', async (t) => {
  const { app, port, url } = await server(t, { authToken: 's3cret', origins: ['https://good.example'], maxConnections: 2, maxConnectionsPerIp: 1 })
  const noToken = await check(port, '/chat?check')
  t.same([noToken.status, noToken.body.error], [401, 'unauthorized'])
  t.match(noToken.body.message, /a valid token is required/)
  t.equal((await check(port, '/chat?check&token=s3cret')).status, 200, 'the token as a query parameter')
  t.equal((await check(port, '/chat?check', { authorization: 'Bearer s3cret' })).status, 200, 'or as a Bearer header')

  const badOrigin = await check(port, '/chat?check&token=s3cret', { origin: 'https://evil.example' })
  t.same([badOrigin.status, badOrigin.body], [403, { error: 'origin_not_allowed', message: 'origin https://evil.example is not allowed (see the "origins" option)' }])
  t.equal(badOrigin.headers.get('access-control-allow-origin'), 'https://evil.example', 'readable by the refused page itself')
  const sameOrigin = await check(port, '/chat?check&token=s3cret&origin=https%3A%2F%2Fevil.example')
  t.equal(sameOrigin.status, 403, 'a page on the server\'s own origin (whose GET carries no Origin) names it in ?origin=')
  const spoofed = await check(port, '/chat?check&token=s3cret&origin=https%3A%2F%2Fgood.example', { origin: 'https://evil.example' })
  t.equal(spoofed.status, 403, 'the Origin header wins over ?origin=')

  t.same(app.echohub.limitHits, {}, 'refused checks are not counted as limit hits')

  await connect(t, url + '/echo?token=s3cret')
  const perIp = await check(port, '/echo?check&token=s3cret')
  t.same([perIp.status, perIp.body.error], [429, 'too_many_connections'])
  t.ok(Number(perIp.headers.get('retry-after')) > 0, 'with Retry-After')
})

t.test('while shutting down a check answers 503', async (t) => {
  const { app, port } = await server(t)
  app.echohub.startDraining()
  const answer = await check(port, '/chat?check')
  t.same([answer.status, answer.body.error], [503, 'shutting_down'])
})

/** What the upgrade itself is answered: its status, JSON body and www-authenticate header. */
async function upgradeAnswer (t: Test, port: number, path: string) {
  const answer = await rawUpgrade(t, port, path)
  if (isUpgraded(answer)) throw new Error(`${path}: the upgrade was admitted`)
  return { status: answer.status, body: JSON.parse(answer.body) as Record<string, unknown>, challenge: answer.headers['www-authenticate'] }
}

t.test('with JWT identity, a check answers what the upgrade does: 401 invalid_token for a bad or missing JWT', async (t) => {
  const { app, port } = await server(t, { jwt: { secret: SECRET } })
  const good = await token({ sub: 'ada' })
  t.same((await check(port, `/chat?check&token=${good}`)).body, { ok: true }, 'a good JWT is admitted')
  for (const query of ['token=abc.def.ghi', `token=${await token({ sub: 'ada' }, 'another-secret-of-at-least-thirty-two-bytes')}`, '']) {
    const path = `/chat?${query}`
    const upgraded = await upgradeAnswer(t, port, path)
    t.equal(upgraded.status, 401, `${path}: the upgrade is refused`)
    const checked = await check(port, `/chat?check&${query}`)
    t.same([checked.status, checked.body, checked.headers.get('www-authenticate') ?? undefined], [upgraded.status, upgraded.body, upgraded.challenge], `${path}: the check gives the same answer`)
    t.equal(checked.body.error, 'invalid_token')
  }
  t.equal(app.echohub.limitHits.auth, 3, 'the upgrades were counted, the checks not')
})

t.test('a check answers what the upgrade does for the lab\'s controls: 400 invalid_control naming the control', async (t) => {
  const { app, port } = await server(t)
  for (const controls of ['delay=soon', 'repeat=0', 'close_code=1005&close_after=1', 'burst_size=10']) {
    const upgraded = await upgradeAnswer(t, port, `/echo?${controls}`)
    t.equal(upgraded.status, 400, `${controls}: the upgrade is refused`)
    const checked = await check(port, `/echo?${controls}&check`)
    t.same([checked.status, checked.body], [upgraded.status, upgraded.body], `${controls}: the check gives the same answer`)
    t.same(Object.keys(checked.body), ['error', 'control', 'message'], 'keys in the SPEC\'s order')
    t.equal(checked.body.error, 'invalid_control')
  }
  t.same((await check(port, '/echo/raw?delay=10&repeat=2&check')).body, { ok: true }, 'good controls pass')
  t.equal(app.echohub.limitHits.invalid_control, 4, 'the upgrades were counted, the checks not')
})

t.test('refusals name the setting as its user set it: the plugin\'s option in a host app, the flag from the CLI', async (t) => {
  const { port } = await server(t, { origins: ['https://good.example'] })
  const evil = { origin: 'https://evil.example' }
  t.equal((await check(port, '/chat?check', evil)).body.message, 'origin https://evil.example is not allowed (see the "origins" option)')
  const publish = await fetch(`http://127.0.0.1:${port}/publish`, { method: 'POST', headers: { ...evil, 'content-type': 'application/json' }, body: '{"payload":1}' })
  t.equal(((await publish.json()) as { message: string }).message, 'origin https://evil.example may not change anything here: list it in the "origins" option')

  const parsed = parseConfig(['--host', '127.0.0.1', '--only', 'chat', '--chat-port', '0', '--origins', 'https://good.example'], {})
  if (parsed.help) throw new Error('unexpected --help')
  const hub = await startEchohub(parsed.config, { logger: pino({ level: 'silent' }) })
  t.teardown(() => hub.close())
  const cliPort = hub.servers[0]!.port
  t.equal((await check(cliPort, '/ws?check', evil)).body.message, 'origin https://evil.example is not allowed (see --origins)')
  const cliPublish = await fetch(`http://127.0.0.1:${cliPort}/publish`, { method: 'POST', headers: { ...evil, 'content-type': 'application/json' }, body: '{"payload":1}' })
  t.equal(((await cliPublish.json()) as { message: string }).message, 'origin https://evil.example may not change anything here: list it in --origins')
})
