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
    [['--nope'], {}, /^unknown option --nope \(see --help\)$/],
    [['--foo', 'x'], {}, /^unknown option --foo \(see --help\)$/],
    [['-x'], {}, /^unknown option -x \(see --help\)$/],
    [['stray'], {}, /^unexpected argument "stray" \(see --help\)$/],
    [['--host'], {}, /^--host needs a value/],
    [['--host', '--echo-port', '1'], {}, /^--host needs a value/],
    [['--help=yes'], {}, /^--help takes no value/],
    [['--heartbeat-interval', '-5'], {}, /^--heartbeat-interval must be a whole number from 0 up \(ms; 0 turns it off\), got "-5"$/],
    [['--echo-max-payload', '-1'], {}, /^--echo-max-payload must be a whole number from 1 up \(bytes\), got "-1"$/]
  ]
  for (const [argv, env, message] of cases) {
    t.throws(() => parseConfig(argv, env), { code: 'ECHOHUB_ERR_INVALID_CONFIG', message }, argv.join(' ') || JSON.stringify(env))
  }
})

function printed (argv: string[]): string {
  const parsed = parseConfig(argv, {})
  if (!parsed.help) throw new Error('expected text to print')
  return parsed.text
}

t.test('--help lists every flag with its environment variable and default', async (t) => {
  t.same(parseConfig(['--help'], {}), { help: true, text: helpText() })
  t.same(parseConfig(['-h', '--echo-port', 'bad'], {}), { help: true, text: helpText() }, '-h too, whatever else is given')
  t.match(printed(['--version']), /^echohub \d+\.\d+\.\d+/)
  t.equal(printed(['-v']), printed(['--version']))
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

t.test('Redis: --redis/REDIS_URL and --redis-prefix/REDIS_PREFIX', async (t) => {
  const c = config([])
  t.equal(c.redis, undefined, 'no Redis by default: the chat runs in process')
  t.equal(c.redisPrefix, 'echohub:')
  t.equal(config([], { REDIS_URL: 'redis://127.0.0.1:6379' }).redis, 'redis://127.0.0.1:6379')
  t.equal(config(['--redis', 'rediss://user:pw@cache.example.com:6380/2'], { REDIS_URL: 'redis://x' }).redis, 'rediss://user:pw@cache.example.com:6380/2', 'the flag wins; TLS and a database number are fine')
  t.equal(config(['--redis-prefix', 'staging:'], { REDIS_PREFIX: 'x:' }).redisPrefix, 'staging:')
  t.equal(config([], { REDIS_PREFIX: 'prod:' }).redisPrefix, 'prod:')
  t.equal(c.redisHeartbeatTtl, 10000, 'an instance silent for 10 s is taken for dead')
  t.equal(config(['--redis-heartbeat-ttl', '30000'], { REDIS_HEARTBEAT_TTL: '5000' }).redisHeartbeatTtl, 30000)
  t.equal(config([], { REDIS_HEARTBEAT_TTL: '5000' }).redisHeartbeatTtl, 5000)
  const bad: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
    [['--redis', '127.0.0.1:6379'], {}, /--redis must be a URL like redis:\/\/127\.0\.0\.1:6379/],
    [[], { REDIS_URL: 'http://localhost:6379' }, /REDIS_URL must be a URL like redis:/],
    [['--redis', 'redis://user:secret@/'], {}, /got "redis:\/\/\*\*\*@\/"/],
    [['--redis-prefix', ''], {}, /--redis-prefix must be a non-empty prefix/],
    [[], { REDIS_PREFIX: 'chat{1}:' }, /REDIS_PREFIX must be a non-empty prefix without \{ or \}/],
    [['--redis-heartbeat-ttl', '99'], {}, /--redis-heartbeat-ttl must be a whole number from 100 up \(ms\)/]
  ]
  for (const [argv, env, message] of bad) {
    t.throws(() => parseConfig(argv, env), { code: 'ECHOHUB_ERR_INVALID_CONFIG', message }, argv.join(' ') || JSON.stringify(env))
  }
})

t.test('the transport settings: TLS files, self-signed, subprotocols, compression, trust-proxy', async (t) => {
  const c = config([])
  t.same([c.tlsCert, c.tlsKey, c.tlsSelfSigned, c.subprotocols, c.chatSubprotocols, c.compression, c.trustProxy],
    [undefined, undefined, false, undefined, [], false, false], 'all off by default; echo takes the first subprotocol offered, chat none')
  t.same([config(['--tls-cert', 'c.pem', '--tls-key', 'k.pem']).tlsCert, config([], { TLS_CERT: 'c.pem', TLS_KEY: 'k.pem' }).tlsKey], ['c.pem', 'k.pem'])
  t.equal(config(['--tls-self-signed']).tlsSelfSigned, true)
  t.equal(config([], { TLS_SELF_SIGNED: '1' }).tlsSelfSigned, true)
  t.equal(config([], { COMPRESSION: 'false' }).compression, false)
  t.equal(config(['--compression'], { COMPRESSION: '0' }).compression, true, 'the flag wins')
  t.same(config(['--subprotocols', 'mqtt, wamp.2.json,mqtt']).subprotocols, ['mqtt', 'wamp.2.json'], 'a list, duplicates dropped')
  t.same(config([], { CHAT_SUBPROTOCOLS: 'chat.v1' }).chatSubprotocols, ['chat.v1'])
  t.equal(config(['--trust-proxy']).trustProxy, true, 'alone it means true')
  t.equal(config(['--trust-proxy', '--compression']).trustProxy, true, 'alone before another flag too')
  t.equal(config(['--trust-proxy', '2']).trustProxy, 2, 'a hop count')
  t.same(config(['--trust-proxy=10.0.0.1, 192.168.0.0/16,loopback']).trustProxy, ['10.0.0.1', '192.168.0.0/16', 'loopback'], 'proxy addresses')
  t.same(config([], { TRUST_PROXY: '::1' }).trustProxy, ['::1'])
  t.equal(config([], { TRUST_PROXY: 'true' }).trustProxy, true)
  const bad: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
    [['--tls-cert', 'c.pem'], {}, /--tls-cert needs --tls-key too/],
    [[], { TLS_KEY: 'k.pem' }, /--tls-key needs --tls-cert too/],
    [['--tls-self-signed', '--tls-cert', 'c', '--tls-key', 'k'], {}, /--tls-self-signed and --tls-cert\/--tls-key exclude each other/],
    [[], { TLS_SELF_SIGNED: 'maybe' }, /TLS_SELF_SIGNED must be true or false/],
    [['--compression=yes'], {}, /--compression.*see --help/],
    [['--subprotocols', 'a b'], {}, /--subprotocols takes subprotocol names/],
    [['--chat-subprotocols', 'x,{y}'], {}, /"\{y\}"/],
    [['--trust-proxy', '10.0.0.0/33'], {}, /--trust-proxy takes true, a hop count, or proxy addresses/],
    [[], { TRUST_PROXY: 'my-proxy' }, /TRUST_PROXY takes/]
  ]
  for (const [argv, env, message] of bad) {
    t.throws(() => parseConfig(argv, env), { code: 'ECHOHUB_ERR_INVALID_CONFIG', message }, argv.join(' ') || JSON.stringify(env))
  }
})

t.test('--inspector-max-buffered / INSPECTOR_MAX_BUFFERED: default 1 MiB, a whole number from 0', async (t) => {
  const read = (argv: string[], env: Record<string, string> = {}) => {
    const parsed = parseConfig(argv, env)
    if (parsed.help) throw new Error('help')
    return parsed.config.inspectorMaxBuffered
  }
  t.equal(read([]), 1048576)
  t.equal(read(['--inspector-max-buffered', '0']), 0)
  t.equal(read([], { INSPECTOR_MAX_BUFFERED: '65536' }), 65536)
  t.throws(() => read(['--inspector-max-buffered', '-5']), { code: 'ECHOHUB_ERR_INVALID_CONFIG', message: /--inspector-max-buffered/ })
})

t.test('the chat delivery settings: --history-max-bytes, --dedupe-window, --dedupe-max-keys, from flags or environment', async (t) => {
  const defaults = config([])
  t.same([defaults.historyMaxBytes, defaults.dedupeWindow, defaults.dedupeMaxKeys], [67108864, 120000, 100000])
  const set = config(['--history-max-bytes', '1048576', '--dedupe-window', '5000'], { DEDUPE_MAX_KEYS: '10', HISTORY_MAX_BYTES: '7' })
  t.same([set.historyMaxBytes, set.dedupeWindow, set.dedupeMaxKeys], [1048576, 5000, 10], 'a flag wins over its variable')
  for (const flag of ['--history-max-bytes', '--dedupe-window', '--dedupe-max-keys']) {
    t.throws(() => config([flag, '-1']), { code: 'ECHOHUB_ERR_INVALID_CONFIG', message: new RegExp(flag) }, `${flag} -1`)
  }
})

t.test('--lab-max-output, --lab-max-burst, --max-control-frames: defaults, environment variables, bad values refused', async (t) => {
  const read = (argv: string[], env: Record<string, string> = {}) => {
    const parsed = parseConfig(argv, env)
    if (parsed.help) throw new Error('help')
    return [parsed.config.labMaxOutput, parsed.config.labMaxBurst, parsed.config.maxControlFrames]
  }
  t.same(read([]), [16777216, 268435456, 100])
  t.same(read(['--lab-max-output', '1000', '--lab-max-burst', '2000', '--max-control-frames', '0']), [1000, 2000, 0])
  t.same(read([], { LAB_MAX_OUTPUT: '5', LAB_MAX_BURST: '6', MAX_CONTROL_FRAMES: '7' }), [5, 6, 7])
  t.throws(() => read(['--lab-max-output', '0']), { code: 'ECHOHUB_ERR_INVALID_CONFIG', message: /--lab-max-output/ })
  t.throws(() => read(['--lab-max-burst', 'x']), { code: 'ECHOHUB_ERR_INVALID_CONFIG', message: /--lab-max-burst/ })
  t.throws(() => read(['--max-control-frames', '-1']), { code: 'ECHOHUB_ERR_INVALID_CONFIG', message: /--max-control-frames/ })
})
