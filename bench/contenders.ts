// The contenders, all with the same part size and parts in flight per file.
// Adding one: an id, a label, and how to start its server (`server` for a
// Node script, `launch` for anything else, neither for the load client
// sending to S3 itself); `unavailable` says why it cannot run on this machine.
import { fileURLToPath } from 'node:url'
import { prepareSeed, seedDescription, startSeedServer } from './contenders/seed.ts'

export const PART_SIZE = 5 * 1024 * 1024
export const PART_CONCURRENCY = 4

export type ContenderId = 'a' | 'b' | 'c' | 'd' | 's'

export interface S3Access {
  region: string
  endpoint: string
  credentials: { accessKeyId: string, secretAccessKey: string }
  /** PEM the contender must trust when the endpoint is https with the bench's own certificate. */
  caFile?: string
}

/** A running contender server: what the run needs of it. */
export interface ContenderServer {
  url: string
  /** The server's root process: its threads and child processes are measured from /proc. */
  pid: number
  /** What the server says of itself (Node contenders: peak RSS and event-loop delay). */
  health: () => Promise<{ maxRss?: number, eventLoopDelayMs?: { p99: number, max: number } }>
  stop: (graceMs?: number) => Promise<void>
}

export interface Contender {
  id: ContenderId
  label: string
  /** How to start its server as a Node script run by plain node (and its environment). */
  server?: (bucket: string, s3: S3Access) => { script: string, env: Record<string, string> }
  /** How to start a server that is not a Node script. */
  launch?: (bucket: string, s3: S3Access) => Promise<ContenderServer>
  /** Called once before the runs: null when it can run here, else the reason it is skipped (printed). */
  unavailable?: (log: (line: string) => void) => string | null
  /** Several processes (a pre-fork server): "main thread" has no single meaning, the report shows only all threads. */
  multiProcess?: boolean
}

const uploadServer = fileURLToPath(new URL('../test/support/upload-server.mjs', import.meta.url))
const libStorageServer = fileURLToPath(new URL('./contenders/lib-storage-server.mjs', import.meta.url))

/** Node reads NODE_EXTRA_CA_CERTS at start; worker threads share the process's trust store. */
function trust (s3: S3Access): Record<string, string> {
  return s3.caFile === undefined ? {} : { NODE_EXTRA_CA_CERTS: s3.caFile }
}

function withoutCa (s3: S3Access): Omit<S3Access, 'caFile'> {
  const { caFile: _caFile, ...rest } = s3
  return rest
}

function plugin (mode: 'workers' | 'inline') {
  return (bucket: string, s3: S3Access) => ({
    script: uploadServer,
    env: {
      ...trust(s3),
      UPLOAD_SERVER_OPTIONS: JSON.stringify({
        bucket,
        s3: { ...withoutCa(s3), forcePathStyle: true },
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
      env: { ...trust(s3), BENCH_SERVER_OPTIONS: JSON.stringify({ bucket, s3: withoutCa(s3), partSize: PART_SIZE, queueSize: PART_CONCURRENCY }) }
    })
  },
  { id: 'd', label: 'direct to S3 (the limit)' },
  {
    id: 's',
    label: 'the seed: s3chunkuploader (Django, gunicorn)',
    launch: startSeedServer,
    unavailable: prepareSeed,
    multiProcess: true
  }
]

export { seedDescription }

/** Throughput ratios the report shows, [numerator, denominator]: workers mode against each of the others first. */
export const RATIOS: Array<[ContenderId, ContenderId]> = [['a', 'b'], ['a', 'c'], ['a', 'd'], ['a', 's'], ['b', 'c']]
