// Attack: terminate (DELETE) a tus upload while one of its PATCHes runs — after the PATCH has
// made the upload's multipart upload (its first whole part in S3) and before it records it in
// the state. The PATCH can no longer record it, and must abort it: a multipart upload no state
// names is on the bucket's bill until a lifecycle rule or the sweep finds it. (This left one
// open before 67c6ea7.)
//
// And once a PATCH has the whole file and is finishing it (Complete, then onUploadComplete), a
// DELETE must not answer 204 "terminated" for a file that is then stored and accepted anyway.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { testFaultProxy, type FaultRequest } from '../support/fault-proxy.ts'
import { signal } from '../support/signal.ts'
import { freshBucket, listKeys, needsStrictS3, pendingUploads, pluginS3Options, testClient, testS3 } from '../support/s3.ts'
import { createUpload, expectClean, expectOnlyObject, patchUpload, startTus, tusRequest } from '../support/tus.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

t.test('termination while a PATCH runs: the PATCH is refused and leaves no multipart upload behind', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const { endpoint } = await startTus(t, server, bucket)
  const url = await createUpload(endpoint, 20 * MiB)
  const answered = new Promise<number>((resolve, reject) => {
    const request = httpRequest(url, { method: 'PATCH', headers: { 'tus-resumable': '1.0.0', 'upload-offset': '0', 'content-type': 'application/offset+octet-stream', 'content-length': String(7 * MiB) } }, (response) => {
      response.resume()
      resolve(response.statusCode ?? 0)
    })
    request.on('error', reject)
    request.write(randomBytes(6 * MiB))
    t.teardown(() => { request.destroy() })
    void (async () => {
      // Bounded: the part is in S3 (its multipart upload listed) within 10 s, or the test fails below.
      for (let round = 0; round < 100 && (await pendingUploads(client, bucket)).length === 0; round++) await new Promise((resolve) => setTimeout(resolve, 100))
      t.equal((await pendingUploads(client, bucket)).length, 1, 'the PATCH made the multipart upload')
      t.equal((await tusRequest(url, 'DELETE')).status, 204, 'DELETE while the PATCH runs')
      request.end(randomBytes(MiB))
    })().catch(reject)
  })
  const status = await answered
  t.ok(status === 404 || status === 409, `the PATCH is refused (${status}): its upload is gone`)
  t.equal((await tusRequest(url, 'HEAD')).status, 404)
  t.same(await listKeys(client, bucket), [])
  await expectClean(t, client, bucket)
})

t.test('DELETE while a PATCH finishes the upload: refused (409), never 204 for a file that is then stored', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  // The app's hook holds the finishing PATCH (Complete done, the file not yet accepted) until the DELETE was answered.
  const inHook = signal()
  const hookMayReturn = signal()
  const accepted: string[] = []
  const { endpoint } = await startTus(t, server, bucket, {
    onUploadComplete: async (file) => {
      inHook.fire()
      await hookMayReturn.fired
      accepted.push(file.key)
    }
  })
  t.teardown(hookMayReturn.fire)
  const data = randomBytes(6 * MiB)
  const url = await createUpload(endpoint, data.byteLength)
  const patch = patchUpload(url, 0, data)
  await inHook.fired
  const deleted = await tusRequest(url, 'DELETE')
  hookMayReturn.fire()
  t.equal(deleted.status, 409, `the DELETE is refused while the upload finishes (${deleted.status})`)
  t.equal((await patch).status, 204, 'the PATCH finishes')
  t.equal(accepted.length, 1, 'the app accepted the file')
  await expectOnlyObject(t, client, bucket, data)
  t.equal((await tusRequest(url, 'DELETE')).status, 404, 'a DELETE once it is finished: 404 (nothing to terminate)')
  await expectClean(t, client, bucket)
})

t.test('DELETE just before a finishing PATCH marks the upload: the DELETE wins, nothing is stored', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  // The PATCH's state writes go through a proxy that holds its second rewrite (the hold is the
  // first, the mark "finishing" the second; leaseTimeout is long enough that no renewal comes
  // between) for 2 s: the DELETE, sent meanwhile, takes the upload first.
  const proxy = await testFaultProxy(t, server.endpoint)
  let rewrites = 0
  const marking = signal()
  proxy.setRules([{
    match: (request) => {
      const rewrite = request.method === 'PUT' && request.path.includes('/.tus/') && !request.path.includes('.tail.') && request.headers['if-match'] !== undefined
      if (!rewrite || ++rewrites !== 2) return false
      marking.fire()
      return true
    },
    fault: { kind: 'delay', ms: 2000 }
  }])
  const { endpoint } = await startTus(t, server, bucket, { s3: { ...pluginS3Options(server), endpoint: proxy.endpoint }, tus: { leaseTimeout: 60 } })
  const data = randomBytes(6 * MiB)
  const url = await createUpload(endpoint, data.byteLength)
  const patch = patchUpload(url, 0, data)
  await marking.fired
  t.equal((await tusRequest(url, 'DELETE')).status, 204, 'the DELETE terminates the upload')
  const patched = await patch
  t.equal(patched.status, 409, `the PATCH, whose mark lost to the DELETE, fails (${patched.status})`)
  t.equal((await tusRequest(url, 'HEAD')).status, 404)
  t.same(await listKeys(client, bucket), [], 'no object stored')
  await expectClean(t, client, bucket)
})

t.test('a DELETE cut short once it took the upload: 404 from then on, and the sweep finishes its cleanup at once', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const proxy = await testFaultProxy(t, server.endpoint)
  const { app, endpoint } = await startTus(t, server, bucket, { s3: { ...pluginS3Options(server), endpoint: proxy.endpoint } })
  const url = await createUpload(endpoint, 20 * MiB)
  t.equal((await patchUpload(url, 0, randomBytes(6 * MiB))).status, 204, 'a first part stored')
  // S3 refuses the DELETE's cleanup: the abort of the multipart upload and the removal of the state.
  proxy.setRules([{ match: (request) => request.method === 'DELETE' && (request.query.has('uploadId') || (request.path.includes('/.tus/') && !request.path.includes('.tail.'))), fault: { kind: 'status', status: 500 } }])
  const deleted = await tusRequest(url, 'DELETE')
  t.ok(deleted.status >= 500, `the DELETE fails (${deleted.status})`)
  proxy.setRules([])
  t.equal((await tusRequest(url, 'HEAD')).status, 404, 'yet the upload is over: HEAD 404')
  t.equal((await patchUpload(url, 6 * MiB, randomBytes(10))).status, 404, 'and PATCH 404')
  t.equal((await pendingUploads(client, bucket)).length, 1, 'its multipart upload is still open')
  const swept = await app.s3Chunk.abortStaleUploads({ olderThan: 24 * 3600 * 1000 })
  t.equal(swept.aborted.length, 1, 'the sweep aborts it, though the upload had not expired')
  await expectClean(t, client, bucket)
})

/** A rewrite of a tus state object (If-Match): a hold taken, renewed, marked or given back. */
const isStateRewrite = (request: FaultRequest): boolean => request.method === 'PUT' && request.path.includes('/.tus/') && !request.path.includes('.tail.') && request.headers['if-match'] !== undefined
/** The removal of a tus state object (not a tail). */
const isStateRemoval = (request: FaultRequest): boolean => request.method === 'DELETE' && request.path.includes('/.tus/') && !request.path.includes('.tail.')

// Found in review: one renewal refused while the upload finished stopped the renewals for good,
// the hold lapsed under a slow onUploadComplete, and a DELETE then answered 204 for the file
// the app went on to accept.
t.test('a renewal S3 refuses while the upload finishes: the hold is kept, and a DELETE is still 409', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const proxy = await testFaultProxy(t, server.endpoint)
  const inHook = signal()
  const hookMayReturn = signal()
  const accepted: string[] = []
  const { endpoint } = await startTus(t, server, bucket, {
    s3: { ...pluginS3Options(server), endpoint: proxy.endpoint },
    tus: { leaseTimeout: 1 },
    onUploadComplete: async (file) => { inHook.fire(); await hookMayReturn.fired; accepted.push(file.key) }
  })
  t.teardown(hookMayReturn.fire)
  const data = randomBytes(6 * MiB)
  const url = await createUpload(endpoint, data.byteLength)
  const patch = patchUpload(url, 0, data)
  await inHook.fired
  proxy.setRules([{ match: isStateRewrite, fault: { kind: 'status', status: 500 }, times: 1 }])
  // Bounded: renewals come every ~333 ms.
  for (let i = 0; i < 100 && proxy.stats().faults.status === 0; i++) await sleep(50)
  t.equal(proxy.stats().faults.status, 1, 'one renewal was refused')
  await sleep(1500) // longer than the hold (1 s): only renewals after the refused one keep it
  const deleted = await tusRequest(url, 'DELETE')
  hookMayReturn.fire()
  t.equal(deleted.status, 409, `the DELETE is refused while the upload finishes (${deleted.status})`)
  t.equal((await patch).status, 204, 'the PATCH finishes')
  t.equal(accepted.length, 1, 'the app accepted the file')
  await expectOnlyObject(t, client, bucket, data)
  await expectClean(t, client, bucket)
})

// Found in review: a finishing PATCH whose Complete and cleanup both failed left its mark, and
// every later PATCH carried it on, so a DELETE during any of them was refused.
t.test('a finishing mark left behind is not carried on: a DELETE during a later PATCH takes the upload', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const proxy = await testFaultProxy(t, server.endpoint)
  const { endpoint } = await startTus(t, server, bucket, { s3: { ...pluginS3Options(server), endpoint: proxy.endpoint }, tus: { leaseTimeout: 1 } })
  const url = await createUpload(endpoint, 20 * MiB)
  // Complete (POST ?uploadId) refused, and the removal of the state too: the mark stays.
  proxy.setRules([
    { match: (request) => request.method === 'POST' && request.query.has('uploadId'), fault: { kind: 'status', status: 500 } },
    { match: isStateRemoval, fault: { kind: 'status', status: 500 } }
  ])
  t.ok((await patchUpload(url, 0, randomBytes(20 * MiB))).status >= 500, 'the finishing PATCH fails')
  proxy.setRules([])
  await sleep(2500) // its hold lapses, and a whole lease (1 s) more: its PATCH is taken as gone
  const head = await tusRequest(url, 'HEAD')
  t.equal(head.status, 200, 'the upload is still there')
  const answered = new Promise<number>((resolve, reject) => {
    const request = httpRequest(url, { method: 'PATCH', headers: { 'tus-resumable': '1.0.0', 'upload-offset': head.headers.get('upload-offset') as string, 'content-type': 'application/offset+octet-stream', 'content-length': String(7 * MiB) } }, (response) => {
      response.resume()
      resolve(response.statusCode ?? 0)
    })
    request.on('error', reject)
    request.write(randomBytes(MiB))
    t.teardown(() => { request.destroy() })
    void (async () => {
      await sleep(500) // the PATCH has taken the hold
      t.equal((await tusRequest(url, 'DELETE')).status, 204, 'a DELETE during the later PATCH takes the upload')
      request.end(randomBytes(6 * MiB))
    })().catch(reject)
  })
  t.ok([404, 409].includes(await answered), 'the later PATCH is refused')
  t.same(await listKeys(client, bucket), [], 'no object')
  await expectClean(t, client, bucket)
})

// A finished upload whose state could not be removed (S3 refused; an instance dying there would
// leave the same): once its hold lapses, a DELETE finds the object and answers 404 — the object
// is the app's, as for any finished upload — rather than 204 "terminated", and removes the state.
t.test('a DELETE of a finished upload whose state stayed behind: 404, the object kept, the state removed', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const proxy = await testFaultProxy(t, server.endpoint)
  const { endpoint } = await startTus(t, server, bucket, { s3: { ...pluginS3Options(server), endpoint: proxy.endpoint }, tus: { leaseTimeout: 1 } })
  const data = randomBytes(6 * MiB)
  const url = await createUpload(endpoint, data.byteLength)
  proxy.setRules([{ match: isStateRemoval, fault: { kind: 'status', status: 500 } }])
  t.equal((await patchUpload(url, 0, data)).status, 204, 'the upload finishes (its state removal refused)')
  proxy.setRules([])
  await sleep(2500) // the finishing hold lapses, and a whole lease more
  t.equal((await tusRequest(url, 'DELETE')).status, 404, 'DELETE: 404, the upload had finished')
  await expectOnlyObject(t, client, bucket, data)
  await expectClean(t, client, bucket)
})

// Seen under load in the test above: a DELETE while a PATCH's tail object was on its way to S3.
// The PATCH's renewal then found the upload gone and failed the PATCH, whose failure path left
// the tail it had just written (named by no state) to the sweep.
t.test('a DELETE while a PATCH writes its tail: the tail is removed with the rest', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const proxy = await testFaultProxy(t, server.endpoint)
  const tailOnItsWay = signal()
  proxy.setRules([{
    match: (request) => {
      if (request.method !== 'PUT' || !request.path.includes('.tail.')) return false
      tailOnItsWay.fire()
      return true
    },
    fault: { kind: 'delay', ms: 2000 }
  }])
  // leaseTimeout 1 s: the PATCH renews its hold every ~333 ms, so it learns of the DELETE while its tail is held back.
  const { endpoint } = await startTus(t, server, bucket, { s3: { ...pluginS3Options(server), endpoint: proxy.endpoint }, tus: { leaseTimeout: 1 } })
  const url = await createUpload(endpoint, 20 * MiB)
  const patch = patchUpload(url, 0, randomBytes(7 * MiB)) // one part and a 2 MiB tail
  await tailOnItsWay.fired
  t.equal((await tusRequest(url, 'DELETE')).status, 204, 'DELETE while the tail is on its way')
  t.ok([404, 409].includes((await patch).status), 'the PATCH is refused')
  t.same(await listKeys(client, bucket), [], 'no object')
  await expectClean(t, client, bucket)
})
