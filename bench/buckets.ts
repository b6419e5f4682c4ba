// The bench's buckets: one per contender, checked and emptied after every run
// (so no run's objects weigh on the next) and deleted at the end.
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  type S3Client
} from '@aws-sdk/client-s3'

// Pages of 1,000 keys: enough for any scenario here (200 files) many times over.
const MAX_PAGES = 100

export async function createBucket (client: S3Client, bucket: string): Promise<void> {
  await client.send(new CreateBucketCommand({ Bucket: bucket }))
}

/** Objects stored in the bucket and their total size; keys matching `ignore` are only counted apart (`ignored`). */
export async function storedObjects (client: S3Client, bucket: string, ignore?: RegExp): Promise<{ count: number, bytes: number, ignored: number }> {
  let count = 0
  let bytes = 0
  let ignored = 0
  let token: string | undefined
  for (let page = 0; page < MAX_PAGES; page++) {
    const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }))
    for (const object of listed.Contents ?? []) {
      if (ignore?.test(object.Key ?? '') === true) {
        ignored += 1
        continue
      }
      count += 1
      bytes += object.Size ?? 0
    }
    token = listed.NextContinuationToken
    if (listed.IsTruncated !== true || token === undefined) break
  }
  return { count, bytes, ignored }
}

/** Aborts pending multipart uploads and deletes every object; returns how many uploads were left pending. */
export async function emptyBucket (client: S3Client, bucket: string): Promise<number> {
  let pending = 0
  for (let page = 0; page < MAX_PAGES; page++) {
    const listed = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }))
    const uploads = listed.Uploads ?? []
    if (uploads.length === 0) break
    for (const upload of uploads) {
      pending += 1
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.Key, UploadId: upload.UploadId }))
    }
  }
  for (let page = 0; page < MAX_PAGES; page++) {
    const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket }))
    const keys = (listed.Contents ?? []).map((object) => ({ Key: object.Key ?? '' }))
    if (keys.length === 0) break
    await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }))
  }
  return pending
}

export async function deleteBucket (client: S3Client, bucket: string): Promise<void> {
  await emptyBucket(client, bucket)
  await client.send(new DeleteBucketCommand({ Bucket: bucket }))
}
