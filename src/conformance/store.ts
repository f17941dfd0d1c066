// The suite's results, per agent: held in memory, written to `<dir>/<agent>.json` after each case
// (one write in flight per agent, the file replaced whole by a rename) and read back at start, so a
// restart loses nothing. Bounded: at most `maxAgents` agents (a new one past that forgets the least
// recently updated) and `maxAgentBytes` of results per agent.
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { CaseResult, WireEntry } from './types.js'

/** A case judged across the agent's next connections (R.3, R.4, R.6), while it waits for them. */
export interface DevicePending {
  id: string
  /** ISO time the case started. */
  started_at: string
  /** ms since the epoch when echohub last ended one of the agent's connections for this case. */
  ended_at: number
  /** The gaps, ms, between each end and the agent's next connection. */
  gaps: number[]
  /** R.6: whether each close was answered with a close frame, and the client's codes. */
  answered: boolean[]
  codes: Array<number | null>
  wire: WireEntry[]
}

export interface AgentRecord {
  agent: string
  /** ms since the epoch of the last change. */
  updatedAt: number
  /** Last result per case id. */
  results: Map<string, CaseResult>
  /** The `cases=` patterns of the agent's last run (null: the server's selection). */
  selection: string | null
  /** The case waiting for the agent's reconnects, if any. */
  pending: DevicePending | undefined
  /** Bytes of results, as JSON. */
  bytes: number
}

interface AgentFile {
  agent: string
  updated_at: string
  selection: string | null
  pending?: DevicePending
  results: CaseResult[]
}

export interface AgentStoreOptions {
  /** Folder of the agents' files; created on the first write. */
  dir: string
  maxAgents: number
  maxAgentBytes: number
  /** Bytes of wire log kept per case (sections 9, 12 and 13 keep none). */
  maxWireBytes: number
  /** An agent that may not be forgotten now (one of its cases runs). */
  busy?: (agent: string) => boolean
  /** Told of every agent forgotten to make room, and of files that could not be read or written. */
  onEvict?: (agent: string) => void
  onError?: (what: string, err: unknown) => void
}

/** A file name for any agent: letters, digits, `-` and `_` kept, every other byte as `%XX`. */
export function agentFileName (agent: string): string {
  let name = ''
  for (const byte of Buffer.from(agent)) {
    const c = String.fromCharCode(byte)
    name += /[A-Za-z0-9_-]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return `${name}.json`
}

/** Sections whose frames are too many and too large to log: their cases keep no wire log. */
const NO_WIRE = /^(9|12|13)\./

/** The first frames of the wire log whose data fits in `max` bytes; none for sections 9, 12 and 13. */
export function trimWire (id: string, wire: readonly WireEntry[], max: number): WireEntry[] {
  if (NO_WIRE.test(id)) return []
  const kept: WireEntry[] = []
  let bytes = 0
  for (const entry of wire) {
    bytes += Buffer.byteLength(entry.data)
    if (bytes > max) break
    kept.push(entry)
  }
  return kept
}

/** Longest `result`/`resultClose` kept: what a case says of a client's bytes stays readable. */
const MAX_TEXT = 4096

function sizeOf (result: CaseResult): number {
  return Buffer.byteLength(JSON.stringify(result))
}

export class AgentStore {
  readonly #agents = new Map<string, AgentRecord>()
  readonly #options: AgentStoreOptions
  /** Per agent: the write in flight, and whether another is due after it. */
  readonly #writes = new Map<string, { running: Promise<void>, again: boolean }>()

  constructor (options: AgentStoreOptions) {
    this.#options = options
  }

  get size (): number {
    return this.#agents.size
  }

  /** Reads every agent's file from the folder (none yet: nothing to read). Keeps the most recent `maxAgents`. */
  async load (): Promise<void> {
    let names: string[]
    try {
      names = await readdir(this.#options.dir)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.#options.onError?.(`cannot read ${this.#options.dir}`, err)
      return
    }
    const loaded: AgentRecord[] = []
    for (const name of names) {
      if (!name.endsWith('.json')) continue
      try {
        const file = JSON.parse(await readFile(join(this.#options.dir, name), 'utf8')) as AgentFile
        if (typeof file.agent !== 'string' || !Array.isArray(file.results) || agentFileName(file.agent) !== name) throw new Error('not an agent\'s results')
        const results = new Map<string, CaseResult>()
        let bytes = 0
        for (const r of file.results) {
          if (typeof r?.id !== 'string') continue
          results.set(r.id, r)
          bytes += sizeOf(r)
        }
        const updatedAt = Date.parse(file.updated_at)
        loaded.push({ agent: file.agent, updatedAt: Number.isNaN(updatedAt) ? 0 : updatedAt, results, selection: typeof file.selection === 'string' ? file.selection : null, pending: file.pending, bytes })
      } catch (err) {
        this.#options.onError?.(`cannot read ${name}`, err)
      }
    }
    loaded.sort((a, b) => b.updatedAt - a.updatedAt)
    for (const record of loaded.slice(0, this.#options.maxAgents)) this.#agents.set(record.agent, record)
  }

  get (agent: string): AgentRecord | undefined {
    return this.#agents.get(agent)
  }

  /** Every agent, most recently updated first. */
  list (): AgentRecord[] {
    return [...this.#agents.values()].sort((a, b) => b.updatedAt - a.updatedAt)
  }

  /** The agent's record, made (and room made for it) when it is new. */
  open (agent: string): AgentRecord {
    let record = this.#agents.get(agent)
    if (record !== undefined) return record
    this.#makeRoom()
    record = { agent, updatedAt: Date.now(), results: new Map(), selection: null, pending: undefined, bytes: 0 }
    this.#agents.set(agent, record)
    return record
  }

  #makeRoom (): void {
    while (this.#agents.size >= this.#options.maxAgents) {
      const oldest = this.list().reverse().find((r) => this.#options.busy?.(r.agent) !== true)
      if (oldest === undefined) return
      this.#agents.delete(oldest.agent)
      this.#options.onEvict?.(oldest.agent)
      void this.#remove(oldest.agent)
    }
  }

  /**
   * Keeps a result as the agent's last for its case and writes the agent's file. Past
   * `maxAgentBytes` of results the result is kept without its wire log.
   */
  record (agent: string, result: CaseResult): void {
    const record = this.open(agent)
    result = {
      ...result,
      result: result.result.slice(0, MAX_TEXT),
      resultClose: result.resultClose.slice(0, MAX_TEXT),
      wire: trimWire(result.id, result.wire, this.#options.maxWireBytes)
    }
    const old = record.results.get(result.id)
    const before = record.bytes - (old === undefined ? 0 : sizeOf(old))
    let size = sizeOf(result)
    if (before + size > this.#options.maxAgentBytes && result.wire.length > 0) {
      result = { ...result, wire: [], details: { ...result.details, wire_dropped: 'the agent\'s results reached their size bound' } }
      size = sizeOf(result)
    }
    record.results.set(result.id, result)
    record.bytes = before + size
    this.touch(record)
  }

  /** Notes a change of the record (selection, pending case) and writes its file. */
  touch (record: AgentRecord): void {
    record.updatedAt = Date.now()
    this.#write(record.agent)
  }

  /** Forgets the agent and deletes its file; false when there was none. */
  async delete (agent: string): Promise<boolean> {
    const had = this.#agents.delete(agent)
    await this.#remove(agent)
    return had
  }

  /** Resolves once the agent's file (every agent's without one) holds what is in memory. */
  async flush (agent?: string): Promise<void> {
    const agents = agent === undefined ? [...this.#writes.keys()] : [agent]
    for (const a of agents) {
      let write = this.#writes.get(a)
      while (write !== undefined) {
        await write.running
        write = this.#writes.get(a)
      }
    }
  }

  #write (agent: string): void {
    const current = this.#writes.get(agent)
    if (current !== undefined) {
      current.again = true
      return
    }
    const state = { running: Promise.resolve(), again: false }
    state.running = (async () => {
      do {
        state.again = false
        const record = this.#agents.get(agent)
        if (record === undefined) break
        const file: AgentFile = {
          agent,
          updated_at: new Date(record.updatedAt).toISOString(),
          selection: record.selection,
          ...(record.pending === undefined ? {} : { pending: record.pending }),
          results: [...record.results.values()]
        }
        try {
          await mkdir(this.#options.dir, { recursive: true })
          const path = join(this.#options.dir, agentFileName(agent))
          await writeFile(path + '.tmp', JSON.stringify(file))
          await rename(path + '.tmp', path)
        } catch (err) {
          this.#options.onError?.(`cannot write the results of ${JSON.stringify(agent)}`, err)
        }
      } while (state.again)
      this.#writes.delete(agent)
    })()
    this.#writes.set(agent, state)
  }

  async #remove (agent: string): Promise<void> {
    await this.flush(agent)
    try {
      await rm(join(this.#options.dir, agentFileName(agent)), { force: true })
    } catch (err) {
      this.#options.onError?.(`cannot delete the results of ${JSON.stringify(agent)}`, err)
    }
  }
}
