// The part plan the direct routes sign lengths from must be the plan
// @uppy/aws-s3 cuts files by: checked against Uppy's own MultipartUploader,
// loaded from node_modules and fed a stand-in Blob, for sizes at every boundary.
import t from 'tap'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { UploadHandles, partLength, partPlan } from '../../lib/direct/part-plan.ts'
import { configOf } from '../../lib/options.ts'

const MiB = 1024 * 1024
const require = createRequire(import.meta.url)
// Not in the package's exports: loaded by path, as the bundler sees it.
const uploaderPath = join(dirname(require.resolve('@uppy/aws-s3/package.json')), 'lib', 'MultipartUploader.js')
const { default: MultipartUploader } = await import(pathToFileURL(uploaderPath).href) as { default: new (data: unknown, options: unknown) => { start: () => void } }

/** The byte length of every chunk Uppy would PUT for a file of `size` bytes. */
function uppyChunks (size: number, getChunkSize?: (file: { size: number }) => number): number[] {
  let chunks: Array<{ getData: () => { size: number } }> = []
  const data = { size, slice: (start: number, end: number) => ({ size: end - start }) }
  const uploader = new MultipartUploader(data, {
    file: { id: 'f' },
    shouldUseMultipart: true,
    ...(getChunkSize === undefined ? {} : { getChunkSize }),
    log: () => {},
    companionComm: { uploadFile: (_file: unknown, given: typeof chunks) => { chunks = given; return new Promise(() => {}) } }
  })
  uploader.start()
  return chunks.map((chunk) => chunk.getData().size)
}

function ourChunks (size: number, partSize?: number): number[] {
  const plan = partPlan(size, partSize)
  return Array.from({ length: plan.count }, (_, i) => partLength(plan, i + 1))
}

t.test("Uppy's default plan, part for part", async (t) => {
  const sizes = [0, 1, 5 * MiB - 1, 5 * MiB, 5 * MiB + 1, 10 * MiB, 64 * MiB + 12_345, 10_000 * 5 * MiB, 10_000 * 5 * MiB + 1, 60 * 1024 * MiB + 7, 5 * 1024 * 1024 * MiB]
  let seed = 42
  for (let i = 0; i < 20; i++) {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31
    sizes.push(Math.floor((seed / 2 ** 31) * 200 * 1024 * MiB))
  }
  for (const size of sizes) {
    const uppy = uppyChunks(size)
    const ours = ourChunks(size)
    t.equal(ours.length, uppy.length, `${size} bytes: ${uppy.length} parts`)
    t.ok(ours.every((length, i) => length === uppy[i]), `${size} bytes: every part's length`)
  }
})

t.test('a declared partSize follows a custom getChunkSize', async (t) => {
  for (const [size, chunk] of [[20 * MiB, 8 * MiB], [64 * MiB + 1, 8 * MiB], [100 * MiB, 5 * MiB], [3 * MiB, 8 * MiB]] as const) {
    t.same(ourChunks(size, chunk), uppyChunks(size, () => chunk), `${size} bytes in ${chunk}-byte parts`)
  }
})

t.test('the seal: bound to key and plan; a secret is needed without static credentials', async (t) => {
  const authorize = (): null => null
  const withCredentials = configOf({ bucket: 'uploads', s3: { credentials: { accessKeyId: 'a', secretAccessKey: 'b'.repeat(40) } }, direct: { authorize } })
  const handles = new UploadHandles(withCredentials, withCredentials.direct as NonNullable<typeof withCredentials.direct>)
  const plan = partPlan(12 * MiB)
  const handle = handles.issue('media/u/k.bin', 'S3-ID.x_y-z', plan)
  t.same(handles.open('media/u/k.bin', handle), { uploadId: 'S3-ID.x_y-z', plan })
  t.equal(UploadHandles.uploadIdOf(handle), 'S3-ID.x_y-z')
  t.throws(() => handles.open('media/u/other.bin', handle), { code: 'FST_S3CHUNK_FORBIDDEN' }, 'another key')
  t.throws(() => handles.open('media/u/k.bin', 'S3-ID.x_y-z'), { code: 'FST_S3CHUNK_FORBIDDEN' }, 'no seal')

  const chain = configOf({ bucket: 'uploads', direct: { authorize } })
  t.throws(() => new UploadHandles(chain, chain.direct as NonNullable<typeof chain.direct>), { code: 'FST_S3CHUNK_INVALID_OPTION', message: /direct\.secret/ }, 'no credentials, no secret: refused at register')
  const secret = configOf({ bucket: 'uploads', direct: { authorize, secret: 's'.repeat(32) } })
  const sealed = new UploadHandles(secret, secret.direct as NonNullable<typeof secret.direct>)
  t.not(sealed.issue('k', 'id', plan), handles.issue('k', 'id', plan), 'the secret, not the credentials, seals')
  const optOut = configOf({ bucket: 'uploads', direct: { authorize, requireSize: false } })
  const open = new UploadHandles(optOut, optOut.direct as NonNullable<typeof optOut.direct>)
  t.equal(open.issue('k', 'id', plan), 'id', 'opted out without a secret: nothing sealed')
  t.same(open.open('k', 'id'), { uploadId: 'id' })
})
