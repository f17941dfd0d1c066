// The browser pages: the chat page at `/`, the echo tester at `/echo.html`, their assets from the
// package's public/ folder, and `GET /api/servers`, which tells the pages where the servers are.
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import fastifyStatic from '@fastify/static'
import { booleanOption, integerOption, pathOption, stringOption, describe, knownOptions, type OptionKeys } from '../src/options.js'
import { DEFAULT_LIMITS } from '../src/limits.js'
import { InvalidOptionError } from '../src/errors.js'
import { replyError } from '../routes/errors.js'
import { ENDPOINT_DEFAULTS } from '../src/limits.js'
import { serversRoutes, type ServersInfo } from '../routes/servers.js'
import { inspectRoutes } from '../routes/inspect.js'
import { addEndpoint, adminLocalRefusal, adminRefusal, connectionCapRefusal, ensureInfrastructure } from './registry.js'
import { clientPeer } from './transport.js'
import { conformanceReports } from './conformance.js'

export type { ServersInfo }

/** An echo server of this process, as the echo tester page offers it. */
export interface EchoServerInfo {
  /** Shown on the page, e.g. `echo-debug`. */
  name: string
  /** The port the server actually listens on (not 0). The page connects to it on its own host. */
  port: number
  /** Path of the JSON envelope echo (default `/`). */
  path?: string
  /** Path of the plain echo (default `/raw`). */
  rawPath?: string
  /** Whether the server sends a welcome on connect (default false). */
  welcome?: boolean
}

export interface UiOptions {
  /** Where the chat page connects, on its own origin (default `/ws`). */
  chatPath?: string
  /** Name of the chat endpoint in /stats, for the page's figures (default `chat`). */
  chatName?: string
  /** Where the chat page polls its figures (default `/stats`). */
  statsPath?: string
  /**
   * The echo servers the echo tester offers. A function is called on each request, so ports
   * known only after `listen` (port 0) can be given (default: none).
   */
  echoServers?: EchoServerInfo[] | (() => EchoServerInfo[])
  /**
   * Serve the inspector (default true): `GET /inspect` and its WebSocket `/inspect/ws`, which show
   * every connection of the registry and let the page act on them.
   */
  inspector?: boolean
  /** An inspector page's unsent bytes past which it loses events, counted as `inspector_dropped` (default 1048576). */
  inspectorMaxBuffered?: number
}

const PLUGIN = 'echohub-ui'
/** The name inspectors' connections go by in /stats and /connections. */
const INSPECTOR_ENDPOINT = 'inspector'
const OPTION_KEYS: OptionKeys<UiOptions> = { chatPath: true, chatName: true, statsPath: true, echoServers: true, inspector: true, inspectorMaxBuffered: true }

/**
 * public/ sits next to plugins/ in the source tree and next to dist/ in the built and the installed
 * package, so it is one or two levels up from this module.
 */
export function findPublicFolder (): string {
  const candidates = ['../public/', '../../public/'].map((p) => fileURLToPath(new URL(p, import.meta.url)))
  const found = candidates.find((dir) => existsSync(dir + 'index.html'))
  if (found === undefined) throw new Error(`${PLUGIN}: the pages are missing; looked for index.html in ${candidates.join(' and ')}`)
  return found
}

/**
 * echohub/client compiled: next to this module in the built package (dist/plugins → dist/src), or
 * in dist/ when this module runs from the source tree (after `npm run build`).
 */
function findClientFile (): string | undefined {
  const candidates = ['../src/client/index.js', '../dist/src/client/index.js'].map((p) => fileURLToPath(new URL(p, import.meta.url)))
  return candidates.find((file) => existsSync(file))
}

function checkEchoServer (server: unknown, index: number): EchoServerInfo {
  const s = server as Partial<EchoServerInfo> | null
  const where = `echoServers[${index}]`
  if (s === null || typeof s !== 'object') throw new InvalidOptionError(PLUGIN, where, `must be an object like { name: 'echo', port: 8765 }, got ${describe(s)}`)
  if (typeof s.name !== 'string' || s.name === '') throw new InvalidOptionError(PLUGIN, `${where}.name`, `must be a non-empty string, got ${describe(s.name)}`)
  if (typeof s.port !== 'number' || !Number.isInteger(s.port) || s.port < 1 || s.port > 65535) {
    throw new InvalidOptionError(PLUGIN, `${where}.port`, `must be the port the server listens on, 1 to 65535, got ${describe(s.port)}`)
  }
  pathOption(PLUGIN, s, 'path', '/')
  pathOption(PLUGIN, s, 'rawPath', '/raw')
  if (s.welcome !== undefined && typeof s.welcome !== 'boolean') throw new InvalidOptionError(PLUGIN, `${where}.welcome`, `must be true or false, got ${describe(s.welcome)}`)
  return s as EchoServerInfo
}

function echoList (servers: EchoServerInfo[]): ServersInfo['echo'] {
  return servers.map((s, i) => {
    checkEchoServer(s, i)
    return { name: s.name, port: s.port, path: s.path ?? '/', raw_path: s.rawPath ?? '/raw', welcome: s.welcome ?? false }
  })
}

const uiRoutes: FastifyPluginAsync<UiOptions> = async (app, opts) => {
  if (opts === null || typeof opts !== 'object') throw new InvalidOptionError(PLUGIN, 'options', 'must be an object')
  knownOptions(PLUGIN, opts, OPTION_KEYS)
  const chat = { name: stringOption(PLUGIN, opts, 'chatName', ENDPOINT_DEFAULTS.chat.name), path: pathOption(PLUGIN, opts, 'chatPath', ENDPOINT_DEFAULTS.chat.path) }
  const statsInfo = { path: pathOption(PLUGIN, opts, 'statsPath', '/stats') }
  const echoServers = opts.echoServers ?? []
  if (typeof echoServers !== 'function' && !Array.isArray(echoServers)) {
    throw new InvalidOptionError(PLUGIN, 'echoServers', `must be an array of { name, port } or a function returning one, got ${describe(echoServers)}`)
  }
  // A fixed list is checked now; a function's result on each call (a bad one answers 500).
  const fixed = Array.isArray(echoServers) ? echoList(echoServers) : undefined

  app.setErrorHandler(replyError)
  const inspector = booleanOption(PLUGIN, opts, 'inspector', true)
  const publicFolder = findPublicFolder()
  if (inspector) {
    await ensureInfrastructure(app, 0)
    await app.register(inspectRoutes, {
      publicFolder,
      maxBuffered: integerOption(PLUGIN, opts, 'inspectorMaxBuffered', DEFAULT_LIMITS.inspectorMaxBuffered, 0),
      adminRefusal: async (request) => await adminRefusal(app, request),
      localRefusal: (request) => adminLocalRefusal(app, request),
      capRefusal: (request) => connectionCapRefusal(app, request),
      // One endpoint for every inspector of the registry, whichever app serves it.
      endpoint: app.echohub.endpoints.get(INSPECTOR_ENDPOINT) ?? addEndpoint(app, PLUGIN, INSPECTOR_ENDPOINT),
      peer: (request) => ({ ...clientPeer(request), path: request.url })
    })
  }

  // The pages' client, as a module the browser imports: `import { connect } from './client.js'`.
  const clientFile = findClientFile()
  let clientCode: Buffer | undefined
  app.get('/client.js', async (_request, reply) => {
    if (clientFile === undefined) return reply.code(500).send({ error: 'client_missing', message: 'echohub/client is not built: run "npm run build"' })
    clientCode ??= readFileSync(clientFile)
    return reply.type('text/javascript; charset=utf-8').header('cache-control', 'no-cache').header('x-content-type-options', 'nosniff').send(clientCode)
  })

  await app.register(serversRoutes, { read: () => ({ chat, stats: statsInfo, echo: fixed ?? echoList((echoServers as () => EchoServerInfo[])()) }) })
  // The conformance page and its reports, for the suite any echo server of this registry runs.
  await ensureInfrastructure(app, 0)
  await app.register(conformanceReports(app, '/conformance'))

  // Under a prefix, `/prefix` must become `/prefix/`, or the pages' relative links miss.
  if (app.prefix !== '') {
    app.addHook('onRequest', async (request, reply) => {
      if (request.url === app.prefix || request.url.startsWith(app.prefix + '?')) {
        return reply.redirect(app.prefix + '/' + request.url.slice(app.prefix.length), 301)
      }
    })
  }

  await app.register(fastifyStatic, {
    root: publicFolder,
    // One route per file, found at start-up: no catch-all route to clash with an echo's `/*`.
    wildcard: false,
    index: ['index.html'],
    // The app may have @fastify/static of its own; this plugin needs no reply.sendFile.
    decorateReply: false,
    setHeaders (res) {
      res.setHeader('x-content-type-options', 'nosniff')
    }
  })
}

/**
 * The ui plugin. Encapsulated, so `prefix` moves the pages; give `chatPath` and `statsPath` as the
 * browser sees them (from the origin's root).
 */
export const ui = fp<UiOptions>(uiRoutes, { name: PLUGIN, fastify: '5.x', encapsulate: true })
