import t, { type Test } from 'tap'
import { createJwtVerifier, publicKeyFromPem } from '../src/auth/jwt.js'
import { roomAllowed, roomMatches } from '../src/auth/rooms.js'
import { SECRET, ecKeyPair, now, rsaKeyPair, token, unsignedToken } from './helpers/tokens.js'

const hs = createJwtVerifier({ secret: SECRET })

/** Asserts that `verify` refuses `jwt` with the given error and a message matching `message`. */
async function refused (t: Test, verify: (jwt: string) => Promise<unknown>, jwt: string, code: 'invalid_token' | 'token_expired', message: RegExp, what: string) {
  const errorCode = code === 'invalid_token' ? 'ECHOHUB_ERR_INVALID_TOKEN' : 'ECHOHUB_ERR_TOKEN_EXPIRED'
  await t.rejects(verify(jwt), { code: errorCode, statusCode: 401, message }, what)
}

t.test('a valid HS256 token gives its user', async (t) => {
  const exp = now() + 600
  t.same(await hs.verify(await token({ sub: 'u1', name: 'Ana', rooms: ['lab-*'], admin: true, exp })), {
    id: 'u1', name: 'Ana', rooms: ['lab-*'], admin: true, expiresAt: exp * 1000
  })
  const plain = await hs.verify(await token({ sub: 'u2', exp: undefined }))
  t.same(plain, { id: 'u2' }, 'no name, rooms, admin or exp: no such keys')
  t.notOk('name' in plain)
  t.notOk('admin' in await hs.verify(await token({ sub: 'u3', admin: false })), 'admin: false gives no admin key')
  t.equal(hs.algorithm, 'HS256')
})

t.test('RS256 and ES256 tokens verify against the PEM public key', async (t) => {
  const rsa = rsaKeyPair()
  const rs = createJwtVerifier({ publicKey: rsa.publicPem })
  t.equal(rs.algorithm, 'RS256')
  t.equal((await rs.verify(await token({ sub: 'r1' }, rsa.privateKey, 'RS256'))).id, 'r1')

  const ec = ecKeyPair()
  const es = createJwtVerifier({ publicKey: ec.publicPem })
  t.equal(es.algorithm, 'ES256')
  t.equal((await es.verify(await token({ sub: 'e1', name: 'Eve' }, ec.privateKey, 'ES256'))).name, 'Eve')
  t.equal(createJwtVerifier({ publicKey: ecKeyPair('P-384').publicKey }).algorithm, 'ES384', 'a KeyObject works too')
})

t.test('every refusal says why, as invalid_token or token_expired', async (t) => {
  const rsa = rsaKeyPair()
  const rs = createJwtVerifier({ publicKey: rsa.publicPem })
  const otherRsa = rsaKeyPair()
  const ec = ecKeyPair()

  await refused(t, hs.verify, await token({ sub: 'u1' }, 'another-secret-of-at-least-thirty-two-bytes'), 'invalid_token', /signature does not match/, 'bad HS256 signature')
  await refused(t, rs.verify, await token({ sub: 'u1' }, otherRsa.privateKey, 'RS256'), 'invalid_token', /signature does not match/, 'bad RS256 signature')
  const good = await token({ sub: 'u1' })
  await refused(t, hs.verify, good.slice(0, -4) + (good.endsWith('AAAA') ? 'BBBB' : 'AAAA'), 'invalid_token', /signature does not match/, 'tampered signature')
  const [header, , signature] = good.split('.')
  const forged = `${header}.${Buffer.from(JSON.stringify({ sub: 'root', admin: true, exp: now() + 60 })).toString('base64url')}.${signature}`
  await refused(t, hs.verify, forged, 'invalid_token', /signature does not match/, 'payload swapped under a valid signature')

  await refused(t, hs.verify, unsignedToken({ sub: 'u1' }), 'invalid_token', /signed with "none"; this server accepts only HS256/, 'alg none (HS256 server)')
  await refused(t, rs.verify, unsignedToken({ sub: 'u1' }), 'invalid_token', /signed with "none"; this server accepts only RS256/, 'alg none (RS256 server)')
  await refused(t, rs.verify, await token({ sub: 'u1' }, rsa.publicPem, 'HS256'), 'invalid_token', /signed with "HS256"; this server accepts only RS256/, 'HS256 with the public key as secret')
  await refused(t, rs.verify, await token({ sub: 'u1' }, ec.privateKey, 'ES256'), 'invalid_token', /signed with "ES256"; this server accepts only RS256/, 'another asymmetric algorithm')
  await refused(t, hs.verify, await token({ sub: 'u1' }, SECRET, 'HS512'), 'invalid_token', /signed with "HS512"; this server accepts only HS256/, 'another HMAC')
  await refused(t, hs.verify, await token({ sub: 'u1' }, rsa.privateKey, 'RS256'), 'invalid_token', /accepts only HS256/, 'RS256 token to an HS256 server')

  await refused(t, hs.verify, await token({ sub: 'u1', exp: now() - 60 }), 'token_expired', /expired at \d{4}-/, 'expired a minute ago')
  await refused(t, hs.verify, await token({ sub: 'u1', exp: now() - 2 }), 'token_expired', /expired/, 'expired within the clock tolerance: still expired on this server')
  await refused(t, hs.verify, await token({ sub: 'u1', nbf: now() + 60 }), 'invalid_token', /not valid yet/, 'not yet valid')
  t.ok(await hs.verify(await token({ sub: 'u1', nbf: now() + 2 })), 'nbf within the clock tolerance passes')
  await refused(t, hs.verify, await token({ name: 'nobody' }), 'invalid_token', /no "sub"/, 'missing sub')
  await refused(t, hs.verify, await token({ sub: 42 } as never), 'invalid_token', /"sub"/, 'sub not a string')
  await refused(t, hs.verify, await token({ sub: '' }), 'invalid_token', /"sub"/, 'empty sub')
  await refused(t, hs.verify, await token({ sub: 'u1', name: 7 } as never), 'invalid_token', /"name" must be a string/, 'name not a string')
  await refused(t, hs.verify, await token({ sub: 'u1', rooms: 'lab-1' }), 'invalid_token', /"rooms" must be a list/, 'rooms not a list')
  await refused(t, hs.verify, await token({ sub: 'u1', admin: 'yes' }), 'invalid_token', /"admin" must be true or false/, 'admin not a boolean')

  for (const garbage of ['', 'garbage', 'a.b.c', 'a.b', '....', '%%%.%%%.%%%', 'eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.sig']) {
    await refused(t, hs.verify, garbage, 'invalid_token', /not a well-formed JWT|accepts only|signature/, `garbage ${JSON.stringify(garbage)}`)
  }
})

t.test('audience and issuer are checked when set', async (t) => {
  const strict = createJwtVerifier({ secret: SECRET, audience: 'echohub', issuer: 'https://id.example' })
  t.equal((await strict.verify(await token({ sub: 'u1', aud: 'echohub', iss: 'https://id.example' }))).id, 'u1')
  t.equal((await strict.verify(await token({ sub: 'u1', aud: ['other', 'echohub'], iss: 'https://id.example' }))).id, 'u1', 'aud may be a list')
  await refused(t, strict.verify, await token({ sub: 'u1', aud: 'other', iss: 'https://id.example' }), 'invalid_token', /another audience/, 'wrong audience')
  await refused(t, strict.verify, await token({ sub: 'u1', iss: 'https://id.example' }), 'invalid_token', /"aud"/, 'no audience')
  await refused(t, strict.verify, await token({ sub: 'u1', aud: 'echohub', iss: 'https://evil.example' }), 'invalid_token', /another issuer/, 'wrong issuer')
  await refused(t, strict.verify, await token({ sub: 'u1', aud: 'echohub' }), 'invalid_token', /"iss"/, 'no issuer')
  t.equal((await hs.verify(await token({ sub: 'u1', aud: 'anything', iss: 'anyone' }))).id, 'u1', 'not checked when not set')
})

t.test('keys the verifier cannot pin an algorithm to are refused when it is built', async (t) => {
  t.throws(() => createJwtVerifier({}), /either secret .* or publicKey/)
  t.throws(() => createJwtVerifier({ secret: SECRET, publicKey: rsaKeyPair().publicPem }), /not both/)
  t.throws(() => createJwtVerifier({ secret: 'short' }), /5 bytes; HS256 needs a secret of at least 32 bytes/)
  t.throws(() => publicKeyFromPem('not a key'), /is not a PEM public key/)
  t.throws(() => publicKeyFromPem(ecKeyPair('secp256k1').publicPem), /curve secp256k1/)
  const ed = (await import('node:crypto')).generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString()
  t.throws(() => publicKeyFromPem(ed), /ed25519 key; use an RSA/)
  const small = (await import('node:crypto')).generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString()
  t.throws(() => publicKeyFromPem(small), /1024-bit RSA key/)
  const rsa = rsaKeyPair()
  const fromPrivate = publicKeyFromPem(rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString())
  t.equal(fromPrivate.algorithm, 'RS256', 'a private key PEM yields its public half')
})

t.test('room patterns: * matches any run of characters, nothing else is special', async (t) => {
  const cases: Array<[string, string, boolean]> = [
    ['lab-1', 'lab-1', true],
    ['lab-1', 'lab-10', false],
    ['lab-*', 'lab-1', true],
    ['lab-*', 'lab-', true],
    ['lab-*', 'lab', false],
    ['lab-*', 'xlab-1', false],
    ['*', 'anything', true],
    ['*-ops', 'team-ops', true],
    ['*-ops', 'team-ops-2', false],
    ['a*b*c', 'aXXbYYc', true],
    ['a*b*c', 'aXXbYY', false],
    ['a**c', 'ac', true],
    ['lab.*', 'labx1', false],
    ['lab.?', 'lab.1', false],
    ['LAB-*', 'lab-1', false]
  ]
  for (const [pattern, room, expected] of cases) t.equal(roomMatches(pattern, room), expected, `${pattern} ~ ${room}`)
  t.ok(roomAllowed(undefined, 'any'), 'no rooms claim: any room')
  t.notOk(roomAllowed([], 'any'), 'an empty list: no room')
  t.ok(roomAllowed(['ops', 'lab-*'], 'lab-3'))
  t.notOk(roomAllowed(['ops', 'lab-*'], 'dev'))
  t.notOk(roomMatches('*a*a*a*a*a*a*a*a*a*a*b', 'a'.repeat(64)), 'a pattern that would make a backtracking matcher crawl fails')
})

t.test('settings: --jwt-secret, --jwt-public-key FILE, --jwt-audience, --jwt-issuer, from flags or environment', async (t) => {
  const { parseConfig } = await import('../src/config.js')
  const { mkdtempSync, writeFileSync } = await import('node:fs')
  const { join } = await import('node:path')
  const { tmpdir } = await import('node:os')
  const config = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
    const parsed = parseConfig(argv, env)
    if (parsed.help) throw new Error('unexpected --help')
    return parsed.config
  }
  const dir = mkdtempSync(join(tmpdir(), 'echohub-jwt-'))
  const keyFile = join(dir, 'public.pem')
  const pair = ecKeyPair()
  writeFileSync(keyFile, pair.publicPem)
  const garbageFile = join(dir, 'garbage.pem')
  writeFileSync(garbageFile, 'hello')

  const off = config([])
  t.same([off.jwtSecret, off.jwtPublicKey, off.jwtAudience, off.jwtIssuer], [undefined, undefined, undefined, undefined], 'identity is off by default')
  t.equal(config([], { JWT_SECRET: SECRET }).jwtSecret, SECRET)
  t.equal(config(['--jwt-public-key', keyFile]).jwtPublicKey, pair.publicPem, 'the file is read at start')
  t.equal(config([], { JWT_PUBLIC_KEY: keyFile, JWT_AUDIENCE: 'echohub', JWT_ISSUER: 'me' }).jwtAudience, 'echohub')
  t.equal(config(['--jwt-secret', SECRET, '--jwt-issuer', 'me']).jwtIssuer, 'me')

  const bad: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
    [['--jwt-secret', 'short'], {}, /^--jwt-secret is 5 bytes; HS256 needs a secret of at least 32 bytes/],
    [[], { JWT_SECRET: 'short' }, /^JWT_SECRET is 5 bytes/],
    [['--jwt-public-key', join(dir, 'missing.pem')], {}, /^--jwt-public-key cannot read .*missing\.pem: ENOENT$/],
    [['--jwt-public-key', garbageFile], {}, /^--jwt-public-key .*garbage\.pem is not a PEM public key/],
    [['--jwt-secret', SECRET, '--jwt-public-key', keyFile], {}, /exclude each other/],
    [['--jwt-audience', 'echohub'], {}, /^--jwt-audience needs --jwt-secret or --jwt-public-key/],
    [['--jwt-issuer', 'me'], {}, /^--jwt-issuer needs/]
  ]
  for (const [argv, env, message] of bad) {
    t.throws(() => parseConfig(argv, env), { code: 'ECHOHUB_ERR_INVALID_CONFIG', message }, argv.join(' ') || JSON.stringify(env))
  }
  t.notOk(/\n/.test((() => { try { parseConfig(['--jwt-public-key', garbageFile], {}) } catch (err) { return (err as Error).message } return '' })()), 'one line')
})

t.test('jwtIdentity takes the token from the Bearer header or ?token=, and identify turns throws into 401 bodies', async (t) => {
  const { jwtIdentity, identify, JWT_REQUIRED } = await import('../src/auth/identity.js')
  const identity = jwtIdentity(hs)
  const jwt = await token({ sub: 'u1', name: 'Ana' })
  const req = (headers: Record<string, string>, url = '/ws') => ({ headers, url })
  t.same(await identify(identity, req({ authorization: `Bearer ${jwt}` })), { user: { id: 'u1', name: 'Ana', expiresAt: (await hs.verify(jwt)).expiresAt } })
  t.equal(((await identify(identity, req({}, `/ws?x=1&token=${jwt}`))) as { user: { id: string } }).user.id, 'u1')
  t.match(await identify(identity, req({})), { refusal: { status: 401, error: 'invalid_token', message: JWT_REQUIRED } }, 'no token')
  t.match(await identify(identity, req({ authorization: 'Bearer nope' })), { refusal: { error: 'invalid_token', message: /well-formed/ } })
  t.match(await identify(identity, req({}, `/ws?token=${await token({ sub: 'u1', exp: now() - 10 })}`)), { refusal: { error: 'token_expired' } })
})

t.test('identify checks what a custom authenticate returns and hides its internal errors', async (t) => {
  const { identify } = await import('../src/auth/identity.js')
  const { InvalidTokenError, TokenExpiredError } = await import('../src/errors.js')
  const run = (authenticate: () => unknown) => identify({ authenticate: authenticate as never, refresh: undefined }, {})
  t.same(await run(() => ({ id: 'k1', name: 'Key one', admin: true, extra: 'dropped' })), { user: { id: 'k1', name: 'Key one', admin: true } })
  t.same(await run(async () => ({ id: 'k2', admin: false, rooms: ['a'] })), { user: { id: 'k2', rooms: ['a'] } })
  t.match(await run(() => { throw new InvalidTokenError('unknown API key') }), { refusal: { error: 'invalid_token', message: 'unknown API key' } })
  t.match(await run(() => { throw new TokenExpiredError('session over') }), { refusal: { error: 'token_expired', message: 'session over' } })
  t.match(await run(() => { throw new Error('db password is hunter2') }), { refusal: { error: 'invalid_token', message: 'the credentials were refused' } }, 'an unknown error says nothing of itself')
  t.match(await run(() => ({ id: 'old', expiresAt: Date.now() - 1 })), { refusal: { error: 'token_expired' } }, 'a user already expired')
  for (const bad of [null, 'u1', {}, { id: 7 }, { id: '' }, { id: 'x', name: 1 }, { id: 'x', rooms: 'a' }, { id: 'x', admin: 'yes' }, { id: 'x', expiresAt: 'soon' }]) {
    t.match(await run(() => bad), { refusal: { error: 'invalid_token', message: 'the credentials were refused' }, cause: TypeError }, `malformed user ${JSON.stringify(bad)}`)
  }
})

t.test('redaction keeps tokens out of log lines', async (t) => {
  const { redactJwts, redactToken } = await import('../src/auth/access.js')
  const jwt = await token({ sub: 'u1' })
  t.equal(redactJwts(JSON.stringify({ type: 'refresh', token: jwt })), '{"type":"refresh","token":"[redacted jwt]"}')
  t.equal(redactJwts('no token here'), 'no token here')
  t.equal(redactToken(`/ws?token=${jwt}&x=1`), '/ws?token=[redacted]&x=1')
})
