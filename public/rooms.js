// The chat page's rooms: join and leave, each room's members as presence events change them, a
// "to" choice for the message form, and resume after a reconnect: every room is joined again with
// `since` = the last seq seen, so the server sends what was missed, once.
import { el } from './common.js'

const ROOM_NAME = /^[A-Za-z0-9_.:-]{1,64}$/

export class Rooms {
  /**
   * `send(frame)` sends a frame (false when not connected); `view` holds the rooms panel's
   * elements: form, input, error, list, and the message form's target select. `label(clientId)`
   * names a member: its user's name when the server has identity on, else its client id.
   */
  constructor (send, view, label = String) {
    this.send = send
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
      if (this.send({ type: 'join', room: name })) view.input.value = ''
    })
    this.render()
  }

  /** A welcome arrived (a new connection): join every room again, resuming after the last seq seen. */
  connected () {
    for (const [name, room] of this.rooms) {
      room.joined = false
      room.members.clear()
      this.send(room.seq > 0 ? { type: 'join', room: name, since: room.seq } : { type: 'join', room: name })
    }
    this.render()
  }

  disconnected () {
    for (const room of this.rooms.values()) room.joined = false
    this.render()
  }

  /** Room frames update the panel; returns a log summary for them, or undefined. */
  receive (frame) {
    // An error names its room inside the payload.
    const name = frame.type === 'error' ? frame.payload?.room : frame.room
    switch (frame.type) {
      case 'joined': {
        const room = this.rooms.get(name) ?? { members: new Set(), seq: 0, joined: false }
        room.joined = true
        room.members = new Set(frame.payload?.members ?? [])
        for (const message of frame.payload?.history ?? []) this.seen(name, message.seq, room)
        room.seq = Math.max(room.seq, frame.payload?.seq ?? 0)
        this.rooms.set(name, room)
        this.render()
        const missed = frame.payload?.history?.length ?? 0
        const resumed = missed > 0 ? `, ${missed} missed message${missed === 1 ? '' : 's'} resumed` : ''
        const lost = frame.payload?.recovered === false ? ' (some older messages were no longer kept)' : ''
        return `joined ${name}: ${room.members.size} member${room.members.size === 1 ? '' : 's'}${resumed}${lost}`
      }
      case 'left':
        this.rooms.delete(name)
        this.render()
        return `left ${name}`
      case 'presence': {
        const room = this.rooms.get(name)
        const who = frame.payload?.client_id
        if (room !== undefined) {
          if (frame.payload?.event === 'join') room.members.add(who)
          else room.members.delete(who)
          this.render()
        }
        const person = frame.payload?.user ? this.label(who) : `client ${who}`
        return `${name}: ${person} ${frame.payload?.event === 'join' ? 'joined' : 'left'} (${frame.payload?.count} now)`
      }
      case 'message':
        if (typeof name === 'string') this.seen(name, frame.seq)
        return undefined
      case 'error':
        // A join refused (room_limit, too_many_rooms, forbidden...) leaves no half-joined room behind.
        if (typeof name === 'string' && this.rooms.get(name)?.joined === false) {
          this.rooms.delete(name)
          this.render()
        }
        if (frame.payload?.code === 'forbidden') {
          this.view.error.textContent = `You are not allowed in this room (${name}): your token does not list it.`
          return `not allowed in this room: ${name}`
        }
        return undefined
    }
    return undefined
  }

  /** The room a message from the form goes to, or null for everyone. */
  target () {
    const value = this.view.target.value
    return value === '' ? null : value
  }

  /** A room message's seq: the panel shows the last one seen, updated in place as messages arrive. */
  seen (name, seq, room = this.rooms.get(name)) {
    if (room === undefined || typeof seq !== 'number' || seq <= room.seq) return
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
      leave.addEventListener('click', () => this.send({ type: 'leave', room: name }))
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
