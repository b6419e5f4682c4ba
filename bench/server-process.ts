// Starts one contender's server script under plain node in a process of its
// own and stops it by pid. Any script works that prints {"port":N} when
// listening, answers GET /health like test/support/upload-server.mjs and stops
// on SIGTERM.
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'

export interface ServerHealth {
  rss: number
  maxRss: number
  eventLoopDelayMs: { p99: number, max: number }
  stats: Record<string, unknown>
}

export interface BenchServer {
  url: string
  pid: number
  health: () => Promise<ServerHealth>
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  stop: (graceMs?: number) => Promise<void>
}

/** `nodeArgs`: flags for node itself, e.g. ['--cpu-prof', '--cpu-prof-dir', dir]. */
export async function startBenchServer (script: string, env: Record<string, string>, nodeArgs: string[] = []): Promise<BenchServer> {
  // The shell drops NODE_OPTIONS (a loader such as tsx's or tap's would add
  // tens of MiB and CPU to the very process being measured): plain node, as in production.
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
        return await response.json() as ServerHealth
      },
      stop
    }
  } catch (error) {
    await stop(1000)
    throw error
  }
}
