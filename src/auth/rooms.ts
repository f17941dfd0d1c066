// The `rooms` claim: room name patterns where `*` matches any run of characters (none included).
// Matched without regular expressions, so no pattern a token carries can make matching slow.

/** True when `room` matches `pattern`; `*` is the only special character. */
export function roomMatches (pattern: string, room: string): boolean {
  let p = 0
  let r = 0
  // Where the last `*` was seen, and the room position it is currently standing in for.
  let star = -1
  let starRoom = 0
  while (r < room.length) {
    if (p < pattern.length && pattern[p] !== '*' && pattern[p] === room[r]) {
      p++
      r++
    } else if (p < pattern.length && pattern[p] === '*') {
      star = p++
      starRoom = r
    } else if (star !== -1) {
      // Let the last `*` swallow one more character and retry from there.
      p = star + 1
      r = ++starRoom
    } else {
      return false
    }
  }
  while (p < pattern.length && pattern[p] === '*') p++
  return p === pattern.length
}

/** Whether a user whose token lists `patterns` may join `room`; no list means any room. */
export function roomAllowed (patterns: readonly string[] | undefined, room: string): boolean {
  if (patterns === undefined) return true
  for (const pattern of patterns) if (roomMatches(pattern, room)) return true
  return false
}
