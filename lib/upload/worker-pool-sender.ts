import { Piscina } from 'piscina'
import type { S3ChunkConfig } from '../options.js'
import type { PartEnvelope, PartTask } from './part-task.js'
import type { PartSender } from './part-sender.js'
import { describeS3Error, storageFailure } from './s3-failure.js'

// Compiled, this file is dist/lib/upload/*.js and the worker dist/workers/*.js;
// run from source (tsx) both are .ts.
const extension = import.meta.url.endsWith('.ts') ? '.ts' : '.js'
export const workerFile = new URL(`../../workers/upload-part${extension}`, import.meta.url).href

/** Mode `workers`: parts go to a Piscina pool; each thread has its own long-lived S3 client. */
export function createWorkerPoolSender (config: S3ChunkConfig): PartSender {
  const pool = new Piscina<PartTask, PartEnvelope>({
    filename: workerFile,
    workerData: { s3: config.s3 },
    minThreads: config.workers.minThreads ?? 1,
    maxThreads: config.workers.maxThreads,
    concurrentTasksPerWorker: config.workers.concurrentTasksPerWorker,
    idleTimeout: config.workers.idleTimeout,
    // The tasks are network I/O: an idle thread blocked in Atomics.wait would stall its sockets.
    atomics: 'disabled'
  })

  return {
    async send (task) {
      let envelope: PartEnvelope
      try {
        // The part's ArrayBuffer is moved to the thread, not copied.
        envelope = await pool.run(task, { transferList: [task.body] })
      } catch (error) {
        // The thread itself failed (crashed, or the pool was destroyed).
        throw storageFailure(describeS3Error('UploadPart', error))
      }
      if (!envelope.ok) {
        const { ok: _ok, ...info } = envelope
        throw storageFailure(info)
      }
      return { etag: envelope.etag }
    },
    async close () {
      await pool.close({ force: false })
      await pool.destroy()
    },
    stats: () => ({
      threads: pool.threads.length,
      queueSize: pool.queueSize,
      completed: pool.completed,
      utilization: pool.utilization
    })
  }
}
