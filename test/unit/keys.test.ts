import t from 'tap'
import { makeKey, sanitiseFilename, sanitisePrefix, withTimestamp } from '../../lib/keys.ts'
import { configOf, type KeyContext } from '../../lib/options.ts'

t.test('sanitiseFilename strips paths, traversal and control characters', async (t) => {
  t.equal(sanitiseFilename('../../etc/pässwd.bin'), 'pässwd.bin')
  t.equal(sanitiseFilename('C:\\Users\\me\\report.pdf'), 'report.pdf')
  t.equal(sanitiseFilename('..'), 'file')
  t.equal(sanitiseFilename('...hidden'), 'hidden')
  t.equal(sanitiseFilename(''), 'file')
  t.equal(sanitiseFilename('a\u0000b\u001fc\u202e.txt'), 'abc.txt', 'NUL, controls and bidi overrides removed')
  t.equal(sanitiseFilename('my holiday  photo.jpg'), 'my_holiday_photo.jpg')
  t.equal(sanitiseFilename('rm -rf *;.sh'), 'rm_-rf_.sh')
  t.equal(sanitiseFilename('a..b..c'), 'a.b.c', 'no ".." survives anywhere')
})

t.test('sanitiseFilename normalises Unicode to NFC', async (t) => {
  const decomposed = 'pa\u0308sswd.bin' // "a" + combining diaeresis
  t.equal(sanitiseFilename(decomposed), 'p\u00e4sswd.bin')
})

// Found by an attack run (helper-34, 2026-12-06; failed before the fix): NFC came before the
// format characters were stripped, so 'cafe' + zero-width space + combining acute gave a key that
// was not NFC — and direct mode, checking a key is its own sanitised form, refused the owner's
// own upload (sign, complete, abort: 403) until the sweep.
t.test('sanitiseFilename and sanitisePrefix give NFC, and are idempotent, whatever they strip', async (t) => {
  const names = ['cafe\u200b\u0301.bin', 'e\u0000\u0301', 'a\u202e\u0308b', 'x\u200d\u0327c.txt', '\u1100\u200b\u1161', 'o\n\u0302', ' \u0301lead']
  for (const name of names) {
    const file = sanitiseFilename(name)
    t.equal(file, file.normalize('NFC'), `${JSON.stringify(name)} → ${JSON.stringify(file)} is NFC`)
    t.equal(sanitiseFilename(file), file, `${JSON.stringify(name)}: sanitising again changes nothing`)
    const prefix = sanitisePrefix(`${name}/${name}`)
    t.equal(prefix, prefix.normalize('NFC'), `prefix ${JSON.stringify(prefix)} is NFC`)
    t.equal(sanitisePrefix(prefix), prefix, 'prefix: sanitising again changes nothing')
  }
  t.equal(sanitiseFilename('cafe\u200b\u0301.bin'), 'caf\u00e9.bin')
})

t.test('sanitiseFilename bounds the length in bytes and keeps the extension', async (t) => {
  const long = 'ä'.repeat(500) + '.mp4'
  const clean = sanitiseFilename(long)
  t.ok(Buffer.byteLength(clean) <= 200, `${Buffer.byteLength(clean)} bytes`)
  t.ok(clean.endsWith('.mp4'))
  t.notOk(clean.includes('\ufffd'), 'no character cut in half')
})

t.test('sanitisePrefix keeps sub-paths but never climbs', async (t) => {
  t.equal(sanitisePrefix('users/42/avatars'), 'users/42/avatars')
  t.equal(sanitisePrefix('../../secret'), 'secret')
  t.equal(sanitisePrefix('/a//./b/../c/'), 'a/b/c')
  t.equal(sanitisePrefix('..'), '')
})

t.test('withTimestamp puts a UTC timestamp before the extension', async (t) => {
  const now = new Date('2026-11-21T05:21:46.123Z')
  t.equal(withTimestamp('photo.final.jpg', now, '3f9a0c5e1b2d'), 'photo.final_20261121T052146123Z-3f9a0c5e1b2d.jpg')
  t.equal(withTimestamp('README', now, '3f9a0c5e1b2d'), 'README_20261121T052146123Z-3f9a0c5e1b2d')
  t.not(withTimestamp('a.jpg', now), withTimestamp('a.jpg', now), 'two names in the same millisecond differ')
})

function context (overrides: Partial<KeyContext> & { query?: Record<string, string> } = {}): KeyContext {
  const { query, ...rest } = overrides
  return {
    filename: 'clip.mp4',
    originalName: 'clip.mp4',
    fieldName: 'file',
    mimetype: 'video/mp4',
    request: { query: query ?? {} } as unknown as KeyContext['request'],
    ...rest
  }
}

const now = new Date('2026-11-21T05:21:46.123Z')

t.test('makeKey: keyPrefix and timestamp', async (t) => {
  t.match(await makeKey(configOf({ bucket: 'uploads', keyPrefix: '/media/' }), context(), now), /^media\/clip_20261121T052146123Z-[0-9a-f]{12}\.mp4$/)
  t.equal(await makeKey(configOf({ bucket: 'uploads', appendTimestamp: false }), context(), now), 'clip.mp4')
})

t.test('makeKey: the prefix query parameter is off by default', async (t) => {
  const key = await makeKey(configOf({ bucket: 'uploads', keyPrefix: 'media', appendTimestamp: false }), context({ query: { __prefix: 'x' } }), now)
  t.equal(key, 'media/clip.mp4')
})

t.test('makeKey: the prefix query parameter is sanitised and stays under keyPrefix', async (t) => {
  const config = configOf({ bucket: 'uploads', keyPrefix: 'media', appendTimestamp: false, prefixQueryParam: true })
  t.equal(await makeKey(config, context({ query: { __prefix: 'albums/2026' } }), now), 'media/albums/2026/clip.mp4')
  t.equal(await makeKey(config, context({ query: { __prefix: '../../../etc' } }), now), 'media/etc/clip.mp4')
  t.equal(await makeKey(config, context({ query: { __prefix: '/' } }), now), 'media/clip.mp4')
  const named = configOf({ bucket: 'uploads', appendTimestamp: false, prefixQueryParam: 'folder' })
  t.equal(await makeKey(named, context({ query: { folder: 'a' } }), now), 'a/clip.mp4')
})

// Found by an attack run: eight segments of 190 bytes made the key longer than S3 allows, and the
// answer was 500 FST_S3CHUNK_INVALID_KEY blaming the app's key() — the client chose that prefix.
t.test('makeKey: a prefix query parameter that makes the key too long is the client\'s mistake (400)', async (t) => {
  const config = configOf({ bucket: 'uploads', keyPrefix: 'media', appendTimestamp: false, prefixQueryParam: true })
  const long = Array.from({ length: 8 }, () => 'a'.repeat(190)).join('/')
  await t.rejects(makeKey(config, context({ query: { __prefix: long } }), now), { code: 'FST_S3CHUNK_BAD_REQUEST', statusCode: 400, message: /prefix query parameter makes the key longer than 1024 bytes/ })
  // Too long without it too (the app's keyPrefix): the app's, not the client's.
  const longPrefix = configOf({ bucket: 'uploads', keyPrefix: 'é'.repeat(510), appendTimestamp: false, prefixQueryParam: true })
  await t.rejects(makeKey(longPrefix, context({ query: { __prefix: 'a' } }), now), { code: 'FST_S3CHUNK_INVALID_KEY' })
})

t.test('makeKey: a key() function names the object, below keyPrefix, sanitised', async (t) => {
  const config = configOf({ bucket: 'uploads', keyPrefix: 'media', key: async ({ fieldName, filename }) => `by-field/${fieldName}/${filename}` })
  t.equal(await makeKey(config, context(), now), 'media/by-field/file/clip.mp4')
  const escaping = configOf({ bucket: 'uploads', keyPrefix: 'media', key: () => '../../../root' })
  t.equal(await makeKey(escaping, context(), now), 'media/root')
  const empty = configOf({ bucket: 'uploads', key: () => '../..' })
  await t.rejects(makeKey(empty, context(), now), { code: 'FST_S3CHUNK_INVALID_KEY' })
})
