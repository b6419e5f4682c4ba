import t from 'tap'
import type { FastifyRequest } from 'fastify'
import { assertOwnKey, makeDirectKey, userPrefix } from '../../lib/direct/keys.ts'
import { parseOptions } from '../../lib/options.ts'

const config = parseOptions({ bucket: 'uploads', keyPrefix: 'media', direct: { authorize: () => null } })
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
  t.equal(userPrefix(config, { userId: '../root' }), 'media/root', 'a user id cannot climb either')
})

t.test('a direct.key() result stays under the user\'s prefix', async (t) => {
  const custom = parseOptions({ bucket: 'uploads', keyPrefix: 'media', direct: { authorize: () => null, key: ({ filename }) => `../../x/${filename}` } })
  const key = await makeDirectKey(custom, custom.direct as typeof direct, alice, 'a.png', 'image/png', request)
  t.equal(key, 'media/alice/x/a.png')
})

t.test('assertOwnKey refuses anything not canonical under the caller\'s prefix', async (t) => {
  for (const key of ['media/bob/x/a.png', 'media/alicex/a.png', 'media/alice/../bob/a.png', 'media/alice//a.png', '/media/alice/a.png', 'media/alice', '', 42, undefined]) {
    t.throws(() => assertOwnKey(config, alice, key), { code: 'FST_S3CHUNK_FORBIDDEN', statusCode: 403 }, JSON.stringify(key))
  }
  t.equal(assertOwnKey(config, alice, 'media/alice/abc/a.png'), 'media/alice/abc/a.png')
})
