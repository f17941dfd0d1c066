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

t.test('the chat settings: port, CORS origins and chat limits, from flags or environment', async (t) => {
  const c = config([])
  t.same([c.chatPort, c.origins, c.chatMaxPayload, c.rateLimit, c.rateBurst, c.maxBuffered], [5000, '*', 65536, 20, 40, 4194304], 'defaults match the SPEC')
  t.equal(config([], { CHAT_PORT: '5001' }).chatPort, 5001)
  t.same(config(['--only', 'chat']).servers, ['chat'])
  t.same(config(['--origins', 'https://app.example.com, http://192.168.1.20:3000/']).origins, ['https://app.example.com', 'http://192.168.1.20:3000'], 'a list, trailing slash dropped')
  t.same(config([], { ORIGINS: 'http://LOCALHOST:8080' }).origins, ['http://localhost:8080'], 'host case does not matter')
  t.equal(config(['--origins', '*']).origins, '*')
  t.equal(config(['--chat-max-payload', '1024']).chatMaxPayload, 1024)
  t.equal(config([], { RATE_LIMIT: '0' }).rateLimit, 0, 'rate limit 0 turns it off')
  t.equal(config(['--rate-burst', '5'], { RATE_BURST: '9' }).rateBurst, 5, 'the flag wins')
  t.equal(config([], { MAX_BUFFERED: '1048576' }).maxBuffered, 1048576)
  const bad: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
    [['--chat-port', '99999'], {}, /--chat-port must be a port number/],
    [['--origins', 'example.com'], {}, /--origins takes \* or origins like https:\/\/example\.com/],
    [['--origins', 'https://example.com/app'], {}, /no path/],
    [['--origins', 'ftp://example.com'], {}, /--origins takes/],
    [[], { ORIGINS: ' , ' }, /ORIGINS must be \*/],
    [['--chat-max-payload', '0'], {}, /--chat-max-payload must be a whole number from 1 up/],
    [['--rate-limit=-1'], {}, /--rate-limit must be a whole number from 0 up/],
    [['--rate-burst', '1.5'], {}, /--rate-burst must be a whole number/],
    [[], { MAX_BUFFERED: 'lots' }, /MAX_BUFFERED must be a whole number/]
  ]
  for (const [argv, env, message] of bad) {
    t.throws(() => parseConfig(argv, env), { code: 'ECHOHUB_ERR_INVALID_CONFIG', message }, argv.join(' ') || JSON.stringify(env))
  }
})
