// One measured run: one contender, one scenario, a fresh server process (so
// its peak RSS and event-loop histogram belong to this run alone), a short
// warm-up, then the scenario's uploads with a health request every 50 ms and
// the server's process tree and threads sampled from /proc (proc-sampler.ts).
import type { S3Client } from '@aws-sdk/client-s3'
import { setMaxListeners } from 'node:events'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { startPinger } from '../test/support/health-pinger.ts'
import { streamUpload } from '../test/support/stream-upload.ts'
import { emptyBucket, storedObjects } from './buckets.ts'
import { onCleanup } from './cleanup.ts'
import { PART_CONCURRENCY, PART_SIZE, type Contender, type ContenderServer, type S3Access } from './contenders.ts'
import { directUpload } from './direct-upload.ts'
import { startTreeSampler, type ThreadFigure } from './proc-sampler.ts'
import { hostCpu } from './proc-stats.ts'
import type { Scenario } from './scenarios.ts'
import { tusUpload } from './tus-upload.ts'
import { startNodeServer } from '../test/support/server-process.ts'

const MiB = 1024 * 1024
const GiB = 1024 * MiB
/** Warm-up before measuring: one single-PUT file and one of three parts (JIT, threads, S3 connections). */
const WARM_UP = [MiB, 2 * PART_SIZE + MiB]
const WARM_UP_SEED = 1_000_000
/**
 * The servers sample their event loop every 10 ms (monitorEventLoopDelay's
 * resolution), and Node records the whole time between two samples — an idle
 * loop reads ~10.1 ms. The delay proper is what lies beyond the interval.
 */
const EVENT_LOOP_RESOLUTION_MS = 10

export interface RunResult {
  contender: string
  scenario: string
  repetition: number
  ok: boolean
  error?: string
  bytes: number
  seconds: number
  mibPerSecond: number
  /** The server's (its whole process tree); null for (d), which has none. */
  peakRssMiB: number | null
  /** All threads of the server's process tree, exited ones included. */
  cpuSecondsPerGiB: number | null
  /** The server's main thread alone (a Node server's event loop): one process can never go faster than 1 / this GiB/s. */
  mainThreadCpuSecondsPerGiB: number | null
  /**
   * Share of the run the server's main thread spent runnable but waiting for a
   * CPU (schedstat): on a host busier than its cores, the event loop's delay
   * is mostly this, not the loop's own work.
   */
  mainThreadWaitShare: number | null
  /** Bytes the server's process tree caused to be written to storage during the run (/proc/<pid>/io write_bytes), in MiB. */
  diskWriteMiB: number | null
  /** Where the server's CPU went, thread by thread (see proc-sampler.ts); null without a server. */
  threads: { processes: number, exitedSampledSeconds: number, exitedUnseenSeconds: number, busiest: ThreadFigure[], samples: number } | null
  /** Event-loop delay beyond the sampling interval (see EVENT_LOOP_RESOLUTION_MS). */
  eventLoopMs: { p99: number, max: number } | null
  /** As the server's histogram reports it, interval included. */
  eventLoopRawMs: { p99: number, max: number } | null
  /**
   * The server's main-thread garbage collections during the measured uploads,
   * per GiB (Node contenders): major ones are what a young generation too large
   * for the body's dead buffers costs (README, "Instances and memory").
   */
  gcPerGiB: { minor: number, major: number, majorMs: number } | null
  healthMs: { p99: number, max: number, count: number, errors: number } | null
  /** The load client's own CPU (this process), for context. */
  clientCpuSecondsPerGiB: number
  /** Share of the host's CPUs busy during the run, all processes (others' included). */
  hostBusy: number | null
  /** Files left in the server's temporary directory once it stopped (contenders with `tempDirEnv`). */
  tempFilesLeft?: number
  /** Objects the server kept beside the files by design (contenders with `stateObjects`). */
  stateObjects?: number
}

export interface RunContext {
  client: S3Client
  bucket: string
  s3: S3Access
  /** When set, servers run with --cpu-prof and write their profiles under this directory. */
  profileDir?: string
}

/**
 * Time a run may take before it is stopped and failed: generous, only there so
 * nothing hangs — 10 MiB/s plus a second a file (the seed spends a
 * multipart upload and a thread pool on every small file; on a loaded 2-core
 * machine its 200 × 1 MiB took longer than 80 s).
 */
function runTimeoutMs (scenario: Scenario): number {
  return 60_000 + scenario.files * scenario.size / (10 * MiB) * 1000 + scenario.files * 1000
}

export async function runOnce (contender: Contender, scenario: Scenario, repetition: number, context: RunContext): Promise<RunResult> {
  const bytes = scenario.files * scenario.size
  const result: RunResult = {
    contender: contender.id,
    scenario: scenario.id,
    repetition,
    ok: false,
    bytes,
    seconds: 0,
    mibPerSecond: 0,
    peakRssMiB: null,
    cpuSecondsPerGiB: null,
    mainThreadCpuSecondsPerGiB: null,
    mainThreadWaitShare: null,
    diskWriteMiB: null,
    threads: null,
    eventLoopMs: null,
    eventLoopRawMs: null,
    gcPerGiB: null,
    healthMs: null,
    clientCpuSecondsPerGiB: 0,
    hostBusy: null
  }
  let server: ContenderServer | null = null
  // A temporary directory of the run's own for a server that spools to disk: emptied and removed whatever happens.
  const tempDir = contender.tempDirEnv === undefined ? null : mkdtempSync(join(tmpdir(), `fastify-s3-chunk-bench-${contender.id}-`))
  const forgetTempDir = tempDir === null ? () => {} : onCleanup(async () => { rmSync(tempDir, { recursive: true, force: true }) })
  let forgetServer = (): void => {}
  const stopRun = new AbortController()
  // (d) hands the run's signal to every S3 request it has in flight (8 files × 4 parts).
  setMaxListeners(1000, stopRun.signal)
  const timer = setTimeout(() => stopRun.abort(new Error(`run timed out after ${runTimeoutMs(scenario) / 1000} s`)), runTimeoutMs(scenario))
  try {
    if (contender.server !== undefined) {
      const { script, env } = contender.server(context.bucket, context.s3)
      if (tempDir !== null && contender.tempDirEnv !== undefined) env[contender.tempDirEnv] = tempDir
      const profile = context.profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', join(context.profileDir, `${scenario.id}-${contender.id}-run${repetition + 1}`)]
      server = await startNodeServer(script, env, profile)
    } else if (contender.launch !== undefined) {
      server = await contender.launch(context.bucket, context.s3)
    }
    if (server !== null) {
      const started = server
      forgetServer = onCleanup(async () => { await started.stop() })
      // A run that times out is ended by killing its server: the uploads then fail at once.
      stopRun.signal.addEventListener('abort', () => { void started.stop(0) }, { once: true })
    }
    const send = server === null
      ? direct(context, stopRun.signal)
      : contender.protocol === 'tus'
        ? viaTus(`${server.url}${contender.tusPath ?? '/files'}`)
        : viaServer(`${server.url}/upload`)

    for (const [index, size] of WARM_UP.entries()) await send(WARM_UP_SEED + index, size, `warm-up-${index}.bin`)

    const pid = server?.pid
    const gcBefore = server === null ? undefined : (await server.health()).gc
    const sampler = pid === undefined ? null : startTreeSampler(pid)
    const hostBefore = hostCpu()
    const clientBefore = process.cpuUsage()
    const pinger = server === null ? null : startPinger(`${server.url}/health`, { intervalMs: 50, maxMs: runTimeoutMs(scenario) })
    const started = performance.now()
    let failure: unknown = null
    try {
      await uploadAll(scenario, stopRun.signal, async (index) => { await send(index, scenario.size, `file-${index}.bin`) })
    } catch (error) {
      failure = error
    }
    result.seconds = (performance.now() - started) / 1000
    const pings = pinger === null ? null : await pinger.stop()
    const clientCpu = process.cpuUsage(clientBefore)
    const hostAfter = hostCpu()
    const tree = sampler?.stop() ?? null
    if (failure !== null) throw failure

    result.mibPerSecond = bytes / MiB / result.seconds
    result.clientCpuSecondsPerGiB = (clientCpu.user + clientCpu.system) / 1e6 / (bytes / GiB)
    if (hostBefore !== null && hostAfter !== null) result.hostBusy = (hostAfter.busy - hostBefore.busy) / Math.max(1, hostAfter.total - hostBefore.total)
    if (server !== null && tree !== null) {
      const health = await server.health()
      const peak = tree.peakRssBytes ?? health.maxRss ?? null
      result.peakRssMiB = peak === null ? null : peak / MiB
      if (tree.samples > 0) {
        result.cpuSecondsPerGiB = tree.cpuSeconds / (bytes / GiB)
        // A pre-fork server has a main thread per worker: no one thread bounds it (contenders.ts, multiProcess).
        if (contender.multiProcess !== true) {
          result.mainThreadCpuSecondsPerGiB = tree.mainThreadSeconds / (bytes / GiB)
          if (tree.mainThreadWaitSeconds !== null) result.mainThreadWaitShare = tree.mainThreadWaitSeconds / result.seconds
        }
        result.threads = { processes: tree.processes, exitedSampledSeconds: tree.exitedSampledSeconds, exitedUnseenSeconds: tree.exitedUnseenSeconds, busiest: tree.threads.slice(0, 12), samples: tree.samples }
      }
      if (tree.diskWriteBytes !== null) result.diskWriteMiB = tree.diskWriteBytes / MiB
      if (gcBefore !== undefined && health.gc !== undefined) {
        const during = (kind: 'minor' | 'major', figure: 'count' | 'ms'): number => ((health.gc?.[kind]?.[figure] ?? 0) - (gcBefore[kind]?.[figure] ?? 0)) / (bytes / GiB)
        result.gcPerGiB = { minor: during('minor', 'count'), major: during('major', 'count'), majorMs: during('major', 'ms') }
      }
      if (health.eventLoopDelayMs !== undefined) {
        const { p99, max } = health.eventLoopDelayMs
        result.eventLoopRawMs = { p99, max }
        result.eventLoopMs = { p99: Math.max(0, p99 - EVENT_LOOP_RESOLUTION_MS), max: Math.max(0, max - EVENT_LOOP_RESOLUTION_MS) }
      }
    }
    if (pings !== null) result.healthMs = { p99: pings.p99, max: pings.max, count: pings.latencies.length, errors: pings.errors }

    // Every file is stored whole: as many objects as sent, as many bytes (the receive floor: counted, stored nowhere).
    const expected = { count: scenario.files + WARM_UP.length, bytes: bytes + WARM_UP.reduce((sum, size) => sum + size, 0) }
    const stored = contender.receiveOnly === true && server !== null
      ? receivedBy(await server.health())
      : await storedObjects(context.client, context.bucket, contender.stateObjects)
    if (contender.stateObjects !== undefined) result.stateObjects = stored.ignored
    if (stored.count !== expected.count || stored.bytes !== expected.bytes) {
      throw new Error(`${contender.receiveOnly === true ? 'received' : 'stored'} ${stored.count} files / ${stored.bytes} bytes, expected ${expected.count} / ${expected.bytes}`)
    }
    result.ok = true
  } catch (error) {
    result.error = error instanceof Error ? error.message : String(error)
  } finally {
    clearTimeout(timer)
    if (server !== null) await server.stop()
    forgetServer()
    if (tempDir !== null) {
      // Only now is the server gone: whatever it left in its directory stays left.
      result.tempFilesLeft = readdirSync(tempDir, { recursive: true }).length
      rmSync(tempDir, { recursive: true, force: true })
      forgetTempDir()
    }
    const pending = await emptyBucket(context.client, context.bucket)
    if (pending > 0 && result.ok) {
      result.ok = false
      result.error = `${pending} multipart upload(s) left pending`
    }
  }
  return result
}

/** Sends a file through a contender's server; throws unless it answered 200. */
function viaServer (url: string) {
  return async (seed: number, size: number, filename: string): Promise<void> => {
    const upload = await streamUpload(url, { seed, size, filename, hash: false })
    if (upload.error !== undefined) throw upload.error
    if (upload.status !== 200) throw new Error(`POST ${filename} answered ${String(upload.status)}: ${upload.body.slice(0, 200)}`)
  }
}

/** Sends a file to a tus endpoint with tus-js-client: creation, then one PATCH of the whole file. */
function viaTus (endpoint: string) {
  return async (seed: number, size: number, filename: string): Promise<void> => {
    await tusUpload(endpoint, seed, size, filename)
  }
}

function direct (context: RunContext, signal: AbortSignal) {
  return async (seed: number, size: number, filename: string): Promise<void> => {
    await directUpload({ client: context.client, bucket: context.bucket, key: filename, seed, size, partSize: PART_SIZE, concurrency: PART_CONCURRENCY, signal })
  }
}

/** The scenario's files, `concurrency` at a time; the first failure stops new uploads and is thrown once all have settled. */
async function uploadAll (scenario: Scenario, signal: AbortSignal, upload: (index: number) => Promise<void>): Promise<void> {
  let next = 0
  const failures: unknown[] = []
  const lane = async (): Promise<void> => {
    while (next < scenario.files && failures.length === 0 && !signal.aborted) {
      const index = next++
      try {
        await upload(index)
      } catch (error) {
        failures.push(error)
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(scenario.concurrency, scenario.files) }, lane))
  if (signal.aborted) throw signal.reason
  if (failures.length > 0) throw failures[0]
}

/** What a receive-only contender (the floor) says it took in, in storedObjects' terms. */
function receivedBy (health: { stats?: Record<string, unknown> }): { count: number, bytes: number, ignored: number } {
  const { filesReceived, bytesReceived } = health.stats ?? {}
  if (typeof filesReceived !== 'number' || typeof bytesReceived !== 'number') throw new Error('the receive-only server\'s /health has no filesReceived/bytesReceived')
  return { count: filesReceived, bytes: bytesReceived, ignored: 0 }
}
