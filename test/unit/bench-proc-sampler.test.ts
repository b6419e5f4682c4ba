// The bench's /proc sampler (bench/proc-sampler.ts): a process whose worker
// thread burns CPU and exits mid-run, and whose child process burns CPU too,
// must show it all — the exited thread's time in "all threads" and not in the
// main thread's, the child's in the tree's. Linux only (the bench reads /proc).
// Fixed work (PBKDF2 rounds), not wall-clock loops: the machine may be busy.
import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { startTreeSampler } from '../../bench/proc-sampler.ts'

// Three rounds (~0.15 s on Node 24): once, the worker's start-up was half of what it counted,
// and the bounds below had a tick or two to spare.
const work = "for (let i = 0; i < 3; i++) require('node:crypto').pbkdf2Sync('x', 'y', 300000, 32, 'sha256')"
// Idle until the process that started it is gone (a test killed before its teardown leaves no
// process behind: an idle interval kept orphans alive for ever).
const idle = 'const parent = process.ppid; setInterval(() => { if (process.ppid !== parent) process.exit() }, 200)'
// Main thread: idle. Once the test has taken its first look (a byte on stdin): a child process
// does the work, says "child done <its CPU seconds for the work>" and idles; a worker thread
// does the work and exits, "done" when it has. (Work started on a timer had sometimes begun
// before the first look on a busy machine, or finished before it.) The test waits for both
// lines, not for a time (a child given 1 s on a busy machine had once done less than half its
// work), and holds the tree to the child's own count of its work.
const childScript = `const before = process.cpuUsage(); ${work}; const spent = process.cpuUsage(before); console.log('child done ' + (spent.user + spent.system) / 1e6); ${idle}`
const script = `
const { Worker } = require('node:worker_threads')
const { spawn } = require('node:child_process')
process.stdin.once('data', () => {
  process.stdin.pause()
  spawn(process.execPath, ['-e', ${JSON.stringify(childScript)}], { stdio: ['ignore', 'inherit', 'ignore'] })
  new Worker(${JSON.stringify(work)}, { eval: true }).on('exit', () => { console.log('done') })
})
${idle}
`

t.test('exited threads and child processes are counted, the main thread apart', { skip: existsSync('/proc/self/task') ? false : 'no /proc here' }, async (t) => {
  // A process group of its own: the teardown ends the child process with it (an orphan kept
  // the test's stdout open, and outlived every run).
  const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'inherit'], detached: true })
  t.teardown(() => { try { process.kill(-(child.pid as number), 'SIGKILL') } catch {} })
  await sleep(100)
  const sampler = startTreeSampler(child.pid as number, 20)
  child.stdin.write('go\n')
  // Both lines, in either order; bounded, and unref'd so the file ends when the test does.
  let workerDone = false
  let childWork: number | null = null
  const both = (async () => {
    for await (const line of createInterface({ input: child.stdout })) {
      if (line.trim() === 'done') workerDone = true
      const reported = /^child done ([\d.e-]+)$/.exec(line.trim())
      if (reported !== null) childWork = Number(reported[1])
      if (workerDone && childWork !== null) return
    }
  })()
  await Promise.race([both, sleep(60_000, undefined, { ref: false })])
  t.ok(workerDone && childWork !== null, 'the worker thread and the child process both did their work')
  const figures = sampler.stop()
  t.equal(figures.processes, 2, 'the child process is in the tree')
  const exited = figures.exitedSampledSeconds + figures.exitedUnseenSeconds
  // The exited worker thread's work is counted (not lost with its /proc entry), and not as the main thread's.
  t.ok(exited >= 0.05, `exited threads: ${figures.exitedSampledSeconds} + ${figures.exitedUnseenSeconds} s`)
  t.ok(figures.mainThreadSeconds < exited, `the main thread only idled: ${figures.mainThreadSeconds} s`)
  // The tree's figure holds the main thread, the exited worker and the child's work (less
  // three 10 ms ticks: /proc counts each process and thread in whole ticks).
  const expected = figures.mainThreadSeconds + exited + (childWork ?? 0) - 0.03
  t.ok(figures.cpuSeconds >= expected, `all threads, whole tree: ${figures.cpuSeconds} s ≥ ${expected.toFixed(2)} (the child counted ${childWork} s of work)`)
  t.equal(figures.diskWriteBytes, 0, 'nothing written to disk')
  t.ok(figures.peakRssBytes !== null && figures.peakRssBytes > 0, 'RSS summed over the tree')
})

t.test('the main thread\'s wait for a CPU is measured (two busy processes on one core)', { skip: existsSync('/proc/self/task/' + process.pid + '/schedstat') ? false : 'no schedstat here' }, async (t) => {
  // Both run the same fixed work pinned to CPU 0 (taskset, util-linux): each waits while the other runs.
  // Three rounds of work: once, one was 0.05 s on a fast core (CI, Node 24), too near the bound.
  const busy = `setTimeout(() => { ${work}; console.log('done') }, 300); ${idle}`
  const measured = spawn('taskset', ['-c', '0', process.execPath, '-e', busy], { stdio: ['ignore', 'pipe', 'inherit'] })
  const rival = spawn('taskset', ['-c', '0', process.execPath, '-e', busy], { stdio: ['ignore', 'ignore', 'inherit'] })
  t.teardown(() => { measured.kill('SIGKILL'); rival.kill('SIGKILL') })
  await sleep(100)
  const sampler = startTreeSampler(measured.pid as number, 20)
  await Promise.race([once(measured.stdout, 'data'), sleep(60_000, undefined, { ref: false })])
  const figures = sampler.stop()
  t.ok(figures.mainThreadSeconds >= 0.05, `the main thread worked: ${figures.mainThreadSeconds} s`)
  t.ok(figures.mainThreadWaitSeconds !== null && figures.mainThreadWaitSeconds >= 0.3 * figures.mainThreadSeconds, `and waited for the core it shares: ${figures.mainThreadWaitSeconds} s`)
})
