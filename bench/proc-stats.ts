// Figures of another process (and of the host) read from /proc, so they cover
// every thread of a server without trusting the server's own code. Linux
// only: elsewhere they are null and the report shows "—".
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'

const ticksPerSecond = ((): number => {
  const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })
  const ticks = Number(out.stdout?.trim())
  return Number.isFinite(ticks) && ticks > 0 ? ticks : 100
})()

function readOrNull (path: string): string | null {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return null
  }
}

/** User + system CPU seconds a process has used so far, all threads included. */
export function cpuSeconds (pid: number): number | null {
  const stat = readOrNull(`/proc/${pid}/stat`)
  if (stat === null) return null
  // The command name (field 2) may hold spaces; the fields after its ')' are fixed.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const utime = Number(fields[11])
  const stime = Number(fields[12])
  return Number.isFinite(utime) && Number.isFinite(stime) ? (utime + stime) / ticksPerSecond : null
}

/** Peak resident set of a process (VmHWM), in bytes. */
export function peakRss (pid: number): number | null {
  const status = readOrNull(`/proc/${pid}/status`)
  const match = status === null ? null : /^VmHWM:\s+(\d+) kB$/m.exec(status)
  return match?.[1] === undefined ? null : Number(match[1]) * 1024
}

/** Busy and total jiffies of all host CPUs: the difference of two readings gives the host's load during a run. */
export function hostCpu (): { busy: number, total: number } | null {
  const line = readOrNull('/proc/stat')?.split('\n')[0]
  if (line === undefined || !line.startsWith('cpu ')) return null
  const values = line.trim().split(/\s+/).slice(1).map(Number)
  const total = values.reduce((sum, value) => sum + value, 0)
  // idle + iowait are not busy.
  const idle = (values[3] ?? 0) + (values[4] ?? 0)
  return { busy: total - idle, total }
}

/**
 * Bytes a process has caused to be written to storage so far (`write_bytes` of
 * /proc/<pid>/io: counted as the page cache is dirtied, so a temp file deleted
 * before writeback still counts; `cancelled_write_bytes` is the part of it that
 * never reached the disk). Reaped child processes' writes are included. Null
 * where /proc has no io file (not Linux, or accounting off).
 */
export function diskWrites (pid: number): { writeBytes: number, cancelledWriteBytes: number } | null {
  const io = readOrNull(`/proc/${pid}/io`)
  if (io === null) return null
  const field = (name: string): number | null => {
    const match = new RegExp(`^${name}: (\\d+)$`, 'm').exec(io)
    return match?.[1] === undefined ? null : Number(match[1])
  }
  const writeBytes = field('write_bytes')
  const cancelledWriteBytes = field('cancelled_write_bytes')
  return writeBytes === null || cancelledWriteBytes === null ? null : { writeBytes, cancelledWriteBytes }
}

/** The fields after the command name of a /proc stat line (field 3 is index 0). */
function statFields (path: string): string[] | null {
  const stat = readOrNull(path)
  return stat === null ? null : stat.slice(stat.lastIndexOf(')') + 2).split(' ')
}

/**
 * CPU seconds of one process: its own threads, live and exited (`own`), and
 * its reaped children's (`children`, cutime + cstime): a pre-fork server's
 * worker that exits and is waited for still counts there.
 */
export function processCpu (pid: number): { own: number, children: number } | null {
  const fields = statFields(`/proc/${pid}/stat`)
  if (fields === null) return null
  const own = (Number(fields[11]) + Number(fields[12])) / ticksPerSecond
  const children = (Number(fields[13]) + Number(fields[14])) / ticksPerSecond
  return Number.isFinite(own) && Number.isFinite(children) ? { own, children } : null
}

/** User + system CPU seconds of one thread, and its name (comm: Node ≥ 22 names its threads, Node 20 calls them all "node"). */
export function threadCpu (pid: number, tid: number): { seconds: number, name: string } | null {
  const fields = statFields(`/proc/${pid}/task/${tid}/stat`)
  if (fields === null) return null
  const seconds = (Number(fields[11]) + Number(fields[12])) / ticksPerSecond
  const name = readOrNull(`/proc/${pid}/task/${tid}/comm`)?.trim() ?? '?'
  return Number.isFinite(seconds) ? { seconds, name } : null
}

/**
 * Seconds a thread has spent runnable but waiting for a CPU (the second field
 * of /proc/<pid>/task/<tid>/schedstat, in ns); null where the kernel keeps no
 * schedstat. An event loop that waits here is late however little work it has.
 */
export function threadRunQueueWait (pid: number, tid: number): number | null {
  const text = readOrNull(`/proc/${pid}/task/${tid}/schedstat`)
  const waited = Number(text?.trim().split(/\s+/)[1])
  return text === null || !Number.isFinite(waited) ? null : waited / 1e9
}

/** Thread ids of a live process. */
export function threadIds (pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).map(Number).filter(Number.isInteger)
  } catch {
    return []
  }
}

/** The process and all its descendants (from /proc/<pid>/task/<tid>/children), root first. */
export function processTree (pid: number): number[] {
  const out: number[] = []
  const queue = [pid]
  // Bounded: a server tree here is a handful of processes.
  while (queue.length > 0 && out.length < 1000) {
    const next = queue.shift() as number
    if (out.includes(next)) continue
    out.push(next)
    for (const tid of threadIds(next)) {
      const children = readOrNull(`/proc/${next}/task/${tid}/children`)
      if (children === null) continue
      for (const child of children.trim().split(/\s+/)) if (child !== '') queue.push(Number(child))
    }
  }
  return out.filter((id) => existsSync(`/proc/${id}`))
}

/** Resident set of a process now (VmRSS), in bytes. */
export function rss (pid: number): number | null {
  const status = readOrNull(`/proc/${pid}/status`)
  const match = status === null ? null : /^VmRSS:\s+(\d+) kB$/m.exec(status)
  return match?.[1] === undefined ? null : Number(match[1]) * 1024
}
