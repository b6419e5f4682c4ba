// The contenders, all with the same part size and parts in flight per file:
// (a)–(d) take multipart POSTs (or go straight to S3), (e) and (f) speak tus.
import { fileURLToPath } from 'node:url'

export const PART_SIZE = 5 * 1024 * 1024
export const PART_CONCURRENCY = 4

export type ContenderId = 'a' | 'b' | 'c' | 'd' | 'e' | 'f'

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
  /** How the load client sends files: multipart POSTs to /upload (the default), or tus to `tusPath`. */
  protocol?: 'multipart' | 'tus'
  /** Where the tus endpoint is (tus contenders). */
  tusPath?: string
  /**
   * An environment variable naming a temporary directory the server may use
   * (TMPDIR for @tus/s3-store's part files): the run makes a fresh one,
   * counts what is left in it once the server is gone, and removes it.
   */
  tempDirEnv?: string
  /** Objects the server keeps beside each file by its design (not counted as files; reported). */
  stateObjects?: RegExp
}

const uploadServer = fileURLToPath(new URL('../test/support/upload-server.mjs', import.meta.url))
const libStorageServer = fileURLToPath(new URL('./contenders/lib-storage-server.mjs', import.meta.url))
const tusS3StoreServer = fileURLToPath(new URL('./contenders/tus-s3-store-server.mjs', import.meta.url))

function plugin (mode: 'workers' | 'inline', extra: Record<string, unknown> = {}) {
  return (bucket: string, s3: S3Access) => ({
    script: uploadServer,
    env: {
      UPLOAD_SERVER_OPTIONS: JSON.stringify({
        bucket,
        s3: { ...s3, forcePathStyle: true },
        mode,
        partSize: PART_SIZE,
        partConcurrency: PART_CONCURRENCY,
        ...extra
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
  { id: 'd', label: 'direct to S3 (the limit)', server: null },
  { id: 'e', label: 'fastify-s3-chunk tus, workers', server: plugin('workers', { tus: { prefix: '/files' } }), protocol: 'tus', tusPath: '/files' },
  {
    id: 'f',
    label: '@tus/server + @tus/s3-store',
    server: (bucket, s3) => ({
      script: tusS3StoreServer,
      env: { BENCH_SERVER_OPTIONS: JSON.stringify({ bucket, s3, partSize: PART_SIZE }) }
    }),
    protocol: 'tus',
    tusPath: '/files',
    tempDirEnv: 'TMPDIR',
    // @tus/s3-store keeps an empty <upload id>.info object (its state, in the object's metadata) after the upload completes.
    stateObjects: /\.info$/
  }
]
