// The chat page's rooms: join and leave, each room's members as presence events change them, its
// last seq, and a "to" choice for the message form. The client (client.js) rejoins every room after
// a reconnect with `since` and `epoch`, so the page gets what it missed, once; this panel shows it.
import { el } from './common.js'

const ROOM_NAME = /^[A-Za-z0-9_.:-]{1,64}$/

/** What a joined frame's `reason` means, for the log. */
const NOT_RECOVERED = {
  epoch: 'the room\'s history started over: older messages are gone',
  evicted: 'some older messages were no longer kept',
  ahead: 'the room is behind the last message this page saw'
}

export class Rooms {
  /**
   * `chat` is the page's client; `view` holds the rooms panel's elements: form, input, error, list,
   * and the message form's target select. `label(clientId)` names a member: its user's name when
   * the server has identity on, else its client id.
   */
  constructor (chat, view, label = String) {
    this.chat = chat
    this.view = view
    this.label = label
    /** name -> { members: Set<number>, seq: number, joined: boolean, seqView?: the panel's seq element } */
    this.rooms = new Map()
    view.form.addEventListener('submit', (event) => {
      event.preventDefault()
      const name = view.input.value.trim()
      if (!ROOM_NAME.test(name)) {
        view.error.textContent = 'A room name is 1 to 64 characters of A-Z a-z 0-9 _ . : -'
        return
      }
      view.error.textContent = ''
      view.input.value = ''
      this.join(name)
    })
    chat.on('joined', (joined) => this.joined(joined))
    chat.on('presence', (frame) => this.presence(frame))
    chat.on('message', (message) => { if (typeof message.room === 'string') this.seen(message.room, message.seq) })
    chat.on('reset', (reset) => this.seen(reset.room, 0))
    chat.on('state', (state) => { if (state.state !== 'open') this.disconnected() })
    // A rejoin refused after a reconnect (a token that no longer lists the room, a room limit).
    chat.on('error', (error) => { if (typeof error.room === 'string' && this.rooms.has(error.room)) this.refused(error.room, error.code) })
    this.render()
  }

  join (name) {
    this.chat.join(name).catch((err) => this.refused(name, err.code))
  }

  /** A join refused (room_limit, too_many_rooms, forbidden...) leaves no half-joined room behind. */
  refused (name, code) {
    if (this.rooms.delete(name)) this.render()
    if (code === 'forbidden') this.view.error.textContent = `You are not allowed in this room (${name}): your token does not list it.`
    else this.view.error.textContent = `Could not join ${name}: ${code}`
  }

  leave (name) {
    this.chat.leave(name).catch(() => {}).finally(() => {
      this.rooms.delete(name)
      this.render()
    })
  }

  joined (joined) {
    const room = this.rooms.get(joined.room) ?? { members: new Set(), seq: 0, joined: false }
    room.joined = true
    room.members = new Set(joined.members)
    // Where the client delivers from; the missed messages follow as message events.
    room.seq = this.chat.rooms().find((r) => r.room === joined.room)?.seq ?? joined.seq
    this.rooms.set(joined.room, room)
    this.render()
  }

  presence (frame) {
    const room = this.rooms.get(frame.room)
    if (room === undefined) return
    if (frame.payload.event === 'join') room.members.add(frame.payload.client_id)
    else room.members.delete(frame.payload.client_id)
    this.render()
  }

  disconnected () {
    for (const room of this.rooms.values()) room.joined = false
    this.render()
  }

  /** The log's line for a room frame (joined, left, presence, a forbidden error), or undefined. */
  summary (frame) {
    const name = frame.type === 'error' ? frame.payload?.room : frame.room
    switch (frame.type) {
      case 'joined': {
        const members = frame.payload?.members?.length ?? 0
        const missed = frame.payload?.history?.length ?? 0
        const resumed = missed > 0 ? `, ${missed} missed message${missed === 1 ? '' : 's'} resumed` : ''
        const lost = frame.payload?.recovered === false ? ` (${NOT_RECOVERED[frame.payload.reason] ?? NOT_RECOVERED.evicted})` : ''
        return `joined ${name}: ${members} member${members === 1 ? '' : 's'}${resumed}${lost}`
      }
      case 'left':
        return `left ${name}`
      case 'presence': {
        const who = frame.payload?.client_id
        const person = frame.payload?.user ? this.label(who) : `client ${who}`
        return `${name}: ${person} ${frame.payload?.event === 'join' ? 'joined' : 'left'} (${frame.payload?.count} now)`
      }
      case 'reset':
        return `${name}: the room's history started over (epoch ${frame.payload?.epoch}); seq counts again from ${frame.payload?.seq}`
      case 'error':
        if (frame.payload?.code === 'forbidden') return `not allowed in this room: ${name}`
        return undefined
    }
    return undefined
  }

  /** The room a message from the form goes to, or null for everyone. */
  target () {
    const value = this.view.target.value
    return value === '' ? null : value
  }

  /** A room message's seq as the client delivered it: the panel updates in place. */
  seen (name, seq) {
    const room = this.rooms.get(name)
    if (room === undefined || typeof seq !== 'number') return
    room.seq = seq
    if (room.seqView !== undefined) room.seqView.textContent = `seq ${seq}`
  }

  render () {
    const items = []
    for (const [name, room] of this.rooms) {
      const item = el('li', 'room')
      const title = el('strong', '', name)
      const members = el('span', 'members', room.joined ? `members: ${[...room.members].map(this.label).join(', ') || 'none'}` : 'rejoining…')
      const seq = el('span', 'hint seq', `seq ${room.seq}`)
      room.seqView = seq
      const leave = el('button', '', 'Leave')
      leave.type = 'button'
      leave.addEventListener('click', () => this.leave(name))
      item.append(title, ' ', members, ' ', seq, ' ', leave)
      items.push(item)
    }
    this.view.list.replaceChildren(...items)
    this.view.list.hidden = items.length === 0

    const current = this.view.target.value
    const options = [el('option', '', 'Everyone (lobby)')]
    options[0].value = ''
    for (const name of this.rooms.keys()) {
      const option = el('option', '', `room ${name}`)
      option.value = name
      options.push(option)
    }
    this.view.target.replaceChildren(...options)
    this.view.target.value = this.rooms.has(current) ? current : ''
  }
}
