// The coordinator's dependencies for unit tests against a mocked S3 client:
// inline sending, 1 KiB parts, 2 in flight, a 1 MiB budget and file limit —
// small enough that a test's source of a few KiB makes several parts.
import type { S3Client } from '@aws-sdk/client-s3'
import type { UploadDeps } from '../../lib/upload/coordinator.ts'
import { PartBufferPool } from '../../lib/upload/part-buffer-pool.ts'
import { createInlineSender } from '../../lib/upload/part-sender.ts'

/** The part size of these deps. */
export const UNIT_PART = 1024

/** `retry` and `checksum` (default 'none') go to the sender too; anything else given replaces the default. */
export function unitUploadDeps (client: S3Client, options: Pick<UploadDeps, 'retry'> & Partial<UploadDeps>): UploadDeps {
  const checksum = options.checksum ?? 'none'
  return {
    client,
    sender: createInlineSender(client, { checksum, retry: options.retry }),
    partSize: () => UNIT_PART,
    partConcurrency: 2,
    maxFileSize: 1024 * 1024,
    maxParts: 10_000,
    buffers: new PartBufferPool(1024 * 1024),
    counters: { uploadsInFlight: 0, partsInFlight: 0 },
    ...options,
    checksum
  }
}
