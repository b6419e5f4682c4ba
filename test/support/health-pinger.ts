// Pings a URL every `intervalMs` from a worker thread of its own, so the
// latencies measure the server, not the test process's busy event loop.
import { Worker } from 'node:worker_threads'

const source = `
const { parentPort, workerData } = require('node:worker_threads')
const { performance } = require('node:perf_hooks')
const latencies = []
let errors = 0
let running = true
parentPort.on('message', () => { running = false })
;(async () => {
  const deadline = Date.now() + workerData.maxMs
  while (running && Date.now() < deadline) {
    const started = performance.now()
    try {
      const response = await fetch(workerData.url, { signal: AbortSignal.timeout(5000) })
      await response.arrayBuffer()
      latencies.push(performance.now() - started)
    } catch { errors++ }
    await new Promise((resolve) => setTimeout(resolve, workerData.intervalMs))
  }
  parentPort.postMessage({ latencies, errors })
})()
`

export interface PingResult { latencies: number[], errors: number, p99: number, max: number }

export function startPinger (url: string, options: { intervalMs?: number, maxMs?: number } = {}): { stop: () => Promise<PingResult> } {
  const worker = new Worker(source, { eval: true, workerData: { url, intervalMs: options.intervalMs ?? 50, maxMs: options.maxMs ?? 600_000 } })
  const done = new Promise<{ latencies: number[], errors: number }>((resolve, reject) => {
    worker.once('message', resolve)
    worker.once('error', reject)
  })
  return {
    stop: async () => {
      worker.postMessage('stop')
      const { latencies, errors } = await done
      await worker.terminate()
      const sorted = [...latencies].sort((a, b) => a - b)
      return { latencies: sorted, errors, p99: sorted[Math.floor(sorted.length * 0.99)] ?? 0, max: sorted[sorted.length - 1] ?? 0 }
    }
  }
}
