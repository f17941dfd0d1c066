// The seam between the chat core and whatever carries chat traffic between instances. The core
// keeps its own local clients and room memberships; an adapter numbers messages, stores room
// history, knows every room's members across the cluster and hands each published message and
// presence change back to every instance's core, its own included. In memory (the default, one
// process) or Redis (many instances); another broker plugs in by implementing ChatAdapter.

/** Who a client is, when identity is on (signed tokens or the registry's `authenticate`). */
export interface ChatUser {
  id: string
  name?: string
}

/** A room member as presence events and `joined` show it. */
export interface Member {
  clientId: number
  user?: ChatUser
}

/**
 * A message to publish, as the frame's text in two parts around the numbers the adapter assigns:
 * the delivered frame is `head + ',"id":' + id + (room === null ? '' : ',"seq":' + seq) + tail`.
 */
export interface Outgoing {
  /** `null`: the lobby (every chat client; never stored, no `seq`). */
  room: string | null
  /** The frame up to `id`: `{"type":"message","room":"lab-1","payload":...,"from":7` (and `"user"` when identity is on). */
  head: string
  /** The frame after `seq`: `,"timestamp":"..."}`. */
  tail: string
  /**
   * Set for an idempotent send: the message's key (and `|` and the sender's user id, with identity
   * on). A message with the key of one published to the same target within `dedupeWindow` is not
   * published again: `publish` resolves with the first one's numbers and `duplicate: true`.
   */
  key?: string
}

/** What `publish` resolves with: the message's numbers (a Delivery has them). */
export interface Published {
  id: number
  seq: number | null
  /** The message repeated an earlier one's key: these are the earlier one's numbers, and nothing was sent. */
  duplicate?: boolean
}

/** A message as every instance delivers it. */
export interface Delivery {
  room: string | null
  /** Endpoint-wide (cluster-wide) message number. */
  id: number
  /** The room's message number, from 1 with no gaps; `null` in the lobby, or for a room message sent while the broker was unreachable (delivered locally, not stored). */
  seq: number | null
  /** The complete frame text. */
  frame: string
}

/** A message kept in a room's history. */
export interface StoredMessage {
  seq: number
  frame: string
}

export interface PresenceEvent {
  room: string
  event: 'join' | 'leave'
  member: Member
  /** Members in the room after the event. */
  count: number
}

/** What an adapter hands to the core of its instance. */
export interface AdapterListener {
  /** A message published anywhere (this instance too); each room's arrive in `seq` order. */
  onMessage: (delivery: Delivery) => void
  /** A member joined or left anywhere (this instance too), or left because its instance died. */
  onPresence: (event: PresenceEvent) => void
  /**
   * A room this instance has members in lost its history (a broker that restarted empty): its new
   * epoch, and the seq in it after which live messages follow (0 unless some came first).
   */
  onReset?: (room: string, epoch: string, seq: number) => void
  /** A budget made the adapter drop something: stored messages (`history_evicted`) or remembered keys (`dedupe_evicted`). */
  onLimit?: (limit: AdapterLimitName, count: number) => void
  /** The broker was lost (`down`) or is back (`up`). An in-memory adapter never calls it. */
  onStatus?: (status: AdapterStatus) => void
}

export type AdapterStatus = 'up' | 'down'

export type AdapterLimitName = 'history_evicted' | 'dedupe_evicted'

export interface JoinResult {
  /** Members after the join, the joiner included, in join order. */
  members: Member[]
  /** The room's current `seq` (0: no message yet). */
  seq: number
  /** The room history's epoch: made when the room is created, made anew when its history is lost. */
  epoch: string
}

export interface HistoryQuery {
  /** Only messages with `seq` > since. */
  since?: number
  /** At most this many: without `since` the newest `limit`, with it the oldest `limit` after it. */
  limit: number
}

export interface HistoryResult {
  /** Oldest first. */
  messages: StoredMessage[]
  /** The room's current `seq`. */
  seq: number
  /** The room history's epoch (see JoinResult). */
  epoch: string
}

export interface RoomInfo {
  room: string
  members: number
  seq: number
}

/** The adapter's refusals; everything else it cannot do, it throws. */
export type AdapterRefusal = 'room_limit'

export interface AdapterLimits {
  /** Messages kept per room (0: none). */
  historySize: number
  /** Rooms that exist at once (across the cluster for a shared adapter). */
  maxRooms: number
  /** A room with no member is forgotten, history included, this long after its last member left (ms). */
  roomTtl: number
  /** All rooms' stored messages together, in bytes (the in-memory adapter's; a broker's own memory is its own). */
  historyMaxBytes: number
  /** How long a message's key is remembered (ms). */
  dedupeWindow: number
  /** Keys remembered at most per process; past it the oldest are forgotten first. */
  dedupeMaxKeys: number
}

/** What the stored history holds now, all rooms together. */
export interface HistoryUsage {
  messages: number
  bytes: number
}

export interface ChatAdapter {
  /**
   * Connects, if there is anything to connect to; from then on `listener` receives the cluster's
   * traffic. Rejects when the broker cannot be reached (the server then does not start).
   */
  start: (listener: AdapterListener, limits: AdapterLimits) => Promise<void>
  /**
   * Added to the registry's connection numbers so `client_id`s never collide across instances
   * (0 for a single process). Read after `start`.
   */
  readonly clientIdBase: number
  /** `up` unless a broker was lost. */
  readonly status: AdapterStatus
  /** How often the broker was lost since start; only adapters with a broker have it (shown in /stats). */
  readonly outages?: number
  /**
   * Numbers, stores (room messages, `historySize` > 0) and delivers a message to every instance,
   * in one atomic step: a message is in the history if and only if it was delivered.
   */
  publish: (message: Outgoing) => Promise<Published | AdapterRefusal>
  /**
   * Adds a member (a room that does not exist is created, within `maxRooms`); presence `join` goes to
   * every instance. A member already in the room gets the result again and no presence event.
   * Resolves once this instance receives the room's messages, so none published after it is missed.
   */
  join: (room: string, member: Member) => Promise<JoinResult | AdapterRefusal>
  /** Removes a member; presence `leave` goes to every instance. Leaving a room one is not in does nothing. */
  leave: (room: string, member: Member) => Promise<void>
  history: (room: string, query: HistoryQuery) => Promise<HistoryResult>
  rooms: () => Promise<RoomInfo[]>
  /** What the stored history holds in this process (shown in /stats); adapters whose history lives in a broker leave it out. */
  historyUsage?: () => HistoryUsage
  /** Leaves every room this instance's members are in (without presence events when the process stops) and disconnects. */
  close: () => Promise<void>
}
