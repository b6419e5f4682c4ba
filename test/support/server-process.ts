// Starts a server script under plain node in a process of its own and stops it
// by pid: the load tests' plugin server (test/support/upload-server.mjs) and
// the benchmark's contenders. Any script works that prints {"port":N} when
// listening, answers GET /health like upload-server.mjs and stops on SIGTERM.
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { S3ChunkOptions } from 'fastify-s3-chunk'
import type { GcSeen } from './gc-counter.mjs'

export interface ServerHealth<Stats = Record<string, unknown>> {
  rss: number
  /** Peak resident set of the whole process (all threads), in bytes. */
  maxRss: number
  eventLoopDelayMs: { p99: number, max: number }
  /** upload-server.mjs: POST /upload requests parsed and finished, and the connections that carry or may yet carry one. */
  uploads?: { received: number, handled: number, openConnections: number }
  /** The main thread's garbage collections so far, by kind (gc-counter.mjs). */
  gc?: GcSeen
  stats: Stats
}

export interface NodeServer<Stats = Record<string, unknown>> {
  url: string
  pid: number
  health: () => Promise<ServerHealth<Stats>>
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  stop: (graceMs?: number) => Promise<void>
}

/** `nodeArgs`: flags for node itself, e.g. ['--cpu-prof', '--cpu-prof-dir', dir]. */
export async function startNodeServer<Stats = Record<string, unknown>> (script: string, env: Record<string, string>, nodeArgs: string[] = []): Promise<NodeServer<Stats>> {
  // The shell drops NODE_OPTIONS: under tap, spawn() adds tap's module loader
  // to it, and tsx adds its own (a loader thread each, tens of MiB and CPU) to
  // the very process being measured. Plain node, as in production.
  const child = spawn('/bin/sh', ['-c', 'unset NODE_OPTIONS; exec "$0" "$@"', process.execPath, ...nodeArgs, script], {
    env: { ...process.env, ...env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  // Should this process exit without stopping it (an error, a second Ctrl-C), the server goes too.
  const killOnExit = (): void => { child.kill('SIGKILL') }
  process.once('exit', killOnExit)
  const exited = new Promise<void>((resolve) => child.once('exit', () => {
    process.removeListener('exit', killOnExit)
    resolve()
  }))
  const stop = async (graceMs = 10_000): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
    await exited
    clearTimeout(timer)
  }
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const lines = createInterface({ input: child.stdout })
      const timer = setTimeout(() => reject(new Error(`${script} did not start within 30 s`)), 30_000)
      lines.once('line', (line) => { clearTimeout(timer); resolve((JSON.parse(line) as { port: number }).port) })
      child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${script} exited with ${String(code)} before listening`)) })
    })
    const url = `http://127.0.0.1:${port}`
    return {
      url,
      pid: child.pid ?? 0,
      health: async () => {
        const response = await fetch(`${url}/health`, { signal: AbortSignal.timeout(10_000) })
        if (!response.ok) throw new Error(`GET /health answered ${response.status}`)
        return await response.json() as ServerHealth<Stats>
      },
      stop
    }
  } catch (error) {
    await stop(1000)
    throw error
  }
}

/** What upload-server.mjs's /health reports of the plugin (`fastify.s3Chunk.stats()`). */
export type PluginStats = Record<string, unknown> & { uploadsInFlight: number, bufferedBytes: number, peakBufferedBytes: number }

const uploadServer = fileURLToPath(new URL('./upload-server.mjs', import.meta.url))

/**
 * The plugin, built, in a server process of its own with these options; stopped at teardown.
 * `env`: upload-server.mjs's other settings (UPLOAD_SERVER_PORT, UPLOAD_SERVER_DIRECT_USER).
 */
export async function startServerProcess (t: { teardown: (fn: () => unknown) => void }, options: S3ChunkOptions, env: Record<string, string> = {}): Promise<NodeServer<PluginStats>> {
  const server = await startNodeServer<PluginStats>(uploadServer, { ...env, UPLOAD_SERVER_OPTIONS: JSON.stringify(options) })
  t.teardown(async () => { await server.stop() })
  return server
}
