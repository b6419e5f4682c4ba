import t from 'tap'
import { MemoryBudget } from '../../lib/upload/memory-budget.ts'

t.test('reservations within the limit go through at once', async (t) => {
  const budget = new MemoryBudget(100)
  await budget.reserve(60)
  await budget.reserve(40)
  t.equal(budget.used, 100)
  t.equal(budget.peak, 100)
})

t.test('a reservation over the limit waits for a release, first come first served', async (t) => {
  const budget = new MemoryBudget(100)
  await budget.reserve(80)
  const order: string[] = []
  const a = budget.reserve(50).then(() => order.push('a'))
  const b = budget.reserve(10).then(() => order.push('b'))
  await new Promise((resolve) => setImmediate(resolve))
  t.same(order, [], 'both wait (b queues behind a even though it would fit)')
  t.equal(budget.waiting, 2)
  budget.release(80)
  await Promise.all([a, b])
  t.same(order, ['a', 'b'])
  t.equal(budget.used, 60)
  t.ok(budget.peak <= 100)
})

t.test('a part larger than the whole budget goes through when nothing is held', async (t) => {
  const budget = new MemoryBudget(100)
  await budget.reserve(500)
  t.equal(budget.used, 500)
})

t.test('an aborted wait rejects, leaves the queue, and unblocks those behind it', async (t) => {
  const budget = new MemoryBudget(100)
  await budget.reserve(90)
  const controller = new AbortController()
  const big = budget.reserve(50, controller.signal)
  let smallDone = false
  const small = budget.reserve(10).then(() => { smallDone = true })
  controller.abort(new Error('upload failed'))
  await t.rejects(big, /upload failed/)
  await small
  t.ok(smallDone, 'the reservation behind it went through')
  t.equal(budget.used, 100)
  t.equal(budget.waiting, 0)
})
