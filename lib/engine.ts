import { isDeepStrictEqual } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import type { S3Client } from '@aws-sdk/client-s3'
import { ClosingError, InvalidOptionError } from './errors.js'
import { CLOSING_LINGER_MS, LINGER_MS, LingeringCloses } from './lingering-close.js'
import { ENGINE_OPTIONS, payloadSigningOf, type EngineConfig } from './options.js'
import { createPartClient, createS3Client } from './s3-client.js'
import type { UploadLocation } from './maintenance.js'
import type { S3ChunkStats } from './types.js'
import { PartBufferPool } from './upload/part-buffer-pool.js'
import { createInlineSender, type PartSender } from './upload/part-sender.js'
import { partPolicyOf } from './upload/part-task.js'
import { Shutdown } from './upload/shutdown.js'
import { createWorkerPoolSender } from './upload/worker-pool-sender.js'
import { Telemetry } from './telemetry.js'

/** How long close() waits for uploads already told to stop to finish their bookkeeping. */
const SETTLE_ON_CLOSE_MS = 8_000

/**
 * What every upload of an app draws on, made once: the worker pool, the
 * memory budget, the S3 clients. Every registration of the plugin in the app
 * (the root's, a child scope's, a sibling's) shares it, so the budget's
 * promise holds app-wide; closing the app closes it once.
 */
export class Engine {
  readonly config: EngineConfig
  /** The main thread's S3 client (direct routes, maintenance helpers, your own calls). */
  readonly client: S3Client
  /** One attempt per call: every S3 call of a streamed upload is retried by the plugin's `retry` policy. */
  readonly uploadClient: S3Client
  readonly sender: PartSender
  readonly buffers: PartBufferPool
  readonly counters = { uploadsInFlight: 0, partsInFlight: 0 }
  /** Closed when the app closes: uploads in flight are aborted, not committed. */
  readonly shutdown = new Shutdown()
  /** Spans and metrics (OpenTelemetry's API; a no-op without an SDK). Front doors start an upload's span here. */
  readonly telemetry: Telemetry
  /**
   * Where each registration of the app stores (its own, its rule sets', its routes'): one scope's
   * sweep spares the live tus uploads of the others' prefixes above and below its own (nested scopes).
   */
  readonly registrations: Array<() => UploadLocation[]> = []
  /** The app's connections answered before their bodies were read, closing without a reset. */
  readonly lingering = new LingeringCloses(() => this.#closing ? CLOSING_LINGER_MS : LINGER_MS)
  #closing = false
  #closed = false
  /** Uploads in flight that do not go through the coordinator (`track()`): the grace waits for them too. */
  #tracked = 0

  constructor (config: EngineConfig) {
    // Only the engine's own options: the registration's rules are not the engine's.
    this.config = Object.freeze(Object.fromEntries(ENGINE_OPTIONS.map((name) => [name, config[name]]))) as EngineConfig
    this.client = createS3Client(config.s3)
    const policy = partPolicyOf(config)
    this.uploadClient = createPartClient(config.s3, undefined, policy.payloadSigning)
    this.sender = config.mode === 'workers'
      ? createWorkerPoolSender(config, this.uploadClient)
      : createInlineSender(this.uploadClient, policy)
    // Workers mode shares whole part buffers with the threads (see PartBufferPool).
    this.buffers = new PartBufferPool(config.maxBufferedBytes, { shared: config.mode === 'workers' && config.workers.sharedBuffers })
    this.telemetry = new Telemetry(this.buffers)
    this.buffers.onWaited = (ms) => { this.telemetry.waitedForMemory(ms) }
  }

  /** True from the start of `app.close()`: new uploads are refused (`assertOpen()`), those in flight go on for the grace period. */
  get closing (): boolean { return this.#closing }

  /**
   * Every front door calls it before it starts a new upload (a streamed
   * upload, a direct create or signing of a new file, a tus creation): throws
   * ClosingError (503; the reply carries `Retry-After`) once the app is closing.
   */
  assertOpen (): void {
    if (this.#closing) throw new ClosingError()
  }

  /**
   * Keeps the close grace waiting for `work` (an upload that does not go
   * through the coordinator, whose uploads are counted already); resolves
   * or rejects as it does.
   */
  async track<T> (work: Promise<T>): Promise<T> {
    this.#tracked += 1
    try {
      return await work
    } finally {
      this.#tracked -= 1
    }
  }

  /**
   * Keeps the close grace waiting while a request's body is being read,
   * not only while one of its files uploads: `s3Files()` between two files
   * has nothing in flight, yet the request is.
   */
  holdRequest (raw: { closed?: boolean, destroyed?: boolean, once: (event: 'close', listener: () => void) => unknown }): void {
    if (raw.closed === true || raw.destroyed === true) return
    this.#tracked += 1
    raw.once('close', () => { this.#tracked -= 1 })
  }

  /**
   * The app is closing (preClose): new uploads are refused from now on;
   * uploads in flight may finish for `closeGracePeriod` ms; then the rest
   * are aborted (never committed half).
   */
  async drain (): Promise<void> {
    this.#closing = true
    // The server's close waits for every connection: one refused earlier has lingered enough.
    this.lingering.endAll()
    await this.#waitForUploads(this.config.closeGracePeriod)
    this.shutdown.close(new ClosingError())
  }

  #inFlight (): number {
    return this.counters.uploadsInFlight + this.#tracked
  }

  /** Until no upload is in flight, at most `ms`. Polled, not evented: a few wake-ups during a close cost nothing, and no upload path pays for it. */
  async #waitForUploads (ms: number): Promise<void> {
    const deadline = Date.now() + ms
    for (let left = deadline - Date.now(); left > 0 && this.#inFlight() > 0; left = deadline - Date.now()) {
      await sleep(Math.min(50, left))
    }
  }

  stats (): S3ChunkStats {
    return {
      mode: this.config.mode,
      uploadsInFlight: this.counters.uploadsInFlight,
      partsInFlight: this.counters.partsInFlight,
      bufferedBytes: this.buffers.used,
      peakBufferedBytes: this.buffers.peak,
      freeBufferBytes: this.buffers.free,
      maxBufferedBytes: this.buffers.limit,
      partsWaitingForMemory: this.buffers.waiting,
      pool: this.sender.stats(),
      closing: this.#closing
    }
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#closing = true
    // Uploads told to stop (drain) may still be finishing their bookkeeping: parts in
    // flight, an abort, a tus PATCH saving what arrived. A server whose sockets were
    // closed first (closeAllConnections) reaches onClose without waiting for those
    // requests, and closing the pool and clients under them turned a kept PATCH into a
    // lost one (and left its multipart upload open). Bounded: onClose must end.
    await this.#waitForUploads(SETTLE_ON_CLOSE_MS)
    this.lingering.endAll()
    this.telemetry.close()
    await this.sender.close()
    this.client.destroy()
    this.uploadClient.destroy()
  }
}

// One engine per app. Every encapsulated scope of a Fastify app shares its
// HTTP server: the key that finds the app's engine from any scope.
const engines = new WeakMap<object, Engine>()

/**
 * The app's engine: made by the first registration; a later registration
 * may leave the engine options out or repeat them, but not change them.
 */
export function engineFor (app: { server: object }, config: EngineConfig, given: Set<string>): { engine: Engine, created: boolean } {
  const existing = engines.get(app.server)
  if (existing === undefined) {
    const engine = new Engine(config)
    engines.set(app.server, engine)
    return { engine, created: true }
  }
  // payloadSigning is compared as resolved: left out, it follows the checksum.
  const resolved = (name: typeof ENGINE_OPTIONS[number], of: EngineConfig): unknown => name === 'payloadSigning' ? payloadSigningOf(of) : of[name]
  const differing = ENGINE_OPTIONS.filter((name) => given.has(name) && !isDeepStrictEqual(resolved(name, config), resolved(name, existing.config)))
  if (differing.length > 0) {
    throw new InvalidOptionError(`${differing.map((name) => `"${name}"`).join(', ')}: engine options are set once per app, by the first registration of the plugin (one worker pool, one memory budget, one set of S3 clients); leave them out here or give the same values`)
  }
  return { engine: existing, created: false }
}

/** Forgets the app's engine once it is closed (a new app on the same server object is unlikely, but tests make many apps). */
export function forgetEngine (app: { server: object }): void {
  engines.delete(app.server)
}
