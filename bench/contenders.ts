// The four contenders, all with the same part size and parts in flight per file.
import { fileURLToPath } from 'node:url'

export const PART_SIZE = 5 * 1024 * 1024
export const PART_CONCURRENCY = 4

export type ContenderId = 'a' | 'b' | 'c' | 'd'

export interface S3Access {
  region: string
  endpoint: string
  credentials: { accessKeyId: string, secretAccessKey: string }
}

export interface Contender {
  id: ContenderId
  label: string
  /** How to start its server (a script run by plain node, and its environment); null: the load client sends to S3 itself. */
  server: ((bucket: string, s3: S3Access) => { script: string, env: Record<string, string> }) | null
}

const uploadServer = fileURLToPath(new URL('../test/support/upload-server.mjs', import.meta.url))
const libStorageServer = fileURLToPath(new URL('./contenders/lib-storage-server.mjs', import.meta.url))

function plugin (mode: 'workers' | 'inline') {
  return (bucket: string, s3: S3Access) => ({
    script: uploadServer,
    env: {
      UPLOAD_SERVER_OPTIONS: JSON.stringify({
        bucket,
        s3: { ...s3, forcePathStyle: true },
        mode,
        partSize: PART_SIZE,
        partConcurrency: PART_CONCURRENCY
      })
    }
  })
}

export const contenders: Contender[] = [
  { id: 'a', label: 'fastify-s3-chunk, workers', server: plugin('workers') },
  { id: 'b', label: 'fastify-s3-chunk, inline', server: plugin('inline') },
  {
    id: 'c',
    label: '@fastify/multipart + lib-storage',
    server: (bucket, s3) => ({
      script: libStorageServer,
      env: { BENCH_SERVER_OPTIONS: JSON.stringify({ bucket, s3, partSize: PART_SIZE, queueSize: PART_CONCURRENCY }) }
    })
  },
  { id: 'd', label: 'direct to S3 (the limit)', server: null }
]
