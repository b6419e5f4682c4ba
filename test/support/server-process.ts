// Starts test/support/upload-server.mjs (plain node, the built package) in a child process and stops it at teardown.
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { S3ChunkOptions } from 'fastify-s3-chunk'

export interface ServerProcess {
  url: string
  pid: number
  health: () => Promise<{ stats: Record<string, unknown> & { uploadsInFlight: number, bufferedBytes: number, peakBufferedBytes: number }, rss: number, maxRss: number, eventLoopDelayMs: { p99: number, max: number } }>
  stop: () => Promise<void>
}

const script = fileURLToPath(new URL('./upload-server.mjs', import.meta.url))

export async function startServerProcess (t: { teardown: (fn: () => unknown) => void }, options: S3ChunkOptions): Promise<ServerProcess> {
  // Under tap, spawn() is patched to add tap's module loader to every child's
  // NODE_OPTIONS (a loader thread of its own, tens of MiB): the shell drops it
  // so the server runs as plain node, as in production.
  const child = spawn('/bin/sh', ['-c', 'unset NODE_OPTIONS; exec "$0" "$1"', process.execPath, script], {
    env: { ...process.env, UPLOAD_SERVER_OPTIONS: JSON.stringify(options), AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    await exited
    clearTimeout(timer)
  }
  t.teardown(stop)
  const port = await new Promise<number>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout })
    const timer = setTimeout(() => reject(new Error('upload server did not start within 30 s')), 30_000)
    lines.once('line', (line) => { clearTimeout(timer); resolve((JSON.parse(line) as { port: number }).port) })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`upload server exited with ${code}`)) })
  })
  const url = `http://127.0.0.1:${port}`
  return {
    url,
    pid: child.pid ?? 0,
    health: async () => await (await fetch(`${url}/health`)).json() as Awaited<ReturnType<ServerProcess['health']>>,
    stop
  }
}
