import t from 'tap'
import { TokenBucket } from '../src/chat/rate-limit.js'

function takeMany (bucket: TokenBucket, n: number, now: number): number {
  let taken = 0
  for (let i = 0; i < n; i++) if (bucket.take(now)) taken++
  return taken
}

t.test('a full bucket lets a burst through, then refuses', async (t) => {
  const bucket = new TokenBucket(20, 40, 0)
  t.equal(takeMany(bucket, 100, 0), 40)
  t.equal(bucket.take(0), false)
})

t.test('tokens come back at the rate, never beyond the burst', async (t) => {
  const bucket = new TokenBucket(20, 40, 0)
  takeMany(bucket, 40, 0)
  t.equal(takeMany(bucket, 100, 100), 2, '100 ms at 20/s is two messages')
  t.equal(takeMany(bucket, 100, 100 + 49), 0, 'less than one token has come back')
  t.equal(takeMany(bucket, 100, 100 + 50), 1, 'now it has')
  t.equal(takeMany(bucket, 100, 60_000), 40, 'a long pause refills only up to the burst')
})

t.test('a steady sender at the rate is never refused', async (t) => {
  const bucket = new TokenBucket(10, 1, 0)
  let refused = 0
  for (let ms = 0; ms <= 10_000; ms += 100) if (!bucket.take(ms)) refused++
  t.equal(refused, 0)
})

t.test('a clock that steps back does not add tokens', async (t) => {
  const bucket = new TokenBucket(1000, 1, 1000)
  t.equal(bucket.take(1000), true)
  t.equal(bucket.take(500), false)
})
