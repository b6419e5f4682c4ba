// What a contender's server used during a run, read from /proc for its whole
// process tree (a pre-fork server's master and workers) and for every thread:
// sampled every `intervalMs` from the start of the measured uploads to their
// end, so threads and processes that exit during the run are still seen.
//
// Attribution: a process's own utime + stime (/proc/<pid>/stat) includes the
// threads that have exited, so "all threads" is exact whatever the sampling
// caught; the main thread (tid = pid) never exits before its process, so it is
// exact too. Only the split of the rest among threads depends on sampling: a
// thread that exited counts with its last sample, and what no sample saw
// (threads born and gone between two samples, and each exited thread's time
// after its last sample) is `exitedUnseenSeconds`. A child process that exits
// and is reaped moves its time into its parent's cutime/cstime, counted there.
import { diskWrites, processCpu, processTree, peakRss, rss, threadCpu, threadIds, threadRunQueueWait } from './proc-stats.ts'

export interface ThreadFigure {
  pid: number
  tid: number
  name: string
  /** CPU seconds during the run (to its last sample, if it exited). */
  seconds: number
  exited: boolean
}

export interface TreeFigures {
  /** CPU seconds of every thread of every process in the tree during the run. */
  cpuSeconds: number
  /** The root process's main thread (its event loop, for a Node server). */
  mainThreadSeconds: number
  /** Seconds the main thread was runnable but waited for a CPU (null without schedstat). */
  mainThreadWaitSeconds: number | null
  /** Threads that exited during the run, as sampled; and what no sample saw of them. */
  exitedSampledSeconds: number
  exitedUnseenSeconds: number
  /** Threads seen, busiest first (those with ≥ 10 ms). */
  threads: ThreadFigure[]
  /** Most processes in the tree at once. */
  processes: number
  /** One process: its VmHWM (exact peak, over its life); several: the largest sampled sum of VmRSS. */
  peakRssBytes: number | null
  /** write_bytes of /proc/<pid>/io over the tree during the run (reaped children's included). */
  diskWriteBytes: number | null
  samples: number
}

interface ProcessState { cpuBase: { own: number, children: number }, cpuLast: { own: number, children: number }, diskBase: number | null, diskLast: number | null, alive: boolean }
interface ThreadState { pid: number, tid: number, name: string, base: number, last: number, alive: boolean }

export function startTreeSampler (root: number, intervalMs = 200): { stop: () => TreeFigures } {
  const processes = new Map<number, ProcessState>()
  const threads = new Map<string, ThreadState>()
  let peakSum = 0
  let mostProcesses = 0
  let samples = 0

  const sample = (first: boolean): void => {
    samples += 1
    const tree = processTree(root)
    mostProcesses = Math.max(mostProcesses, tree.length)
    for (const state of processes.values()) state.alive = false
    for (const state of threads.values()) state.alive = false
    let rssSum = 0
    for (const pid of tree) {
      const cpu = processCpu(pid)
      if (cpu === null) continue
      const disk = diskWrites(pid)?.writeBytes ?? null
      const known = processes.get(pid)
      // A process born during the run counts from zero.
      if (known === undefined) processes.set(pid, { cpuBase: first ? cpu : { own: 0, children: 0 }, cpuLast: cpu, diskBase: first ? disk : (disk === null ? null : 0), diskLast: disk, alive: true })
      else Object.assign(known, { cpuLast: cpu, diskLast: disk, alive: true })
      rssSum += rss(pid) ?? 0
      for (const tid of threadIds(pid)) {
        const figure = threadCpu(pid, tid)
        if (figure === null) continue
        const key = `${pid}/${tid}`
        const seen = threads.get(key)
        if (seen === undefined) threads.set(key, { pid, tid, name: figure.name, base: first ? figure.seconds : 0, last: figure.seconds, alive: true })
        else Object.assign(seen, { last: figure.seconds, name: figure.name, alive: true })
      }
    }
    peakSum = Math.max(peakSum, rssSum)
  }

  sample(true)
  const waitBase = threadRunQueueWait(root, root)
  const timer = setInterval(() => { sample(false) }, intervalMs)
  timer.unref()

  return {
    stop: () => {
      clearInterval(timer)
      sample(false)
      const waitLast = threadRunQueueWait(root, root)
      let cpuSeconds = 0
      let disk: number | null = 0
      for (const state of processes.values()) {
        // A process gone by the end was reaped: its time is in its parent's children figure.
        if (!state.alive) continue
        cpuSeconds += state.cpuLast.own - state.cpuBase.own + state.cpuLast.children - state.cpuBase.children
        if (state.diskLast === null || state.diskBase === null || disk === null) disk = null
        else disk += state.diskLast - state.diskBase
      }
      const list: ThreadFigure[] = [...threads.values()].map((state) => ({ pid: state.pid, tid: state.tid, name: state.name, seconds: state.last - state.base, exited: !state.alive }))
      const mainThread = list.find((thread) => thread.pid === root && thread.tid === root)?.seconds ?? 0
      let exitedSampled = 0
      let exitedUnseen = 0
      for (const [pid, state] of processes) {
        if (!state.alive) continue
        const own = list.filter((thread) => thread.pid === pid)
        const live = own.filter((thread) => !thread.exited).reduce((sum, thread) => sum + thread.seconds, 0)
        const sampled = own.filter((thread) => thread.exited).reduce((sum, thread) => sum + thread.seconds, 0)
        exitedSampled += sampled
        exitedUnseen += Math.max(0, state.cpuLast.own - state.cpuBase.own - live - sampled)
      }
      return {
        cpuSeconds,
        mainThreadSeconds: mainThread,
        mainThreadWaitSeconds: waitBase === null || waitLast === null ? null : waitLast - waitBase,
        exitedSampledSeconds: exitedSampled,
        exitedUnseenSeconds: exitedUnseen,
        threads: list.filter((thread) => thread.seconds >= 0.01).sort((x, y) => y.seconds - x.seconds),
        processes: mostProcesses,
        peakRssBytes: mostProcesses <= 1 ? peakRss(root) : peakSum,
        diskWriteBytes: disk,
        samples
      }
    }
  }
}
