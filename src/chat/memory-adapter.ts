// The default chat adapter: one process, no service. Numbers messages, keeps each room's last
// `historySize` messages in a ring, and hands every message and presence change straight back to
// the core, synchronously, so a broadcast costs no more than before rooms existed.
import type {
  AdapterLimits,
  AdapterListener,
  AdapterRefusal,
  ChatAdapter,
  Delivery,
  HistoryQuery,
  HistoryResult,
  JoinResult,
  Member,
  Outgoing,
  RoomInfo,
  StoredMessage
} from './adapter.js'
import { assembleMessage } from './messages.js'

interface Room {
  name: string
  seq: number
  /** By client id, in join order. */
  members: Map<number, Member>
  /** The last `historySize` messages; `history[0]` is the oldest kept. */
  history: StoredMessage[]
  /** When an empty room is forgotten. */
  expiry: NodeJS.Timeout | undefined
}

export class MemoryAdapter implements ChatAdapter {
  readonly clientIdBase = 0
  readonly status = 'up'
  #listener: AdapterListener | undefined
  #limits: AdapterLimits = { historySize: 100, maxRooms: 10000, roomTtl: 300000 }
  #lastId = 0
  readonly #rooms = new Map<string, Room>()

  async start (listener: AdapterListener, limits: AdapterLimits): Promise<void> {
    this.#listener = listener
    this.#limits = limits
  }

  // Runs to its end before returning (no await inside), so the core has the delivery at once.
  async publish (message: Outgoing): Promise<Delivery | AdapterRefusal> {
    let seq: number | null = null
    let room: Room | undefined
    if (message.room !== null) {
      room = this.#room(message.room)
      if (room === undefined) return 'room_limit'
      seq = ++room.seq
    }
    const id = ++this.#lastId
    const frame = assembleMessage(message.head, message.tail, id, message.room, seq)
    if (room !== undefined && this.#limits.historySize > 0) {
      room.history.push({ seq: seq!, frame })
      if (room.history.length > this.#limits.historySize) room.history.shift()
    }
    if (room !== undefined && room.members.size === 0) this.#forgetLater(room)
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
    return { members: [...room.members.values()], seq: room.seq }
  }

  async leave (name: string, member: Member): Promise<void> {
    const room = this.#rooms.get(name)
    if (room === undefined || !room.members.delete(member.clientId)) return
    this.#listener?.onPresence({ room: name, event: 'leave', member, count: room.members.size })
    if (room.members.size === 0) this.#forgetLater(room)
  }

  async history (name: string, query: HistoryQuery): Promise<HistoryResult> {
    const room = this.#rooms.get(name)
    if (room === undefined) return { messages: [], seq: 0 }
    const kept = room.history
    let messages: StoredMessage[]
    if (query.since === undefined) {
      messages = kept.slice(-query.limit)
    } else {
      // Seqs in the ring are consecutive, so the first one after `since` is found by arithmetic.
      const first = kept.length === 0 ? 0 : Math.max(0, query.since + 1 - kept[0]!.seq)
      messages = kept.slice(first, first + query.limit)
    }
    return { messages, seq: room.seq }
  }

  async rooms (): Promise<RoomInfo[]> {
    return [...this.#rooms.values()].map((r) => ({ room: r.name, members: r.members.size, seq: r.seq }))
  }

  async close (): Promise<void> {
    for (const room of this.#rooms.values()) clearTimeout(room.expiry)
    this.#rooms.clear()
  }

  /** The room, created if need be; undefined when creating it would pass `maxRooms`. */
  #room (name: string): Room | undefined {
    let room = this.#rooms.get(name)
    if (room !== undefined) return room
    if (this.#rooms.size >= this.#limits.maxRooms) return undefined
    room = { name, seq: 0, members: new Map(), history: [], expiry: undefined }
    this.#rooms.set(name, room)
    return room
  }

  #forgetLater (room: Room): void {
    if (room.expiry !== undefined) return
    room.expiry = setTimeout(() => {
      if (room.members.size === 0 && this.#rooms.get(room.name) === room) this.#rooms.delete(room.name)
    }, this.#limits.roomTtl)
    room.expiry.unref()
  }
}
