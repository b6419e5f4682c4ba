import type { S3Client } from '@aws-sdk/client-s3'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Piscina } from 'piscina'
import type { EngineConfig } from '../options.js'
import { workerSettings, type WorkerS3Settings } from '../s3-client.js'
import { HEAD_BYTES, isShared, type PartMemory } from './part-buffer-pool.js'
import { partPolicyOf, type Envelope, type ObjectDone, type ObjectEnvelope, type ObjectTask, type PartDone, type PartEnvelope, type PartPolicy, type PartTask } from './part-task.js'
import type { PartSender } from './part-sender.js'
import { InvalidOptionError } from '../errors.js'
import { describeS3Error, storageFailure } from './s3-failure.js'
import { failureInfo, putObjectWithRetries } from './send-part.js'

/** What each worker thread is started with: plain data, its S3 client is built from it. */
export interface UploadWorkerData {
  s3: WorkerS3Settings
  policy: PartPolicy
}

/**
 * The worker file beside the package: compiled, this file is dist/lib/upload/*.js
 * and the worker dist/workers/*.js; run from source (tsx) both are .ts. Computed
 * on first use, not at import: inside an app bundled to CommonJS `import.meta.url`
 * is undefined, and such an app names its own copy with `workers.filename`.
 */
export function defaultWorkerFile (): string {
  const here = (import.meta as { url?: string }).url
  if (typeof here !== 'string') {
    throw new InvalidOptionError('"workers.filename": required when the plugin runs from a bundle (it cannot locate its worker file); see "Bundling" in the README')
  }
  const extension = here.endsWith('.ts') ? '.ts' : '.js'
  return new URL(`../../workers/upload-part${extension}`, here).href
}

/** The pool-backed sender; `pool` is exposed for the plugin's own tests (thread crashes), not for apps. */
export interface WorkerPoolSender extends PartSender {
  readonly pool: Piscina<PartTask | ObjectTask, PartEnvelope | ObjectEnvelope>
}

/**
 * Mode `workers`: parts, and the PutObject of a file of one part, go to a Piscina pool; each thread has its own
 * long-lived S3 client. Whole parts are SharedArrayBuffers (the engine's pool
 * is shared in this mode), which the thread reads in place; a small part in
 * an ArrayBuffer is moved to the thread and back. With a credential provider,
 * `client` (the main thread's, whose SDK caches and refreshes what the
 * provider gives) resolves the credentials each part is handed.
 */
export function createWorkerPoolSender (config: EngineConfig, client?: S3Client): WorkerPoolSender {
  const s3 = workerSettings(config.s3)
  const filename = config.workers.filename ?? defaultWorkerFile()
  // A thread that cannot load its file fails as an 'error' event of the pool, which
  // takes the process down: a mistyped path is said at boot instead.
  if (!existsSync(filename.startsWith('file:') ? fileURLToPath(filename) : filename)) {
    throw new InvalidOptionError(`"workers.filename": no such file: ${filename}`)
  }
  const policy = partPolicyOf(config)
  const pool = new Piscina<PartTask | ObjectTask, PartEnvelope | ObjectEnvelope>({
    filename,
    workerData: { s3, policy } satisfies UploadWorkerData,
    minThreads: config.workers.minThreads ?? 1,
    maxThreads: config.workers.maxThreads,
    concurrentTasksPerWorker: config.workers.concurrentTasksPerWorker,
    idleTimeout: config.workers.idleTimeout,
    // The tasks are network I/O: an idle thread blocked in Atomics.wait would stall its sockets.
    atomics: 'disabled',
    // A thread only signs and sends buffers it is given: a small young generation
    // keeps each thread's resident memory down (measured: −30 MiB under load).
    resourceLimits: { maxYoungGenerationSizeMb: 8 }
  })

  /**
   * Runs a task on a thread (the worker file's export `name`: its default one sends a part).
   * A shared body is read there in place; another is moved there with `move`, else copied.
   * Rejects with the pool's own error when the thread itself failed (crashed, or the pool was destroyed).
   */
  async function onThread<Done> (name: 'default' | 'putObject', task: PartTask | ObjectTask, move: boolean): Promise<Envelope<Done>> {
    if (s3.credentialsFromParts === true && client !== undefined) {
      const { accessKeyId, secretAccessKey, sessionToken } = await client.config.credentials()
      task = { ...task, credentials: { accessKeyId, secretAccessKey, ...(sessionToken !== undefined ? { sessionToken } : {}) } }
    }
    return await pool.run(task, move && !isShared(task.body) ? { name, transferList: [task.body] } : { name }) as Envelope<Done>
  }

  /** The thread's answer as the sender's: its failure rebuilt as a StorageFailure carrying `body` back. */
  function answer<Done> (envelope: Envelope<Done>, body: PartMemory | undefined): Done & { body?: PartMemory } {
    if (!envelope.ok) {
      const { ok: _ok, body: _body, ...info } = envelope
      throw storageFailure(info, body)
    }
    const { ok: _ok, ...done } = envelope
    return { ...done as unknown as Done, ...(body !== undefined ? { body } : {}) }
  }

  /**
   * A small file's PutObject from the main thread. `before`: attempts already made — a thread
   * that died unanswered may have sent it whole, which S3 then carries out, so sending it again
   * is a retry after a lost answer: a 412 has the coordinator look whether the object is this one.
   */
  async function putHere (task: ObjectTask, here: S3Client, before = 0): Promise<ObjectDone> {
    try {
      const done = await putObjectWithRetries(here, task, policy)
      return { ...done, attempts: done.attempts + before, body: task.body }
    } catch (error) {
      const info = failureInfo('PutObject', error)
      throw storageFailure({ ...info, attempts: (info.attempts ?? 1) + before }, task.body)
    }
  }

  // Tasks given to the pool and not yet answered, against the slots its threads have: a PutObject
  // queued behind other uploads' parts waited for them (4.2 s for 100 KiB, found in review).
  const slots = config.workers.maxThreads * config.workers.concurrentTasksPerWorker
  let running = 0
  let closing = false
  async function counted<T> (run: () => Promise<T>): Promise<T> {
    running += 1
    try {
      return await run()
    } finally {
      running -= 1
    }
  }

  return {
    pool,
    async send (task) {
      let envelope: PartEnvelope
      try {
        // A whole part is shared; a smaller one is moved to the thread and back, not copied.
        envelope = await counted(async () => await onThread<PartDone>('default', task, true))
      } catch (error) {
        throw storageFailure(describeS3Error('UploadPart', error))
      }
      // The thread answers only once the part is stored or given up: a shared buffer is ours again.
      return answer(envelope, isShared(task.body) ? task.body : envelope.body)
    },
    async put (task) {
      // The file's bytes never leave this thread, so that a PutObject whose thread died can be sent
      // again from here: a thread takes it when they are shared with it, or a head's few KiB
      // copied to it, and when it has a free slot. Otherwise it goes from here: a larger plain
      // buffer (workers.sharedBuffers off, a parked part) copied to a thread was a second copy
      // outside the budget (found in review).
      if (client !== undefined && (running >= slots || (!isShared(task.body) && task.body.byteLength > HEAD_BYTES))) return await putHere(task, client)
      let envelope: ObjectEnvelope
      try {
        envelope = await counted(async () => await onThread<ObjectDone>('putObject', task, false))
      } catch (error) {
        // A closing pool refuses the tasks still queued: never sent, and not to be sent now (review).
        if (client === undefined || closing) throw storageFailure(describeS3Error('PutObject', error))
        return await putHere(task, client, 1)
      }
      return answer(envelope, task.body)
    },
    async close () {
      closing = true
      await pool.close({ force: false })
      await pool.destroy()
    },
    // Cheap figures only: Piscina's utilization computes histogram percentiles on every
    // read (~6 % of the main thread's CPU when a health route polled it 20 times a second).
    stats: () => ({
      threads: pool.threads.length,
      queueSize: pool.queueSize,
      completed: pool.completed
    })
  }
}
