// Unknown plugin options: refused at register with the same coded error as a wrong value.
import t from 'tap'
import Fastify from 'fastify'
import { chat, echo, echohubRegistry, stats, ui } from '../index.js'

t.test('every plugin refuses an option it does not take, naming it and the likely one meant', async (t) => {
  const cases: Array<[string, (app: ReturnType<typeof Fastify>) => unknown, RegExp]> = [
    ['echo', (app) => app.register(echo, { welcom: true } as object), /^echohub-echo: option "welcom" is not an option of echohub-echo \(did you mean "welcome"\?\); it takes path, name, /],
    ['chat', (app) => app.register(chat, { ratelimit: 5 } as object), /^echohub-chat: option "ratelimit" is not an option of echohub-chat \(did you mean "rateLimit"\?\)/],
    ['stats', (app) => app.register(stats, { prefx: '/x' } as object), /^echohub-stats: option "prefx" is not an option/],
    ['ui', (app) => app.register(ui, { chatpath: '/chat' } as object), /^echohub-ui: option "chatpath" is not an option of echohub-ui \(did you mean "chatPath"\?\)/],
    ['registry', (app) => app.register(echohubRegistry, { maxConnection: 5 } as object), /^echohub-registry: option "maxConnection" is not an option of echohub-registry \(did you mean "maxConnections"\?\)/],
    ['no near name', (app) => app.register(echo, { colour: 'blue' } as object), /^echohub-echo: option "colour" is not an option of echohub-echo; it takes /]
  ]
  for (const [name, register, message] of cases) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await register(app); await app.ready() }, { code: 'ECHOHUB_ERR_INVALID_OPTION', message }, name)
  }
})

t.test('Fastify\'s own register options are accepted by every plugin', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(echo, { prefix: '/v1', logLevel: 'warn', path: '/echo' } as object)
  await app.register(stats, { prefix: '/ops', logLevel: 'warn' } as object)
  await app.ready()
  t.equal((await app.inject('/ops/health')).statusCode, 200)
  t.equal((await app.inject('/v1/echo')).statusCode, 426, 'the echo is under its prefix')
})
