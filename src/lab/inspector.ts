// The inspector's server side: one hub per registry (so per process) feeding every attached
// inspector page the live connections, and the frames of the one each page watches. Nothing runs
// while no inspector is attached; a slow inspector loses events instead of holding anyone up.
import type { WebSocket } from 'ws'
import type { ConnectionRegistry } from '../registry.js'
import { isoNow } from '../format.js'
import { DEFAULT_LIMITS } from '../limits.js'
import { ACTION_NAMES, act, findConnection, listConnections, socketOf, type ActionName } from './actions.js'
import { FrameTap, type FrameEvent } from './tap.js'

/** What the hub needs of an inspector's own WebSocket. */
export interface InspectorSocket {
  readonly readyState: number
  readonly bufferedAmount: number
  /** A text message: a string, or its UTF-8 bytes. */
  send: (data: string | Buffer, options: { binary: false }) => void
}

export interface InspectorOptions {
  /** Unsent bytes past which an inspector's events are dropped (counted as `inspector_dropped`). */
  maxBuffered?: number
  /** How often the connection list is sent, ms. */
  listInterval?: number
  /** Connections listed at most (the total is always given). */
  maxListed?: number
}

export const INSPECTOR_MAX_BUFFERED = DEFAULT_LIMITS.inspectorMaxBuffered
const LIST_INTERVAL = 1000
const MAX_LISTED = 500
const OPEN = 1
const TEXT = { binary: false } as const

/** What the hub counts an inspector's traffic on: its connection in the registry. */
export interface InspectorCounter {
  sent: (bytes: number) => void
}

/** One attached inspector page. */
export class Inspector {
  readonly socket: InspectorSocket
  readonly counter: InspectorCounter | undefined
  /** The id of the connection it watches. */
  watching: number | undefined
  /** Events it lost by not reading fast enough. */
  dropped = 0

  constructor (socket: InspectorSocket, counter?: InspectorCounter) {
    this.socket = socket
    this.counter = counter
  }
}

/** A watched connection: its tap and who watches it. */
interface Watch {
  tap: FrameTap
  socket: WebSocket
  inspectors: Set<Inspector>
}

/**
 * A socket's owner can ask to be told when an inspector starts and stops watching it (the chat
 * writes its broadcasts as pre-framed bytes, past the tap, unless told).
 */
const watchHooks = new WeakMap<object, (watched: boolean) => void>()
export function onWatched (socket: object, hook: (watched: boolean) => void): void {
  watchHooks.set(socket, hook)
}

export class InspectorHub {
  readonly #registry: ConnectionRegistry
  readonly #inspectors = new Set<Inspector>()
  readonly #watches = new Map<number, Watch>()
  /** The inspectors' own sockets: never watched, since watching one would feed it its own frames. */
  readonly #inspectorSockets = new WeakSet<object>()
  /** Unsent bytes past which an inspector's events are dropped. */
  maxBuffered: number
  readonly #listInterval: number
  readonly #maxListed: number
  #timer: NodeJS.Timeout | undefined

  constructor (registry: ConnectionRegistry, options: InspectorOptions = {}) {
    this.#registry = registry
    this.maxBuffered = options.maxBuffered ?? INSPECTOR_MAX_BUFFERED
    this.#listInterval = options.listInterval ?? LIST_INTERVAL
    this.#maxListed = options.maxListed ?? MAX_LISTED
  }

  get attached (): number {
    return this.#inspectors.size
  }

  /** Connections being tapped right now. */
  get watched (): number {
    return this.#watches.size
  }

  /** Attaches an inspector page; `counter` counts what it is sent (its connection in the registry). */
  attach (socket: InspectorSocket, counter?: InspectorCounter): Inspector {
    const inspector = new Inspector(socket, counter)
    this.#inspectors.add(inspector)
    this.#inspectorSockets.add(socket)
    this.#sendLists([inspector])
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#sendLists(this.#inspectors), this.#listInterval)
      this.#timer.unref()
    }
    return inspector
  }

  detach (inspector: Inspector): void {
    if (!this.#inspectors.delete(inspector)) return
    this.#unwatch(inspector)
    if (this.#inspectors.size === 0) {
      clearInterval(this.#timer)
      this.#timer = undefined
    }
  }

  /** Everything: called when the app closes. */
  close (): void {
    for (const inspector of [...this.#inspectors]) this.detach(inspector)
  }

  /** A frame from the inspector page: `watch` a connection, or run an action on one. */
  command (inspector: Inspector, text: string): void {
    let msg: Record<string, unknown>
    try {
      const parsed: unknown = JSON.parse(text)
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object')
      msg = parsed as Record<string, unknown>
    } catch {
      this.#error(inspector, 'send JSON objects: {"type":"watch","id":12} or {"type":"action","id":12,"action":"ping"}')
      return
    }
    const id = msg.id
    if (msg.type === 'watch') {
      if (id !== null && !Number.isSafeInteger(id)) {
        this.#error(inspector, '"id" must be a connection id, or null to stop watching')
        return
      }
      this.#watch(inspector, id as number | null)
      return
    }
    if (msg.type === 'action') {
      const action = msg.action as ActionName
      if (!Number.isSafeInteger(id) || !ACTION_NAMES.includes(action)) {
        this.#error(inspector, `an action needs "id" and "action" (${ACTION_NAMES.join(', ')})`)
        return
      }
      const result = act(this.#registry, id as number, action, msg.body)
      this.#deliver(inspector, JSON.stringify(result.ok
        ? { type: 'result', id, action, ok: true }
        : { type: 'result', id, action, ok: false, error: result.error, message: result.message }))
      return
    }
    this.#error(inspector, `unknown type ${JSON.stringify(msg.type)}: use watch or action`)
  }

  #watch (inspector: Inspector, id: number | null): void {
    this.#unwatch(inspector)
    const conn = id === null ? undefined : findConnection(this.#registry, id)
    if (id !== null && conn === undefined) {
      this.#deliver(inspector, JSON.stringify({ type: 'watching', id: null, message: `no open connection has id ${id}` }))
      return
    }
    if (conn !== undefined && this.#inspectorSockets.has(conn.socket)) {
      this.#deliver(inspector, JSON.stringify({ type: 'watching', id: null, message: `connection ${id} is an inspector: inspectors cannot be watched` }))
      return
    }
    if (conn !== undefined) {
      let watch = this.#watches.get(conn.id)
      if (watch === undefined) {
        const socket = socketOf(conn)
        const connId = conn.id
        // The last event of a closed connection is its close; nothing more will come.
        const tap = new FrameTap(socket, (event) => this.#frame(connId, event), () => this.#endWatch(connId))
        watch = { tap, socket, inspectors: new Set() }
        this.#watches.set(conn.id, watch)
        watchHooks.get(socket)?.(true)
      }
      watch.inspectors.add(inspector)
      inspector.watching = conn.id
    }
    this.#deliver(inspector, JSON.stringify({ type: 'watching', id: inspector.watching ?? null }))
  }

  #unwatch (inspector: Inspector): void {
    const id = inspector.watching
    if (id === undefined) return
    inspector.watching = undefined
    const watch = this.#watches.get(id)
    if (watch === undefined) return
    watch.inspectors.delete(inspector)
    if (watch.inspectors.size === 0) this.#endWatch(id)
  }

  #endWatch (id: number): void {
    const watch = this.#watches.get(id)
    if (watch === undefined) return
    this.#watches.delete(id)
    watch.tap.detach()
    watchHooks.get(watch.socket)?.(false)
  }

  #frame (id: number, event: FrameEvent): void {
    const watch = this.#watches.get(id)
    if (watch === undefined) return
    const json = JSON.stringify({ type: 'frame', id, time: isoNow(), ...event })
    for (const inspector of watch.inspectors) this.#deliver(inspector, json)
  }

  /**
   * Sends the connection list to these inspectors. The list is built and encoded once for all of
   * them (only its last two keys are each inspector's own, appended as bytes: encoding a list of
   * 500 connections again for each of 200 inspectors held the event loop for tens of ms a second),
   * and not at all when every one of them is behind.
   */
  #sendLists (inspectors: Iterable<Inspector>): void {
    let shared: Buffer | undefined
    for (const inspector of inspectors) {
      if (!this.#ready(inspector)) continue
      shared ??= Buffer.from(JSON.stringify({
        type: 'connections',
        total: this.#registry.connections.size,
        connections: listConnections(this.#registry, this.#maxListed)
      }).slice(0, -1))
      const own = `,"watching":${inspector.watching ?? null},"dropped":${inspector.dropped}}`
      const json = Buffer.allocUnsafe(shared.length + own.length)
      shared.copy(json, 0)
      json.write(own, shared.length, 'latin1')
      inspector.socket.send(json, TEXT)
      inspector.counter?.sent(json.length)
    }
  }

  /** Whether an event for this inspector would be sent (it is open and not behind); one that is behind loses it. */
  #ready (inspector: Inspector): boolean {
    const socket = inspector.socket
    if (socket.readyState !== OPEN) return false
    if (socket.bufferedAmount > this.maxBuffered) {
      inspector.dropped++
      this.#registry.hit('inspector_dropped')
      return false
    }
    return true
  }

  #error (inspector: Inspector, message: string): void {
    this.#deliver(inspector, JSON.stringify({ type: 'error', message }))
  }

  /** Sends to one inspector unless it is behind: then the event is lost, and counted. */
  #deliver (inspector: Inspector, json: string): void {
    if (!this.#ready(inspector)) return
    inspector.socket.send(json, TEXT)
    inspector.counter?.sent(Buffer.byteLength(json))
  }
}

const hubs = new WeakMap<ConnectionRegistry, InspectorHub>()

/** The registry's inspector hub, made on first use: every app sharing the registry feeds the same one. */
export function inspectorHub (registry: ConnectionRegistry, options?: InspectorOptions): InspectorHub {
  let hub = hubs.get(registry)
  if (hub === undefined) {
    hub = new InspectorHub(registry, options)
    hubs.set(registry, hub)
  }
  return hub
}
