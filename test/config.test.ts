import t from 'tap'
import { parseConfig, helpText, SETTINGS } from '../src/config.js'

function config (argv: string[], env: NodeJS.ProcessEnv = {}) {
  const parsed = parseConfig(argv, env)
  if (parsed.help) throw new Error('unexpected --help')
  return parsed.config
}

t.test('defaults match the SPEC', async (t) => {
  const c = config([])
  t.equal(c.host, '0.0.0.0')
  t.equal(c.echoPort, 8765)
  t.equal(c.debugPort, 8766)
  t.same(c.servers, ['echo', 'echo-debug', 'chat'])
  t.equal(c.chatPort, 5000)
  t.equal(c.logLevel, undefined)
  t.equal(c.logFormat, undefined)
})

t.test('an environment variable sets a value and a flag wins over it', async (t) => {
  t.equal(config([], { ECHO_PORT: '9001' }).echoPort, 9001)
  t.equal(config(['--echo-port', '9002'], { ECHO_PORT: '9001' }).echoPort, 9002)
  t.equal(config(['--host=127.0.0.1'], { HOST: '::' }).host, '127.0.0.1')
  t.same(config([], { SERVERS: 'echo-debug' }).servers, ['echo-debug'])
  t.same(config(['--only', 'echo,echo'], {}).servers, ['echo'], 'duplicates dropped')
  t.equal(config([], { LOG_LEVEL: 'warn' }).logLevel, 'warn')
  t.equal(config(['--log-format', 'json']).logFormat, 'json')
  t.equal(config(['--echo-port', '0']).echoPort, 0, 'port 0 picks a free port')
})

t.test('a bad value fails with an error naming the flag or variable', async (t) => {
  const cases: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
    [['--echo-port', '70000'], {}, /--echo-port must be a port number/],
    [['--debug-port', 'abc'], {}, /--debug-port must be a port number/],
    [[], { ECHO_PORT: '-1' }, /ECHO_PORT must be a port number/],
    [['--only', 'echo,nope'], {}, /--only takes echo, echo-debug/],
    [['--log-level', 'loud'], {}, /--log-level must be one of/],
    [['--log-format', 'xml'], {}, /--log-format must be json or pretty/],
    [['--nope'], {}, /Unknown option '--nope'.*--help/],
    [['stray'], {}, /Unexpected argument 'stray'/]
  ]
  for (const [argv, env, message] of cases) {
    t.throws(() => parseConfig(argv, env), { code: 'ECHOHUB_ERR_INVALID_CONFIG', message }, argv.join(' ') || JSON.stringify(env))
  }
})

t.test('--help lists every flag with its environment variable and default', async (t) => {
  t.same(parseConfig(['--help'], {}), { help: true })
  const text = helpText()
  for (const s of SETTINGS) {
    t.match(text, `--${s.flag}`)
    t.match(text, s.env)
    if (s.default !== undefined) t.match(text, `[${s.default}]`)
  }
})
