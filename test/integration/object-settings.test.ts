// S3 object settings on streamed uploads (issue 11, item 2): `objectParams`,
// static or computed per file, per call, SSE-KMS and SSE-S3 — on the single
// PutObject (small files) and on CreateMultipartUpload (11 MiB, three parts),
// in both modes, read back from MinIO with HeadObject. SSE-C (TLS only) is in
// sse-c.test.ts.
import t, { type Test } from 'tap'
import { DeleteObjectCommand, GetObjectTaggingCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { sanitiseFilename } from 'fastify-s3-chunk'
import { randomBytes } from 'node:crypto'
import { startApp } from '../support/app.ts'
import { isCreateMultipart, isPutObject, isUploadPart, startFaultProxy, type FaultRequest } from '../support/fault-proxy.ts'
import { postMultipart } from '../support/multipart.ts'
import {
  attachment,
  bareEtag,
  digest,
  head,
  parseAttachment,
  postWithFilenameStar,
  s3FileWith,
  withObjectParams,
  type ObjectParams
} from '../support/object-settings.ts'
import { expectNoPendingUploads, freshBucket, kmsKeyId, listKeys, pluginS3Options, sha256, testClient, testS3 } from '../support/s3.ts'

const MiB = 1024 * 1024
const P = 5 * MiB
const server = await testS3()
const client = testClient(server)
const modes = ['workers', 'inline'] as const
const kms = kmsKeyId(server)
/** Below one part: a single PutObject. 11 MiB: CreateMultipartUpload and three parts (5 + 5 + 1 MiB). */
const sizes = [
  { label: 'small', size: 256 * 1024, parts: 0 },
  { label: 'multipart', size: 11 * MiB, parts: 3 }
] as const

const CITY = 'Zürich ☃ — 東京'
const STATIC: ObjectParams = {
  CacheControl: 'public, max-age=31536000',
  ContentDisposition: 'inline',
  ContentLanguage: 'fr-CH',
  ContentEncoding: 'gzip',
  Expires: new Date('2030-01-01T00:00:00Z'),
  // MinIO knows STANDARD (not reported by HeadObject) and REDUCED_REDUNDANCY; STANDARD_IA, GLACIER… are InvalidStorageClass.
  StorageClass: 'REDUCED_REDUNDANCY',
  Tagging: 'project=alpha&tier=gold%20plus',
  Metadata: { owner: 'u1', city: CITY }
}

/** decodeURIComponent, or a marker when the value is not percent-encoding (a bare `%`, say). */
function decoded (value: string | undefined): string {
  try {
    return decodeURIComponent(value ?? '')
  } catch {
    return `<not percent-decodable: ${JSON.stringify(value)}>`
  }
}

async function tags (bucket: string, key: string): Promise<Array<{ Key?: string, Value?: string }>> {
  const { TagSet = [] } = await client.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: key }))
  return [...TagSet].map(({ Key, Value }) => ({ Key, Value })).sort((a, b) => String(a.Key).localeCompare(String(b.Key)))
}

/**
 * The storage class HeadObject reports for an object this store was asked to
 * store as `storageClass` by a plain PutObject: stores that have the class keep
 * it (MinIO, AWS: REDUCED_REDUNDANCY), stores without storage classes accept
 * and drop it (versitygw's posix backend reports STANDARD). That the plugin
 * sends it is checked on the wire below ("object settings reach S3 …").
 */
async function storedClassOf (bucket: string, storageClass: 'REDUCED_REDUNDANCY'): Promise<string | undefined> {
  const Key = '.storage-class-probe'
  await client.send(new PutObjectCommand({ Bucket: bucket, Key, Body: 'x', StorageClass: storageClass }))
  const { StorageClass } = await client.send(new HeadObjectCommand({ Bucket: bucket, Key }))
  await client.send(new DeleteObjectCommand({ Bucket: bucket, Key }))
  return StorageClass
}

/** Every stored metadata value is printable ASCII (what an HTTP header can carry), whatever was given. */
function asciiMetadata (t: Test, metadata: Record<string, string> | undefined, label: string): void {
  for (const [name, value] of Object.entries(metadata ?? {})) {
    t.match(value, /^[\x20-\x7e]*$/, `${label}: x-amz-meta-${name} is printable ASCII on the wire`)
  }
}

for (const mode of modes) {
  t.test(`mode ${mode}: static objectParams are on the stored object, PutObject and multipart alike`, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const { url } = await startApp(t, server, withObjectParams({ bucket, mode, partSize: P, objectParams: STATIC }))
    const storedClass = await storedClassOf(bucket, 'REDUCED_REDUNDANCY')
    for (const { label, size, parts } of sizes) {
      const data = randomBytes(size)
      const response = await postMultipart(`${url}/upload`, [
        { name: 'upload', filename: `static-${label}.bin`, contentType: 'application/x-test', data }
      ])
      t.equal(response.status, 200, `${label}: HTTP 200 ${response.status === 200 ? '' : response.body}`)
      if (response.status !== 200) continue
      const file = response.json()
      t.equal(file.parts, parts, `${label}: ${parts === 0 ? 'a single PutObject' : `${parts} parts`}`)
      const h = await head(client, bucket, file.key)
      t.equal(h.CacheControl, STATIC.CacheControl, `${label}: Cache-Control`)
      t.equal(h.ContentDisposition, 'inline', `${label}: Content-Disposition`)
      t.equal(h.ContentLanguage, 'fr-CH', `${label}: Content-Language`)
      t.equal(h.ContentEncoding, 'gzip', `${label}: Content-Encoding`)
      t.equal(h.Expires?.toISOString(), '2030-01-01T00:00:00.000Z', `${label}: Expires`)
      t.equal(h.StorageClass, storedClass, `${label}: storage class as this store keeps REDUCED_REDUNDANCY (${String(storedClass)})`)
      t.equal(h.ContentType, 'application/x-test', `${label}: the content type is still the plugin's`)
      t.equal(h.Metadata?.owner, 'u1', `${label}: ASCII metadata stored as given`)
      t.equal(decoded(h.Metadata?.city), CITY, `${label}: non-ASCII metadata round-trips (percent-decoded)`)
      asciiMetadata(t, h.Metadata, label)
      t.same(await tags(bucket, file.key), [{ Key: 'project', Value: 'alpha' }, { Key: 'tier', Value: 'gold plus' }], `${label}: tags`)
      t.equal(file.etag, bareEtag(h.ETag), `${label}: S3File.etag is the object's ETag`)
      const stored = await digest(client, bucket, file.key)
      t.equal(stored.size, size, `${label}: stored size`)
      t.equal(stored.sha256, sha256(data), `${label}: stored bytes identical`)
    }
    await expectNoPendingUploads(t, server, client, bucket)
  })

  t.test(`mode ${mode}: objectParams computed per file from the fields read so far, Content-Disposition from attachment()`, async (t) => {
    t.equal(typeof attachment, 'function', 'the package exports attachment()')
    const bucket = await freshBucket(t, server, client)
    const { url } = await startApp(t, server, withObjectParams({
      bucket,
      mode,
      partSize: P,
      objectParams: (file) => ({
        Metadata: {
          caption: String(file.fields.caption ?? ''),
          fieldname: file.fieldName,
          filename: file.filename,
          declared: file.declaredType ?? '(none)',
          type: file.contentType,
          route: file.request.url
        },
        ContentDisposition: attachment?.(file.originalName)
      })
    }))
    const caption = 'Été à Paris ☀ "quoted" 100%'
    // A real double quote, an apostrophe, parentheses, a backslash, a literal
    // %0D%0A (what browsers send for a CR LF in a name: busboy drops a part
    // whose name holds a bare CR or LF), and characters outside Latin-1.
    const hostile = 'rapport "final"; filename=evil.html %0D%0AX-Injected: 1 \\ l\'été (1) ☃ 東京.bin'
    for (const { label, size, parts } of sizes) {
      const data = randomBytes(size)
      const response = await postWithFilenameStar(`${url}/upload`, [{ name: 'caption', value: caption }], {
        name: 'upload', filename: hostile, contentType: 'application/x-test', data
      })
      t.equal(response.status, 200, `${label}: HTTP 200 ${response.status === 200 ? '' : response.body}`)
      if (response.status !== 200) continue
      const file = response.json()
      t.equal(file.originalName, hostile, `${label}: the server saw the hostile name as sent`)
      t.equal(file.parts, parts, `${label}: parts`)
      const h = await head(client, bucket, file.key)
      // The caption holds a `%`: only an encoding that escapes it too decodes back.
      t.same(Object.fromEntries(Object.entries(h.Metadata ?? {}).map(([name, value]) => [name, decoded(value)])), {
        caption,
        fieldname: 'upload',
        filename: sanitiseFilename(hostile),
        declared: 'application/x-test',
        type: 'application/x-test',
        route: '/upload'
      }, `${label}: metadata computed from the file's context and the caption sent before it`)
      asciiMetadata(t, h.Metadata, label)
      const disposition = h.ContentDisposition ?? ''
      t.notMatch(disposition, /[\r\n]/, `${label}: no CR/LF in Content-Disposition`)
      const parsed = parseAttachment(disposition)
      t.ok(parsed, `${label}: Content-Disposition is attachment; filename="<ASCII>"; filename*=UTF-8''<RFC 8187> — got ${JSON.stringify(disposition)}`)
      t.equal(parsed?.name, hostile, `${label}: filename* decodes back to the original name`)
      t.equal(file.etag, bareEtag(h.ETag), `${label}: S3File.etag is the object's ETag`)
      t.equal((await digest(client, bucket, file.key)).sha256, sha256(data), `${label}: stored bytes identical`)
    }
    await expectNoPendingUploads(t, server, client, bucket)
  })

  t.test(`mode ${mode}: per-call objectParams are merged over the registered ones, Metadata key by key`, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const { url } = await startApp(t, server, withObjectParams({
      bucket,
      mode,
      partSize: P,
      objectParams: { CacheControl: 'public, max-age=60', ContentLanguage: 'en', Metadata: { owner: 'u1', team: 'a' } }
    }), (app) => {
      app.post('/custom', async (request) => await s3FileWith(request, { objectParams: { CacheControl: 'no-store', Metadata: { team: 'b', extra: 'x' } } }))
    })
    for (const { label, size } of sizes) {
      for (const route of ['/custom', '/upload'] as const) {
        const data = randomBytes(size)
        const response = await postMultipart(`${url}${route}`, [{ name: 'upload', filename: `merge-${label}.bin`, contentType: 'application/x-test', data }])
        t.equal(response.status, 200, `${route} ${label}: HTTP 200 ${response.status === 200 ? '' : response.body}`)
        if (response.status !== 200) continue
        const file = response.json()
        const h = await head(client, bucket, file.key)
        if (route === '/custom') {
          t.equal(h.CacheControl, 'no-store', `${route} ${label}: the call's Cache-Control wins`)
          t.same(h.Metadata, { owner: 'u1', team: 'b', extra: 'x' }, `${route} ${label}: Metadata merged key by key`)
        } else {
          t.equal(h.CacheControl, 'public, max-age=60', `${route} ${label}: the registered Cache-Control (nothing leaked from the other route)`)
          t.same(h.Metadata, { owner: 'u1', team: 'a' }, `${route} ${label}: the registered Metadata`)
        }
        t.equal(h.ContentLanguage, 'en', `${route} ${label}: registered settings the call does not name are kept`)
        t.equal((await digest(client, bucket, file.key)).sha256, sha256(data), `${route} ${label}: stored bytes identical`)
      }
    }
    await expectNoPendingUploads(t, server, client, bucket)
  })

  t.test(`mode ${mode}: what goes on the wire — ACL only when set; object settings on the object-creating request`, async (t) => {
    const bucket = await freshBucket(t, server, client)
    // A pass-through proxy (no rule ever matches) that notes every request's headers.
    const proxy = await startFaultProxy({ target: server.endpoint })
    t.teardown(async () => { await proxy.close() })
    let seen: Array<{ op: string, headers: FaultRequest['headers'] }> = []
    const opOf = (request: FaultRequest): string =>
      isPutObject(request) ? 'PutObject' : isCreateMultipart(request) ? 'CreateMultipartUpload' : isUploadPart(request) ? 'UploadPart' : `${request.method} ${[...request.query.keys()].join(',')}`
    proxy.setRules([{
      match: (request) => {
        if (request.path.startsWith(`/${bucket}/`)) seen.push({ op: opOf(request), headers: request.headers })
        return false
      },
      fault: { kind: 'reset' }
    }])
    const { url } = await startApp(t, server, withObjectParams({
      bucket,
      mode,
      partSize: P,
      s3: { ...pluginS3Options(server), endpoint: proxy.endpoint },
      objectParams: { CacheControl: 'no-cache', Metadata: { owner: 'u1' }, Tagging: 'a=b', StorageClass: 'REDUCED_REDUNDANCY', ServerSideEncryption: 'AES256' }
    }), (app) => {
      app.post('/acl', async (request) => await s3FileWith(request, { objectParams: { ACL: 'bucket-owner-full-control' } }))
    })
    const objectHeaders = ['x-amz-acl', 'x-amz-meta-owner', 'cache-control', 'x-amz-tagging', 'x-amz-storage-class', 'x-amz-server-side-encryption']
    for (const { label, size, parts } of sizes) {
      for (const route of ['/upload', '/acl'] as const) {
        seen = []
        const response = await postMultipart(`${url}${route}`, [{ name: 'upload', filename: `wire-${label}.bin`, contentType: 'application/x-test', data: randomBytes(size) }])
        t.equal(response.status, 200, `${route} ${label}: HTTP 200 ${response.status === 200 ? '' : response.body}`)
        const creating = seen.filter(({ op }) => op === (parts === 0 ? 'PutObject' : 'CreateMultipartUpload'))
        t.equal(creating.length, 1, `${route} ${label}: one ${parts === 0 ? 'PutObject' : 'CreateMultipartUpload'} (${seen.map(({ op }) => op).join(', ')})`)
        const headers = creating[0]?.headers ?? {}
        t.equal(headers['x-amz-acl'], route === '/acl' ? 'bucket-owner-full-control' : undefined, `${route} ${label}: x-amz-acl ${route === '/acl' ? 'as set' : 'absent when not set'}`)
        t.same([headers['cache-control'], headers['x-amz-meta-owner'], headers['x-amz-tagging'], headers['x-amz-storage-class'], headers['x-amz-server-side-encryption']],
          ['no-cache', 'u1', 'a=b', 'REDUCED_REDUNDANCY', 'AES256'], `${route} ${label}: the object settings on it`)
        t.same(seen.filter(({ op }) => op !== 'PutObject' && op !== 'CreateMultipartUpload').flatMap(({ op, headers }) => objectHeaders.filter((name) => headers[name] !== undefined).map((name) => `${op}: ${name}`)),
          [], `${route} ${label}: no ACL or object setting on any other request (UploadPart, Complete, …)`)
        if (route === '/upload') t.notOk(seen.some(({ headers }) => headers['x-amz-acl'] !== undefined), `${route} ${label}: no request carries an ACL`)
      }
    }
    await expectNoPendingUploads(t, server, client, bucket)
  })

  t.test(`mode ${mode}: SSE-KMS with the server's key (and a bucket key)`, { skip: kms.skip }, async (t) => {
    const keyId = kms.keyId ?? ''
    const bucket = await freshBucket(t, server, client)
    const { url } = await startApp(t, server, withObjectParams({
      bucket, mode, partSize: P, objectParams: { ServerSideEncryption: 'aws:kms', SSEKMSKeyId: keyId, BucketKeyEnabled: true }
    }))
    for (const { label, size, parts } of sizes) {
      const data = randomBytes(size)
      const response = await postMultipart(`${url}/upload`, [{ name: 'upload', filename: `kms-${label}.bin`, contentType: 'application/x-test', data }])
      t.equal(response.status, 200, `${label}: HTTP 200 ${response.status === 200 ? '' : response.body}`)
      if (response.status !== 200) continue
      const file = response.json()
      t.equal(file.parts, parts, `${label}: parts`)
      const h = await head(client, bucket, file.key)
      t.equal(h.ServerSideEncryption, 'aws:kms', `${label}: encrypted with SSE-KMS`)
      // MinIO reports the key as arn:aws:kms:<name>; AWS as the key's full ARN.
      t.ok((h.SSEKMSKeyId ?? '') === keyId || (h.SSEKMSKeyId ?? '').endsWith(`:${keyId}`) || (h.SSEKMSKeyId ?? '').endsWith(`/${keyId}`), `${label}: with the key asked for (${h.SSEKMSKeyId})`)
      // Under SSE-KMS a single PUT's ETag is not the MD5 of the bytes: the plugin must report S3's, not compute one.
      t.equal(file.etag, bareEtag(h.ETag), `${label}: S3File.etag is the object's ETag`)
      t.equal((await digest(client, bucket, file.key)).sha256, sha256(data), `${label}: stored bytes identical`)
    }
    await expectNoPendingUploads(t, server, client, bucket)
  })

  t.test(`mode ${mode}: SSE-S3 (AES256)`, { skip: kms.skip }, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const { url } = await startApp(t, server, withObjectParams({ bucket, mode, partSize: P, objectParams: { ServerSideEncryption: 'AES256' } }))
    for (const { label, size, parts } of sizes) {
      const data = randomBytes(size)
      const response = await postMultipart(`${url}/upload`, [{ name: 'upload', filename: `sse-s3-${label}.bin`, contentType: 'application/x-test', data }])
      t.equal(response.status, 200, `${label}: HTTP 200 ${response.status === 200 ? '' : response.body}`)
      if (response.status !== 200) continue
      const file = response.json()
      t.equal(file.parts, parts, `${label}: parts`)
      const h = await head(client, bucket, file.key)
      t.equal(h.ServerSideEncryption, 'AES256', `${label}: encrypted with SSE-S3`)
      t.equal(file.etag, bareEtag(h.ETag), `${label}: S3File.etag is the object's ETag`)
      t.equal((await digest(client, bucket, file.key)).sha256, sha256(data), `${label}: stored bytes identical`)
    }
    await expectNoPendingUploads(t, server, client, bucket)
  })

  t.test(`mode ${mode}: metadata beyond S3's 2 KiB is a 4xx, nothing stored, no upload left open`, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const { url } = await startApp(t, server, withObjectParams({
      bucket, mode, partSize: P, objectParams: (file) => ({ Metadata: { caption: String(file.fields.caption ?? '') } })
    }))
    // 2,100 ASCII bytes; and 300 snowmen: 900 bytes of UTF-8, 2,700 once percent-encoded as sent.
    for (const caption of ['x'.repeat(2100), '☃'.repeat(300)]) {
      for (const { label, size } of sizes) {
        const response = await postMultipart(`${url}/upload`, [
          { name: 'caption', value: caption },
          { name: 'upload', filename: `big-meta-${label}.bin`, contentType: 'application/x-test', data: randomBytes(size) }
        ])
        const what = `${caption.length} × ${JSON.stringify(caption[0])}, ${label}`
        t.ok(response.status >= 400 && response.status < 500, `${what}: a client error (HTTP ${response.status}: ${response.body})`)
        t.match(response.body, /metadata/i, `${what}: the error says it is the metadata`)
      }
    }
    t.same(await listKeys(client, bucket), [], 'nothing stored')
    await expectNoPendingUploads(t, server, client, bucket)
    // Within the bound, the same route stores (the limit is S3's, not tighter).
    const data = randomBytes(1024)
    const response = await postMultipart(`${url}/upload`, [
      { name: 'caption', value: 'y'.repeat(1500) },
      { name: 'upload', filename: 'fits.bin', contentType: 'application/x-test', data }
    ])
    t.equal(response.status, 200, `1,500 bytes of metadata are stored ${response.status === 200 ? '' : response.body}`)
    if (response.status === 200) t.equal((await head(client, bucket, response.json().key)).Metadata?.caption, 'y'.repeat(1500))
    await expectNoPendingUploads(t, server, client, bucket)
  })
}

t.test('attachment() makes a safe Content-Disposition whatever the name', async (t) => {
  if (attachment === undefined) {
    t.fail('the package exports attachment()')
    return
  }
  const names = [
    'plain.txt',
    'a"b.txt',
    'x\\"; filename=evil.html',
    'a\r\nSet-Cookie: x=1.txt',
    'tab\there\u0000nul\u007fdel.bin',
    "l'été (1) *final*.pdf",
    '東京 ☃.png',
    '100% sure.txt',
    '\u202egnp.exe'
  ]
  for (const name of names) {
    const header = attachment(name)
    t.notMatch(header, /[\r\n\u0000-\u001f\u007f-\uffff]/, `${JSON.stringify(name)}: only printable ASCII in the header`)
    const parsed = parseAttachment(header)
    t.ok(parsed, `${JSON.stringify(name)}: attachment; filename="<ASCII>"; filename*=UTF-8''<RFC 8187> — got ${JSON.stringify(header)}`)
    // Names without control characters come back whole; a control character may be dropped.
    if (!/[\u0000-\u001f\u007f\u202e]/.test(name)) t.equal(parsed?.name, name, `${JSON.stringify(name)}: filename* decodes back`)
  }
})
