// The tus upload URL's last segment: the id and the object key sealed to their owner.
import t from 'tap'
import { createHmac } from 'node:crypto'
import { configOf } from '../../lib/options.ts'
import { UploadTokens } from '../../lib/tus/token.ts'

const config = configOf({ bucket: 'uploads' })
const tokens = new UploadTokens(config, 'a secret shared by every instance')
const key = 'media/alice/clip_20261122T150000Z-0123456789ab.mp4'

t.test('a token opens for its owner, with the id and the key it sealed', async (t) => {
  for (const owner of [undefined, 'alice']) {
    const { id, token } = tokens.issue(owner, key)
    t.same(tokens.open(token, owner), { id, key })
    t.notMatch(token, /clip|media|alice/, 'the key is not readable from the URL')
  }
})

t.test('another owner, no owner, another secret: nothing opens', async (t) => {
  const { token } = tokens.issue('alice', key)
  t.equal(tokens.open(token, 'bob'), null)
  t.equal(tokens.open(token, undefined), null)
  t.equal(new UploadTokens(config, 'another secret').open(token, 'alice'), null)
  const anonymous = tokens.issue(undefined, key).token
  t.equal(tokens.open(anonymous, ''), null, 'an empty owner is not no owner')
})

t.test('a token of another endpoint (bucket, key prefix) opens nothing here', async (t) => {
  const { token } = tokens.issue('alice', key)
  t.equal(new UploadTokens(configOf({ bucket: 'other' }), 'a secret shared by every instance').open(token, 'alice'), null)
  t.equal(new UploadTokens(configOf({ bucket: 'uploads', keyPrefix: 'media' }), 'a secret shared by every instance').open(token, 'alice'), null)
})

t.test('a URL does not tell how long its key is (padded to 64 bytes), and holds S3\'s longest key', async (t) => {
  const lengths = new Set(['a', 'alice/salary-2026.pdf', 'x'.repeat(61)].map((name) => tokens.issue('alice', name).token.length))
  t.equal(lengths.size, 1, 'keys of 1 to 61 bytes give URLs of one length')
  const longest = 'é'.repeat(512)
  const { id, token } = tokens.issue('alice', longest)
  t.same(tokens.open(token, 'alice'), { id, key: longest }, `a 1024-byte key (a ${token.length}-character token)`)
})

t.test('a token changed at any one character opens nothing', async (t) => {
  const { token } = tokens.issue('alice', key)
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  let opened = 0
  for (let at = 0; at < token.length; at++) {
    if (token[at] === '.') continue
    for (const other of [alphabet[(alphabet.indexOf(token[at] as string) + 1) % 64], alphabet[(alphabet.indexOf(token[at] as string) + 63) % 64]]) {
      if (tokens.open(`${token.slice(0, at)}${other as string}${token.slice(at + 1)}`, 'alice') !== null) opened++
    }
  }
  t.equal(opened, 0, `${2 * (token.length - 1)} changed tokens`)
  t.equal(tokens.open(token.slice(0, -1), 'alice'), null, 'shortened')
  t.equal(tokens.open(`${token}A`, 'alice'), null, 'lengthened')
})

// Uploads begun before the key was sealed into the URL go on after an upgrade.
t.test('a token of the earlier form (<id>.<HMAC>) still opens, without a key', async (t) => {
  const id = '0123456789abcdef0123456789abcdef'
  const macKey = createHmac('sha256', 'a secret shared by every instance').update('fastify-s3-chunk/tus-upload-url/v1').digest()
  const mac = createHmac('sha256', macKey).update(`${id}\nu:alice`).digest().subarray(0, 16).toString('base64url')
  t.same(tokens.open(`${id}.${mac}`, 'alice'), { id })
  t.equal(tokens.open(`${id}.${mac}`, 'bob'), null)
  t.equal(tokens.open(`${id}.${mac.slice(0, -1)}${mac.endsWith('A') ? 'B' : 'A'}`, 'alice'), null)
})
