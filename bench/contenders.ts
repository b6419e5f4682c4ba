// The contenders, all with the same part size and parts in flight per file:
// (a)–(d) and the seed (s) take multipart POSTs (or go straight to S3), (e) and
// (f) speak tus. Adding one: an id, a label, and how to start its server
// (`server` for a Node script, `launch` for anything else, neither for the load
// client sending to S3 itself); `unavailable` says why it cannot run on this machine.
import { fileURLToPath } from 'node:url'
import { prepareSeed, seedDescription, startSeedServer } from './contenders/seed.ts'
import type { GcSeen } from '../test/support/gc-counter.mjs'

export const PART_SIZE = 5 * 1024 * 1024
export const PART_CONCURRENCY = 4

export type ContenderId = 'a' | 'b' | 'c' | 'd' | 'e' | 'f' | 'r' | 's'

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
  health: () => Promise<{ maxRss?: number, eventLoopDelayMs?: { p99: number, max: number }, gc?: GcSeen, stats?: Record<string, unknown> }>
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
  /**
   * Stores nothing (the receive floor): the run checks the bytes its /health
   * counted (`stats.bytesReceived`) instead of the objects in the bucket.
   */
  receiveOnly?: boolean
  /** Runs only these scenarios (by id), when set. */
  onlyScenarios?: string[]
}

const uploadServer = fileURLToPath(new URL('../test/support/upload-server.mjs', import.meta.url))
const libStorageServer = fileURLToPath(new URL('./contenders/lib-storage-server.mjs', import.meta.url))
const tusS3StoreServer = fileURLToPath(new URL('./contenders/tus-s3-store-server.mjs', import.meta.url))
const receiveFloorServer = fileURLToPath(new URL('./contenders/receive-floor-server.mjs', import.meta.url))

/** Node reads NODE_EXTRA_CA_CERTS at start; worker threads share the process's trust store. */
function trust (s3: S3Access): Record<string, string> {
  return s3.caFile === undefined ? {} : { NODE_EXTRA_CA_CERTS: s3.caFile }
}

function withoutCa (s3: S3Access): Omit<S3Access, 'caFile'> {
  const { caFile: _caFile, ...rest } = s3
  return rest
}

function plugin (mode: 'workers' | 'inline', extra: Record<string, unknown> = {}) {
  return (bucket: string, s3: S3Access) => ({
    script: uploadServer,
    env: {
      ...trust(s3),
      UPLOAD_SERVER_OPTIONS: JSON.stringify({
        bucket,
        s3: { ...withoutCa(s3), forcePathStyle: true },
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
      env: { ...trust(s3), BENCH_SERVER_OPTIONS: JSON.stringify({ bucket, s3: withoutCa(s3), partSize: PART_SIZE, queueSize: PART_CONCURRENCY }) }
    })
  },
  { id: 'd', label: 'direct to S3 (the limit)' },
  { id: 'e', label: 'fastify-s3-chunk tus, workers', server: plugin('workers', { tus: { prefix: '/files' } }), protocol: 'tus', tusPath: '/files' },
  {
    id: 'f',
    label: '@tus/server + @tus/s3-store',
    server: (bucket, s3) => ({
      script: tusS3StoreServer,
      env: { ...trust(s3), BENCH_SERVER_OPTIONS: JSON.stringify({ bucket, s3: withoutCa(s3), partSize: PART_SIZE }) }
    }),
    protocol: 'tus',
    tusPath: '/files',
    tempDirEnv: 'TMPDIR',
    // @tus/s3-store keeps an empty <upload id>.info object (its state, in the object's metadata) after the upload completes.
    stateObjects: /\.info$/
  },
  {
    // Not a way to upload: what taking a multipart body in costs a Fastify server's
    // main thread before any S3 work, the floor under (a)'s main thread.
    id: 'r',
    label: 'receive floor: @fastify/multipart and one copy, nothing sent',
    server: () => ({ script: receiveFloorServer, env: {} }),
    receiveOnly: true,
    onlyScenarios: ['one-large', 'concurrent']
  },
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
export const RATIOS: Array<[ContenderId, ContenderId]> = [['a', 'b'], ['a', 'c'], ['a', 'd'], ['a', 's'], ['b', 'c'], ['e', 'f']]
