// Figures of another process (and of the host) read from /proc, so they cover
// every thread of a server without trusting the server's own code. Linux
// only: elsewhere they are null and the report shows "—".
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

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
