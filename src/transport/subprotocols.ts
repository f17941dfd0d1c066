// Which WebSocket subprotocol an endpoint picks from those a client offers (Sec-WebSocket-Protocol).

/** `'*'`: the first one offered; a list: the first offered that is on it; an empty list: none. */
export type SubprotocolChoice = '*' | readonly string[]

/** The subprotocol to answer with, or `false` for no Sec-WebSocket-Protocol header. Offers are in the client's order of preference. */
export function chooseSubprotocol (offered: Iterable<string>, accepted: SubprotocolChoice): string | false {
  for (const name of offered) {
    if (accepted === '*' || accepted.includes(name)) return name
  }
  return false
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
/** Whether a string can be a subprotocol name: an HTTP token (RFC 6455, 4.1). */
export function isSubprotocolName (name: string): boolean {
  return TOKEN.test(name)
}
