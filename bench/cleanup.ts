// Everything the bench starts (MinIO, buckets, servers) registers how to undo
// it here; it is undone in reverse order at the end, and on SIGINT / SIGTERM.
const steps: Array<() => Promise<void>> = []
let stopping = false

/** True once a signal asked the bench to stop: start nothing new. */
export function isStopping (): boolean {
  return stopping
}

/** Registers an undo step; the returned function drops it (once it was done by other means). */
export function onCleanup (step: () => Promise<void>): () => void {
  steps.push(step)
  return () => {
    const at = steps.lastIndexOf(step)
    if (at >= 0) steps.splice(at, 1)
  }
}

/** Runs every registered step, newest first, each bounded in time; errors are reported, not thrown. */
export async function cleanUp (timeoutMs = 30_000): Promise<void> {
  while (steps.length > 0) {
    const step = steps.pop() as () => Promise<void>
    let timer: NodeJS.Timeout | undefined
    try {
      await Promise.race([step(), new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`clean-up step timed out after ${timeoutMs} ms`)), timeoutMs) })])
    } catch (error) {
      console.error(`bench: clean-up: ${error instanceof Error ? error.message : String(error)}`)
    } finally {
      clearTimeout(timer)
    }
  }
}

/** On the first SIGINT / SIGTERM: clean up and exit 130; on a second one, exit at once. */
export function cleanUpOnSignals (): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) process.exit(130)
      stopping = true
      console.error(`\nbench: ${signal}, stopping what was started…`)
      void cleanUp(10_000).finally(() => process.exit(130))
    })
  }
}
