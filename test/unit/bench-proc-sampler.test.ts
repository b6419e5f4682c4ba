// The bench's /proc sampler (bench/proc-sampler.ts): a process whose worker
// thread burns CPU and exits mid-run, and whose child process burns CPU too,
// must show it all — the exited thread's time in "all threads" and not in the
// main thread's, the child's in the tree's. Linux only (the bench reads /proc).
// Fixed work (PBKDF2 rounds), not wall-clock loops: the machine may be busy.
import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { startTreeSampler } from '../../bench/proc-sampler.ts'

const work = "require('node:crypto').pbkdf2Sync('x', 'y', 300000, 32, 'sha256')"
// Main thread: idle. A child process: the work, then idle until killed. A worker thread: the work, then it exits; "done" when it has.
// Both start their work 300 ms in, well after the sampler's first look (100 ms): a child
// that worked at once had sometimes finished before it (CI, Node 24: tree 0.16 s < 0.16…).
const script = `
const { Worker } = require('node:worker_threads')
const { spawn } = require('node:child_process')
spawn(process.execPath, ['-e', ${JSON.stringify(`setTimeout(() => { ${work} }, 300); setInterval(() => {}, 1000)`)}], { stdio: 'ignore' })
setTimeout(() => {
  new Worker(${JSON.stringify(work)}, { eval: true }).on('exit', () => { console.log('done') })
}, 300)
setInterval(() => {}, 1000)
`

t.test('exited threads and child processes are counted, the main thread apart', { skip: existsSync('/proc/self/task') ? false : 'no /proc here' }, async (t) => {
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { child.kill('SIGKILL') })
  await sleep(100)
  const sampler = startTreeSampler(child.pid as number, 20)
  // Bounded, and unref'd so the file ends when the test does.
  await Promise.race([once(child.stdout, 'data'), sleep(60_000, undefined, { ref: false })])
  // The child's work runs beside the worker's; give it time to end on a busy machine.
  await sleep(1000)
  const figures = sampler.stop()
  t.equal(figures.processes, 2, 'the child process is in the tree')
  const exited = figures.exitedSampledSeconds + figures.exitedUnseenSeconds
  // The exited worker thread's work is counted (not lost with its /proc entry), and not as the main thread's.
  t.ok(exited >= 0.05, `exited threads: ${figures.exitedSampledSeconds} + ${figures.exitedUnseenSeconds} s`)
  t.ok(figures.mainThreadSeconds < exited, `the main thread only idled: ${figures.mainThreadSeconds} s`)
  // The tree's figure holds the main thread, the exited worker and the child's same work.
  t.ok(figures.cpuSeconds >= figures.mainThreadSeconds + exited + 0.5 * exited, `all threads, whole tree: ${figures.cpuSeconds} s`)
  t.equal(figures.diskWriteBytes, 0, 'nothing written to disk')
  t.ok(figures.peakRssBytes !== null && figures.peakRssBytes > 0, 'RSS summed over the tree')
})

t.test('the main thread\'s wait for a CPU is measured (two busy processes on one core)', { skip: existsSync('/proc/self/task/' + process.pid + '/schedstat') ? false : 'no schedstat here' }, async (t) => {
  // Both run the same fixed work pinned to CPU 0 (taskset, util-linux): each waits while the other runs.
  // Three times the work above: once, it was 0.05 s on a fast core (CI, Node 24), too near the bound.
  const busy = `setTimeout(() => { for (let i = 0; i < 3; i++) ${work}; console.log('done') }, 300); setInterval(() => {}, 1000)`
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
