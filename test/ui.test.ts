import t, { type Test } from 'tap'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import Fastify, { type FastifyPluginAsync } from 'fastify'
import { pino } from 'pino'
import { echo, parseConfig, startEchohub, ui, type Config, type UiOptions } from '../index.js'

const PUBLIC = fileURLToPath(new URL('../public/', import.meta.url))
const DIST_INDEX = fileURLToPath(new URL('../dist/index.js', import.meta.url))
const silent = pino({ level: 'silent' })

/** An app with only the ui plugin, closed in teardown; requests go through inject. */
async function uiApp (t: Test, opts: UiOptions & { prefix?: string } = {}) {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(ui, opts)
  await app.ready()
  return app
}

/** The chat server as `npm start` builds it, on 127.0.0.1 port 0; closed in teardown. */
async function chatServer (t: Test, extra: string[] = []) {
  const parsed = parseConfig(['--host', '127.0.0.1', '--only', 'chat', '--chat-port', '0', ...extra], {})
  if (parsed.help) throw new Error('unexpected --help')
  const hub = await startEchohub(parsed.config as Config, { logger: silent })
  t.teardown(() => hub.close())
  return `http://127.0.0.1:${hub.servers[0]!.port}`
}

t.test('GET / is the chat page and /echo.html the echo tester, with their scripts and styles', async (t) => {
  const app = await uiApp(t)
  const page = await app.inject('/')
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /^text\/html/)
  t.match(page.body, '<script type="module" src="chat.js"></script>')
  t.match(page.body, '<title>echohub chat</title>')
  t.equal(page.headers['x-content-type-options'], 'nosniff')
  const echoPage = await app.inject('/echo.html')
  t.equal(echoPage.statusCode, 200)
  t.match(echoPage.body, '<script type="module" src="echo.js"></script>')
  for (const [file, type] of [['chat.js', /javascript/], ['echo.js', /javascript/], ['common.js', /javascript/], ['app.css', /^text\/css/], ['favicon.svg', /^image\/svg\+xml/]] as const) {
    const res = await app.inject('/' + file)
    t.equal(res.statusCode, 200, file)
    t.match(res.headers['content-type'], type, `${file} content type`)
  }
  t.equal((await app.inject('/nothing-here.js')).statusCode, 404)
  t.equal((await app.inject('/../package.json')).statusCode, 404, 'nothing outside public/')
})

t.test('the pages load nothing from another origin and never turn received text into HTML', async (t) => {
  for (const file of readdirSync(PUBLIC)) {
    const text = readFileSync(PUBLIC + file, 'utf8')
    t.notMatch(text, /(src|href)=["']?(https?:)?\/\//i, `${file}: no external scripts, styles or links`)
    t.notMatch(text, /@import|url\(\s*["']?(https?:)?\/\//i, `${file}: no external CSS`)
    if (file.endsWith('.js')) {
      t.notMatch(text, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function/, `${file}: text only`)
    }
  }
  for (const page of ['index.html', 'echo.html']) {
    const html = readFileSync(PUBLIC + page, 'utf8')
    t.match(html, /<meta http-equiv="Content-Security-Policy" content="default-src 'self'; connect-src 'self' ws: wss:/, `${page} has a strict CSP`)
    t.match(html, /<html lang="en">/, `${page} declares its language`)
    t.notMatch(html, /\son[a-z]+=/i, `${page}: no inline event handlers`)
  }
})

t.test('the pages build ws:// URLs from the page location, so a LAN address works too', async (t) => {
  const common = readFileSync(PUBLIC + 'common.js', 'utf8')
  t.match(common, /location\.protocol === 'https:' \? 'wss:' : 'ws:'/)
  t.match(common, /location\.hostname/)
  for (const file of ['chat.js', 'echo.js', 'common.js', 'index.html', 'echo.html']) {
    t.notMatch(readFileSync(PUBLIC + file, 'utf8'), /localhost|127\.0\.0\.1/, `${file} names no fixed host`)
  }
})

t.test('GET /api/servers tells the pages the chat path, the stats path and the echo ports', async (t) => {
  const app = await uiApp(t, {
    echoServers: [{ name: 'echo', port: 8765 }, { name: 'echo-debug', port: 8766, welcome: true, path: '/dev', rawPath: '/dev/raw' }]
  })
  const res = await app.inject('/api/servers')
  t.equal(res.statusCode, 200)
  t.equal(res.headers['cache-control'], 'no-store')
  t.same(res.json(), {
    chat: { name: 'chat', path: '/ws' },
    stats: { path: '/stats' },
    echo: [
      { name: 'echo', port: 8765, path: '/', raw_path: '/raw', welcome: false },
      { name: 'echo-debug', port: 8766, path: '/dev', raw_path: '/dev/raw', welcome: true }
    ]
  })
  const bare = await uiApp(t, { chatPath: '/chat', chatName: 'room', statsPath: '/admin/stats' })
  t.same((await bare.inject('/api/servers')).json(), { chat: { name: 'room', path: '/chat' }, stats: { path: '/admin/stats' }, echo: [] })
})

t.test('echoServers as a function is read on each request, for ports known only after listen', async (t) => {
  const servers = [{ name: 'echo', port: 40001 }]
  const app = await uiApp(t, { echoServers: () => servers })
  t.same((await app.inject('/api/servers')).json().echo.map((s: { port: number }) => s.port), [40001])
  servers.push({ name: 'late', port: 40002 })
  t.same((await app.inject('/api/servers')).json().echo.map((s: { port: number }) => s.port), [40001, 40002])
})

t.test('under a prefix the pages move, and /prefix redirects to /prefix/ so relative links work', async (t) => {
  const app = await uiApp(t, { prefix: '/ui' })
  const redirect = await app.inject('/ui')
  t.equal(redirect.statusCode, 301)
  t.equal(redirect.headers.location, '/ui/')
  t.equal((await app.inject('/ui?token=x')).headers.location, '/ui/?token=x', 'the query survives')
  t.equal((await app.inject('/ui/')).statusCode, 200)
  t.equal((await app.inject('/ui/chat.js')).statusCode, 200)
  t.equal((await app.inject('/ui/api/servers')).statusCode, 200)
  t.equal((await app.inject('/')).statusCode, 404, 'nothing at the root')
})

t.test('next to an echo server on any path, in one app, each keeps its routes', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(echo, { path: '/echo' })
  await app.register(ui)
  await app.ready()
  t.equal((await app.inject('/')).statusCode, 200, 'the page')
  t.equal((await app.inject('/echo')).statusCode, 426, 'the echo path')
})

t.test('a wrong option fails register with an error naming the option', async (t) => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ chatPath: 'ws' }, /option "chatPath"/],
    [{ statsPath: 5 }, /option "statsPath"/],
    [{ chatName: '' }, /option "chatName"/],
    [{ echoServers: 'echo' }, /option "echoServers"/],
    [{ echoServers: [null] }, /option "echoServers\[0\]"/],
    [{ echoServers: [{ port: 1 }] }, /option "echoServers\[0\].name"/],
    [{ echoServers: [{ name: 'echo', port: 0 }] }, /option "echoServers\[0\].port"/],
    [{ echoServers: [{ name: 'echo', port: 1, path: 'x' }] }, /option "path"/],
    [{ echoServers: [{ name: 'echo', port: 1, welcome: 'yes' }] }, /option "echoServers\[0\].welcome"/]
  ]
  for (const [opts, message] of cases) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(ui, opts) }, { code: 'ECHOHUB_ERR_INVALID_OPTION', message }, JSON.stringify(opts))
  }
})

t.test('the built package finds public/ from dist/', { skip: existsSync(DIST_INDEX) ? false : 'dist/ is not built (npm test builds it)' }, async (t) => {
  const built = await import(DIST_INDEX) as { ui: FastifyPluginAsync }
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(built.ui)
  const res = await app.inject('/')
  t.equal(res.statusCode, 200)
  t.match(res.body, '<title>echohub chat</title>')
})

t.test('the chat server sends CORS headers on every HTTP route, any origin by default', async (t) => {
  const base = await chatServer(t)
  for (const path of ['/', '/echo.html', '/chat.js', '/api/servers', '/health', '/stats', '/metrics']) {
    const res = await fetch(base + path, { headers: { origin: 'http://192.168.1.50:3000' } })
    t.equal(res.status, 200, path)
    t.equal(res.headers.get('access-control-allow-origin'), '*', `${path} allows any origin`)
  }
  const preflight = await fetch(base + '/stats', {
    method: 'OPTIONS',
    headers: { origin: 'http://192.168.1.50:3000', 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' }
  })
  t.equal(preflight.status, 204, 'a preflight is answered')
  t.equal(preflight.headers.get('access-control-allow-origin'), '*')
  t.match(preflight.headers.get('access-control-allow-methods'), /GET/)
  t.match(preflight.headers.get('access-control-allow-headers'), /authorization/i, 'a token header may be sent')
})

t.test('--origins limits CORS to the listed origins', async (t) => {
  const base = await chatServer(t, ['--origins', 'https://app.example.com,http://192.168.1.50:3000/'])
  const allowed = await fetch(base + '/stats', { headers: { origin: 'http://192.168.1.50:3000' } })
  t.equal(allowed.headers.get('access-control-allow-origin'), 'http://192.168.1.50:3000', 'a listed origin is allowed (trailing slash in the flag ignored)')
  t.match(allowed.headers.get('vary'), /origin/i, 'caches keep answers per origin')
  const other = await fetch(base + '/stats', { headers: { origin: 'https://evil.example' } })
  t.equal(other.headers.get('access-control-allow-origin'), null, 'an unlisted origin gets no CORS header')
  const page = await fetch(base + '/', { headers: { origin: 'https://app.example.com' } })
  t.equal(page.headers.get('access-control-allow-origin'), 'https://app.example.com')
})

t.test('/api/servers on the chat server lists the echo servers with the ports they really got', async (t) => {
  const parsed = parseConfig(['--host', '127.0.0.1', '--echo-port', '0', '--debug-port', '0', '--chat-port', '0'], {})
  if (parsed.help) throw new Error('unexpected --help')
  const hub = await startEchohub(parsed.config, { logger: silent })
  t.teardown(() => hub.close())
  const port = (name: string) => hub.servers.find((s) => s.name === name)!.port
  const info = await (await fetch(`http://127.0.0.1:${port('chat')}/api/servers`)).json() as Record<string, any>
  t.same(info.echo, [
    { name: 'echo', port: port('echo'), path: '/', raw_path: '/raw', welcome: false },
    { name: 'echo-debug', port: port('echo-debug'), path: '/', raw_path: '/raw', welcome: true }
  ])
  t.not(port('echo'), 0)
  t.same(info.chat, { name: 'chat', path: '/ws' })
})
