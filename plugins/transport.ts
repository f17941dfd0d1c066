// What echohub's endpoints need from the transport under them: the subprotocol each endpoint
// picks on an app's one WebSocket server, permessage-deflate, and who the client is behind a proxy.
import type { FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify'
import type { IncomingMessage } from 'node:http'
import { isIP } from 'node:net'
import type { WebSocketServer } from 'ws'
import { chooseSubprotocol, isSubprotocolName, type SubprotocolChoice } from '../src/transport/subprotocols.js'
import { describe } from '../src/options.js'
import { InvalidOptionError } from '../src/errors.js'
import { replaceHandleProtocols, type HandleProtocols } from './ws-internals.js'

export type { SubprotocolChoice } from '../src/transport/subprotocols.js'

/** The choice of the echohub endpoint each pending upgrade is for, noted before ws negotiates. */
const choices = new WeakMap<IncomingMessage, SubprotocolChoice>()
/** Servers whose subprotocol decision echohub routes already. */
const routed = new WeakSet<WebSocketServer>()

/**
 * ws asks one `handleProtocols` per WebSocket server, and an app has one server for all its routes.
 * This one answers for each upgrade as the endpoint it is for would: echohub's endpoints by their
 * own choice, any other route as `fallback` (the app's own function) or, without one, as ws does
 * by default (the first offered).
 */
export function subprotocolRouter (fallback?: HandleProtocols): HandleProtocols {
  return (offered, request) => {
    const choice = choices.get(request)
    if (choice !== undefined) return chooseSubprotocol(offered, choice)
    if (fallback !== undefined) return fallback(offered, request)
    return chooseSubprotocol(offered, '*')
  }
}

/**
 * Routes the subprotocol decision of a WebSocket server the app built itself (it registered
 * @fastify/websocket before echohub), keeping the app's own `handleProtocols` for its routes.
 */
export function routeSubprotocols (server: WebSocketServer): void {
  if (routed.has(server)) return
  routed.add(server)
  replaceHandleProtocols(server, subprotocolRouter)
}

/** An `onRequest` hook for an endpoint's routes: the upgrade will get this endpoint's subprotocol choice. */
export function offerSubprotocols (choice: SubprotocolChoice): onRequestHookHandler {
  return function noteSubprotocols (request: FastifyRequest, _reply: FastifyReply, done: () => void) {
    if (request.ws) choices.set(request.raw, choice)
    done()
  }
}

/** Reads an endpoint's `subprotocols` option: `'*'` (where allowed) or a list of subprotocol names. */
export function subprotocolsOption (plugin: string, opts: object, fallback: SubprotocolChoice, allowAny: boolean): SubprotocolChoice {
  const v = (opts as { subprotocols?: unknown }).subprotocols
  if (v === undefined) return fallback
  if (v === '*' && allowAny) return '*'
  if (!Array.isArray(v) || !v.every((name) => typeof name === 'string' && isSubprotocolName(name))) {
    throw new InvalidOptionError(plugin, 'subprotocols', `must be ${allowAny ? '"*" or ' : ''}an array of subprotocol names (letters, digits and !#$%&'*+-.^_\`|~), got ${describe(v)}`)
  }
  return [...new Set(v as string[])]
}

/**
 * The client's address and port as echohub shows and counts them. With Fastify's `trustProxy`,
 * `request.ip` is the address the trusted proxies forwarded (X-Forwarded-For); the port is then
 * the proxy's own, meaningless for the client, so there is none. A forwarded value that is not an
 * IP address is ignored: it would otherwise reach envelopes and logs as the client chose it.
 */
export function clientPeer (request: FastifyRequest): { address: string | undefined, port: number | undefined } {
  const socket = request.raw.socket
  const address = socket?.remoteAddress
  const ip = request.ip
  if (ip !== undefined && ip !== address && isIP(ip) !== 0) return { address: ip, port: undefined }
  return { address, port: socket?.remotePort }
}
