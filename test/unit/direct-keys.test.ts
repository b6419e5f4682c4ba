import t from 'tap'
import type { FastifyRequest } from 'fastify'
import { assertOwnKey, assertOwnStagingKey, makeDirectKey, stagingKeyOf, userPrefix, userSegment } from '../../lib/direct/keys.ts'
import { sanitisePrefix } from '../../lib/keys.ts'
import { configOf } from '../../lib/options.ts'

const config = configOf({ bucket: 'uploads', keyPrefix: 'media', direct: { authorize: () => null } })
const direct = config.direct as NonNullable<typeof config.direct>
const request = {} as FastifyRequest
const alice = { userId: 'alice' }

// Regression: base64url ids starting with '_' or holding '__' were rewritten by the
// key sanitiser, so ~2 % of the keys the server made were then refused as "not yours".
t.test('every key the server makes passes the ownership check', async (t) => {
  let refused = 0
  for (let i = 0; i < 5000; i++) {
    const key = await makeDirectKey(config, direct, alice, '__weird .._name.png', 'image/png', request)
    try { assertOwnKey(config, alice, key) } catch { refused++ }
  }
  t.equal(refused, 0)
})

t.test('keys are <keyPrefix>/<userId>/<random>/<sanitised name>', async (t) => {
  const key = await makeDirectKey(config, direct, alice, '../../etc/pässwd.bin', 'application/octet-stream', request)
  t.match(key, /^media\/alice\/[0-9a-f]{24}\/pässwd\.bin$/)
  t.equal(userPrefix(config, { userId: '../root' }), `media/-${Buffer.from('../root').toString('hex')}`, 'a user id cannot climb either: it is hex-encoded')
})

t.test('a direct.key() result stays under the user\'s prefix', async (t) => {
  const custom = configOf({ bucket: 'uploads', keyPrefix: 'media', direct: { authorize: () => null, key: ({ filename }) => `../../x/${filename}` } })
  const key = await makeDirectKey(custom, custom.direct as typeof direct, alice, 'a.png', 'image/png', request)
  t.equal(key, 'media/alice/x/a.png')
})

t.test('assertOwnKey refuses anything not canonical under the caller\'s prefix', async (t) => {
  for (const key of ['media/bob/x/a.png', 'media/alicex/a.png', 'media/alice/../bob/a.png', 'media/alice//a.png', '/media/alice/a.png', 'media/alice', '', 42, undefined]) {
    t.throws(() => assertOwnKey(config, alice, key), { code: 'FST_S3CHUNK_FORBIDDEN', statusCode: 403 }, JSON.stringify(key))
  }
  t.equal(assertOwnKey(config, alice, 'media/alice/abc/a.png'), 'media/alice/abc/a.png')
})

t.test('user segments are one-to-one: plain ids as they are, any other as -<hex>', async (t) => {
  const pairs = [['team-a/alice', 'alice'], ['tenant1/42', 'tenant2/42'], ["o'brien@example.com", 'o_brien@example.com'], ['!!!', '???'], ['_alice', 'alice'], ['a b', 'a_b'], ['x'.repeat(201), 'x'.repeat(200)], ['Alice', 'alice'], ['é', 'e\u0301']]
  for (const [a, b] of pairs) t.not(userSegment(a as string), userSegment(b as string), `${a} / ${b}`)
  t.equal(userSegment('alice'), 'alice')
  t.equal(userSegment('user_42'), 'user_42')
  t.equal(userSegment('a__b'), `-${Buffer.from('a__b').toString('hex')}`, 'an id the sanitiser would change is encoded')
  for (const id of ['team-a/alice', '!!!', '_alice', 'a b', 'x'.repeat(99), 'Zoë']) {
    const segment = userSegment(id)
    t.equal(sanitisePrefix(segment), segment, `${id.slice(0, 20)}: the segment survives the key check`)
    t.equal(Buffer.from(segment.slice(1), 'hex').toString('utf8'), id, 'and decodes back')
  }
  for (const id of ['x'.repeat(100), 'é'.repeat(512)]) {
    const segment = userSegment(id)
    t.match(segment, /^=[0-9a-f]{64}$/, 'a long id: its SHA-256')
    t.equal(sanitisePrefix(segment), segment)
  }
  t.throws(() => userSegment('x'.repeat(1025)), /1024 UTF-8 bytes/)
  t.throws(() => userSegment('a\uD800'), /well-formed/, 'a lone surrogate would encode like U+FFFD')
})

t.test('staging keys: their own namespace, mapped one-to-one to final keys', async (t) => {
  const key = await makeDirectKey(config, direct, alice, 'a.png', 'image/png', request)
  const staging = stagingKeyOf(config, key)
  t.equal(staging, key.replace(/^media\//, 'media/.staging/'))
  t.same(assertOwnStagingKey(config, alice, staging), { staging, final: key })
  t.throws(() => assertOwnStagingKey(config, alice, key), { code: 'FST_S3CHUNK_FORBIDDEN', statusCode: 403 }, 'a final key is not a staging key')
  t.throws(() => assertOwnStagingKey(config, { userId: 'bob' }, staging), { code: 'FST_S3CHUNK_FORBIDDEN', statusCode: 403 }, 'another user\'s staging key')
  t.throws(() => assertOwnKey(config, alice, staging), { code: 'FST_S3CHUNK_FORBIDDEN', statusCode: 403 }, 'a staging key is never a final key (the sanitiser strips the dot)')
  t.equal(sanitisePrefix('media/.staging/alice/x.png'), 'media/staging/alice/x.png', 'no sanitised key can reach .staging')
})
