// The main thread's garbage collections by kind (count and milliseconds),
// from perf_hooks' 'gc' entries: what the servers' /health reports, so the
// bench can show how many major GCs a run cost — on Node 24 without
// --max-semi-space-size, ~30 per GiB uploaded (README, "Instances and memory").
import { constants, PerformanceObserver } from 'node:perf_hooks'

const KINDS = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb'
}

/**
 * Starts counting; the function returned gives a copy of the figures so far
 * ({ minor: { count, ms }, major: … }). Node delivers the entries a moment
 * after each GC, so a read may miss the last one or two.
 */
export function countGarbageCollections () {
  const seen = {}
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = KINDS[entry.detail?.kind] ?? String(entry.detail?.kind)
      const figures = seen[kind] ??= { count: 0, ms: 0 }
      figures.count += 1
      figures.ms += entry.duration
    }
  }).observe({ entryTypes: ['gc'] })
  return () => structuredClone(seen)
}
