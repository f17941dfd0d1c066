// The default chat adapter: one process, no service. Numbers messages, keeps each room's last
// `historySize` messages within one byte budget for all rooms (the oldest evicted first, whatever
// their room), remembers idempotency keys, and hands every message and presence change straight
// back to the core, synchronously, so a broadcast costs no more than before rooms existed.
import { randomBytes } from 'node:crypto'
import type {
  AdapterLimits,
  AdapterListener,
  AdapterRefusal,
  ChatAdapter,
  Delivery,
  HistoryQuery,
  HistoryResult,
  HistoryUsage,
  JoinResult,
  Member,
  Outgoing,
  Published,
  RoomInfo,
  StoredMessage
} from './adapter.js'
import { assembleMessage } from './messages.js'
import { DedupeCache } from './dedupe.js'
import { DEFAULT_LIMITS } from '../limits.js'

/** A stored message, also a link in the list of every room's stored messages, oldest first. */
interface Stored extends StoredMessage {
  room: Room
  /** What it counts against the history budget: its frame's length. */
  bytes: number
  older: Stored | undefined
  newer: Stored | undefined
}

interface Room {
  name: string
  /** Made when the room is created; a room forgotten and created again has a new one. */
  epoch: string
  seq: number
  /** By client id, in join order. */
  members: Map<number, Member>
  /** The last `historySize` messages within the budget; `history[0]` is the oldest kept. */
  history: Stored[]
  /** When an empty room is forgotten. */
  expiry: NodeJS.Timeout | undefined
}

/** A short random string naming one life of a room's history. */
export function newEpoch (): string {
  return randomBytes(6).toString('base64url')
}

export class MemoryAdapter implements ChatAdapter {
  readonly clientIdBase = 0
  readonly status = 'up'
  #listener: AdapterListener | undefined
  #limits: AdapterLimits = {
    historySize: DEFAULT_LIMITS.historySize,
    maxRooms: DEFAULT_LIMITS.maxRooms,
    roomTtl: DEFAULT_LIMITS.roomTtl,
    historyMaxBytes: DEFAULT_LIMITS.historyMaxBytes,
    dedupeWindow: DEFAULT_LIMITS.dedupeWindow,
    dedupeMaxKeys: DEFAULT_LIMITS.dedupeMaxKeys
  }

  #lastId = 0
  readonly #rooms = new Map<string, Room>()
  /** Every room's stored messages in one list, oldest first, and what they hold together. */
  #oldest: Stored | undefined
  #newest: Stored | undefined
  #storedMessages = 0
  #storedBytes = 0
  #keys = new DedupeCache<Room | null>(0, 0, () => {})

  async start (listener: AdapterListener, limits: AdapterLimits): Promise<void> {
    this.#listener = listener
    this.#limits = limits
    this.#keys = new DedupeCache(limits.dedupeWindow, limits.dedupeMaxKeys, (n) => this.#listener?.onLimit?.('dedupe_evicted', n))
  }

  // Runs to its end before returning (no await inside), so the core has the delivery at once.
  async publish (message: Outgoing): Promise<Published | AdapterRefusal> {
    let seq: number | null = null
    let room: Room | undefined
    if (message.room !== null) {
      room = this.#room(message.room)
      if (room === undefined) return 'room_limit'
    }
    const key = message.key === undefined || !this.#keys.enabled ? undefined : (message.room ?? '') + '\n' + message.key
    if (key !== undefined) {
      const first = this.#keys.get(key, room ?? null)
      if (first !== undefined) return { id: first.id, seq: first.seq, duplicate: true }
    }
    if (room !== undefined) seq = ++room.seq
    const id = ++this.#lastId
    const frame = assembleMessage(message.head, message.tail, id, message.room, seq)
    if (room !== undefined) {
      this.#store(room, seq!, frame)
      if (room.members.size === 0) this.#forgetLater(room)
    }
    if (key !== undefined) this.#keys.remember(key, id, seq, room ?? null)
    const delivery: Delivery = { room: message.room, id, seq, frame }
    this.#listener?.onMessage(delivery)
    return delivery
  }

  async join (name: string, member: Member): Promise<JoinResult | AdapterRefusal> {
    const room = this.#room(name)
    if (room === undefined) return 'room_limit'
    if (!room.members.has(member.clientId)) {
      room.members.set(member.clientId, member)
      if (room.expiry !== undefined) {
        clearTimeout(room.expiry)
        room.expiry = undefined
      }
      this.#listener?.onPresence({ room: name, event: 'join', member, count: room.members.size })
    }
    return { members: [...room.members.values()], seq: room.seq, epoch: room.epoch }
  }

  async leave (name: string, member: Member): Promise<void> {
    const room = this.#rooms.get(name)
    if (room === undefined || !room.members.delete(member.clientId)) return
    this.#listener?.onPresence({ room: name, event: 'leave', member, count: room.members.size })
    if (room.members.size === 0) this.#forgetLater(room)
  }

  async history (name: string, query: HistoryQuery): Promise<HistoryResult> {
    const room = this.#rooms.get(name)
    if (room === undefined) return { messages: [], seq: 0, epoch: newEpoch() }
    const kept = room.history
    let messages: StoredMessage[]
    if (query.since === undefined) {
      messages = kept.slice(-query.limit)
    } else {
      // Seqs in the ring are consecutive, so the first one after `since` is found by arithmetic.
      const first = kept.length === 0 ? 0 : Math.max(0, query.since + 1 - kept[0]!.seq)
      messages = kept.slice(first, first + query.limit)
    }
    return { messages, seq: room.seq, epoch: room.epoch }
  }

  async rooms (): Promise<RoomInfo[]> {
    return [...this.#rooms.values()].map((r) => ({ room: r.name, members: r.members.size, seq: r.seq }))
  }

  historyUsage (): HistoryUsage {
    return { messages: this.#storedMessages, bytes: this.#storedBytes }
  }

  async close (): Promise<void> {
    for (const room of this.#rooms.values()) clearTimeout(room.expiry)
    this.#rooms.clear()
    this.#oldest = this.#newest = undefined
    this.#storedMessages = this.#storedBytes = 0
    this.#keys.clear()
  }

  /** Keeps a room's message within its room's count and everyone's bytes: the oldest go first. */
  #store (room: Room, seq: number, frame: string): void {
    const { historySize, historyMaxBytes } = this.#limits
    const bytes = frame.length
    if (historySize === 0 || bytes > historyMaxBytes) {
      // Kept nowhere: what the room had before it stays, but a resume past it must see the gap.
      if (historySize > 0) this.#dropRoomHistory(room, true)
      return
    }
    const stored: Stored = { seq, frame, room, bytes, older: this.#newest, newer: undefined }
    if (this.#newest === undefined) this.#oldest = stored
    else this.#newest.newer = stored
    this.#newest = stored
    room.history.push(stored)
    this.#storedMessages++
    this.#storedBytes += bytes
    if (room.history.length > historySize) this.#unlink(room.history.shift()!)
    let evicted = 0
    while (this.#storedBytes > historyMaxBytes && this.#oldest !== undefined) {
      const oldest = this.#oldest
      // A room's messages are in the list in its own order, so the oldest of all is its room's oldest.
      oldest.room.history.shift()
      this.#unlink(oldest)
      evicted++
    }
    if (evicted > 0) this.#listener?.onLimit?.('history_evicted', evicted)
  }

  #unlink (stored: Stored): void {
    if (stored.older === undefined) this.#oldest = stored.newer
    else stored.older.newer = stored.newer
    if (stored.newer === undefined) this.#newest = stored.older
    else stored.newer.older = stored.older
    stored.older = stored.newer = undefined
    this.#storedMessages--
    this.#storedBytes -= stored.bytes
  }

  /** Drops a room's stored messages (`evicted`: counted as the budget's evictions). */
  #dropRoomHistory (room: Room, evicted: boolean): void {
    const count = room.history.length
    for (const stored of room.history) this.#unlink(stored)
    room.history = []
    if (evicted && count > 0) this.#listener?.onLimit?.('history_evicted', count)
  }

  /** The room, created if need be; undefined when creating it would pass `maxRooms`. */
  #room (name: string): Room | undefined {
    let room = this.#rooms.get(name)
    if (room !== undefined) return room
    if (this.#rooms.size >= this.#limits.maxRooms) return undefined
    room = { name, epoch: newEpoch(), seq: 0, members: new Map(), history: [], expiry: undefined }
    this.#rooms.set(name, room)
    return room
  }

  #forgetLater (room: Room): void {
    if (room.expiry !== undefined) return
    room.expiry = setTimeout(() => {
      if (room.members.size === 0 && this.#rooms.get(room.name) === room) {
        this.#rooms.delete(room.name)
        this.#dropRoomHistory(room, false)
      }
    }, this.#limits.roomTtl)
    room.expiry.unref()
  }
}
