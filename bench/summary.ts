// Medians over the repetitions of each (scenario, contender), and the
// throughput ratios the issue asks for side by side.
import { RATIOS } from './contenders.ts'
import type { RunResult } from './run-once.ts'

export interface Cell {
  scenario: string
  contender: string
  runs: number
  failed: number
  mibPerSecond: { median: number, min: number, max: number } | null
  peakRssMiB: number | null
  cpuSecondsPerGiB: number | null
  mainThreadCpuSecondsPerGiB: number | null
  diskWriteMiB: number | null
  eventLoopP99Ms: number | null
  eventLoopMaxMs: number | null
  /** Median share of the run the main thread waited for a CPU, in %. */
  mainThreadWaitPercent: number | null
  healthP99Ms: number | null
  /** Median major GCs of the main thread per GiB uploaded (Node contenders). */
  majorGcPerGiB: number | null
  /** Most files any run left in the server's temporary directory (contenders with one). */
  tempFilesLeft: number | null
}

export interface Ratio {
  scenario: string
  /** By 'x/y' (RATIOS in contenders.ts): throughput of x over y's (medians); null when either is missing. */
  values: Record<string, number | null>
}

export function median (values: number[]): number | null {
  if (values.length === 0) return null
  const sorted = [...values].sort((x, y) => x - y)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle] as number : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2
}

function medianOf (runs: RunResult[], pick: (run: RunResult) => number | null | undefined): number | null {
  return median(runs.map(pick).filter((value): value is number => typeof value === 'number' && Number.isFinite(value)))
}

export function summarize (results: RunResult[], scenarios: string[], contenders: string[]): Cell[] {
  const cells: Cell[] = []
  for (const scenario of scenarios) {
    for (const contender of contenders) {
      const all = results.filter((run) => run.scenario === scenario && run.contender === contender)
      if (all.length === 0) continue
      const ok = all.filter((run) => run.ok)
      const speeds = ok.map((run) => run.mibPerSecond)
      cells.push({
        scenario,
        contender,
        runs: all.length,
        failed: all.length - ok.length,
        mibPerSecond: speeds.length === 0 ? null : { median: median(speeds) as number, min: Math.min(...speeds), max: Math.max(...speeds) },
        peakRssMiB: medianOf(ok, (run) => run.peakRssMiB),
        cpuSecondsPerGiB: medianOf(ok, (run) => run.cpuSecondsPerGiB),
        mainThreadCpuSecondsPerGiB: medianOf(ok, (run) => run.mainThreadCpuSecondsPerGiB),
        diskWriteMiB: medianOf(ok, (run) => run.diskWriteMiB),
        eventLoopP99Ms: medianOf(ok, (run) => run.eventLoopMs?.p99),
        eventLoopMaxMs: medianOf(ok, (run) => run.eventLoopMs?.max),
        mainThreadWaitPercent: medianOf(ok, (run) => run.mainThreadWaitShare === null ? null : run.mainThreadWaitShare * 100),
        healthP99Ms: medianOf(ok, (run) => run.healthMs?.p99),
        majorGcPerGiB: medianOf(ok, (run) => run.gcPerGiB?.major),
        tempFilesLeft: all.some((run) => run.tempFilesLeft !== undefined) ? Math.max(...all.map((run) => run.tempFilesLeft ?? 0)) : null
      })
    }
  }
  return cells
}

export function ratios (cells: Cell[], scenarios: string[]): Ratio[] {
  const speed = (scenario: string, contender: string): number | null =>
    cells.find((cell) => cell.scenario === scenario && cell.contender === contender)?.mibPerSecond?.median ?? null
  const over = (scenario: string, x: string, y: string): number | null => {
    const top = speed(scenario, x)
    const bottom = speed(scenario, y)
    return top === null || bottom === null || bottom === 0 ? null : top / bottom
  }
  return scenarios.map((scenario) => ({
    scenario,
    values: Object.fromEntries(RATIOS.map(([x, y]) => [`${x}/${y}`, over(scenario, x, y)]))
  }))
}
