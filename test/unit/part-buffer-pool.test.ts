import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { PartBufferPool } from '../../lib/upload/part-buffer-pool.ts'

t.test('buffers within the budget come at once, of exactly the size asked', async (t) => {
  const pool = new PartBufferPool(100)
  const a = await pool.acquire(60)
  const b = await pool.acquire(40)
  t.equal(a.byteLength, 60)
  t.equal(b.byteLength, 40)
  t.not(a, b)
  t.equal(pool.used, 100)
  t.equal(pool.peak, 100)
})

t.test('a released buffer is reused for the next part of its size', async (t) => {
  const pool = new PartBufferPool(100)
  const a = await pool.acquire(50)
  pool.release(a)
  t.equal(pool.free, 50)
  t.equal(await pool.acquire(50), a, 'the same ArrayBuffer')
  t.equal(pool.free, 0)
})

t.test('over the budget, requests wait for a release, first come first served', async (t) => {
  const pool = new PartBufferPool(100)
  const held = await pool.acquire(80)
  const order: string[] = []
  const a = pool.acquire(50).then(() => order.push('a'))
  const b = pool.acquire(10).then(() => order.push('b'))
  await new Promise((resolve) => setImmediate(resolve))
  t.same(order, [], 'both wait (b queues behind a even though it would fit)')
  t.equal(pool.waiting, 2)
  pool.release(held)
  await Promise.all([a, b])
  t.same(order, ['a', 'b'])
  t.equal(pool.used, 60)
  t.ok(pool.used + pool.free <= 100, 'in use + free stay within the budget')
})

t.test('a buffer larger than the whole budget goes through when nothing is in use', async (t) => {
  const pool = new PartBufferPool(100)
  t.equal((await pool.acquire(500)).byteLength, 500)
})

t.test('an aborted wait rejects, leaves the queue, and unblocks those behind it', async (t) => {
  const pool = new PartBufferPool(100)
  await pool.acquire(90)
  const controller = new AbortController()
  const big = pool.acquire(50, controller.signal)
  let smallDone = false
  const small = pool.acquire(10).then(() => { smallDone = true })
  controller.abort(new Error('upload failed'))
  await t.rejects(big, /upload failed/)
  await small
  t.ok(smallDone)
  t.equal(pool.used, 100)
  t.equal(pool.waiting, 0)
})

t.test('a forgotten buffer (a thread died with it) frees its room without coming back', async (t) => {
  const pool = new PartBufferPool(100)
  await pool.acquire(100)
  const waiting = pool.acquire(100)
  pool.forget(100)
  t.equal((await waiting).byteLength, 100)
  t.equal(pool.free, 0)
})

t.test('free buffers of another size make way so the total stays within the budget', async (t) => {
  const pool = new PartBufferPool(100)
  pool.release(await pool.acquire(60))
  t.equal(pool.free, 60)
  await pool.acquire(70)
  t.ok(pool.used + pool.free <= 100, `used ${pool.used} + free ${pool.free}`)
})

t.test('free buffers are dropped after the pool has been idle', async (t) => {
  const pool = new PartBufferPool(100, { idleMs: 20 })
  pool.release(await pool.acquire(50))
  t.equal(pool.free, 50)
  await sleep(60)
  t.equal(pool.free, 0)
})
