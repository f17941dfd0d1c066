// What a chat client says to each server the bench compares: echohub's JSON frames, or socket.io's
// Engine.IO v4 framing over a raw WebSocket (`0{...}` open, `40` connect, `42[...]` events, the
// server's ping `2` answered with `3`). The load generator and the runner's probes share it, so the
// client side costs the same whichever server is measured.

export type DialectName = 'echohub' | 'socketio'

export interface SetupStep {
  /** Sent before waiting (text frame). */
  send?: string
  /** The server frame that ends the step; other frames before it are ignored. */
  until: (text: string) => boolean
  what: string
}

export interface Dialect {
  name: DialectName
  /** The WebSocket path of the chat. */
  path: string
  /** What a client does after the upgrade before it is ready: greetings, joining `room`. */
  setup: (room: string | null) => SetupStep[]
  /** The text of a message to everyone (`room` null) or to a room. */
  publish: (room: string | null, payload: string) => string
  /** Checks that a delivered frame carries `payload` (probes only). */
  carries: (text: string, payload: string) => boolean
  /** Data frames up to this many bytes are protocol chatter, not messages (-1: none). */
  shortLen: number
  /** The answer to such a frame, if any. */
  answerShort: (text: string) => string | null
}

export const echohub: Dialect = {
  name: 'echohub',
  path: '/ws',
  setup: (room) => {
    const steps: SetupStep[] = [{ until: (t) => t.startsWith('{"type":"welcome"'), what: 'a welcome' }]
    if (room !== null) {
      steps.push({ send: JSON.stringify({ type: 'join', room }), until: (t) => t.startsWith('{"type":"joined"'), what: `joined ${room}` })
    }
    return steps
  },
  publish: (room, payload) => JSON.stringify(room === null ? { type: 'message', payload } : { type: 'message', room, payload }),
  carries: (text, payload) => {
    const m = JSON.parse(text) as { type?: unknown, payload?: unknown }
    return m.type === 'message' && m.payload === payload
  },
  shortLen: -1,
  answerShort: () => null
}

export const socketio: Dialect = {
  name: 'socketio',
  path: '/socket.io/?EIO=4&transport=websocket',
  setup: (room) => {
    const steps: SetupStep[] = [
      { until: (t) => t.startsWith('0{'), what: 'the Engine.IO open packet' },
      { send: '40', until: (t) => t.startsWith('40'), what: 'the namespace connect' }
    ]
    if (room !== null) {
      steps.push({ send: '42' + JSON.stringify(['join', room]), until: (t) => t.startsWith('42["joined"'), what: `joined ${room}` })
    }
    return steps
  },
  publish: (room, payload) => '42' + JSON.stringify(['message', room === null ? { payload } : { room, payload }]),
  carries: (text, payload) => {
    if (!text.startsWith('42')) return false
    const [event, data] = JSON.parse(text.slice(2)) as [unknown, { payload?: unknown } | undefined]
    return event === 'message' && data?.payload === payload
  },
  shortLen: 1,
  answerShort: (text) => text === '2' ? '3' : null
}

export const DIALECTS: Record<DialectName, Dialect> = { echohub, socketio }
