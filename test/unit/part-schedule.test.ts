import t from 'tap'
import { partSchedule, scheduleCapacity, type ScheduleOptions } from '../../lib/upload/part-schedule.ts'
import { MAX_OBJECT_SIZE, MAX_PART_SIZE, MIN_PART_SIZE, MiB, GiB } from '../../lib/options.ts'

/** Walks the schedule like an upload of `size` bytes would; returns the part sizes. */
function partsFor (options: ScheduleOptions, size: number): number[] {
  const sizeOf = partSchedule(options)
  const parts: number[] = []
  let remaining = size
  for (let n = 1; remaining > 0 && n <= 20_000; n++) {
    const part = Math.min(sizeOf(n), remaining)
    parts.push(part)
    remaining -= part
  }
  return parts
}

const defaults: ScheduleOptions = { partSize: MIN_PART_SIZE, maxParts: 10_000, maxFileSize: MAX_OBJECT_SIZE, equalParts: false }

t.test('size unknown: 5 TiB fits in 10,000 parts, none under 5 MiB but the last, none over 5 GiB', async (t) => {
  const parts = partsFor(defaults, MAX_OBJECT_SIZE)
  t.ok(parts.length <= 10_000, `${parts.length} parts`)
  t.ok(parts.slice(0, -1).every((p) => p >= MIN_PART_SIZE), 'every part but the last ≥ 5 MiB')
  t.ok(parts.every((p) => p <= MAX_PART_SIZE), 'no part over 5 GiB')
  t.equal(parts.reduce((a, b) => a + b, 0), MAX_OBJECT_SIZE)
  t.ok(scheduleCapacity(defaults) >= MAX_OBJECT_SIZE)
})

t.test('size unknown: the schedule never shrinks and grows as late as it can', async (t) => {
  const sizeOf = partSchedule(defaults)
  let previous = 0
  for (let n = 1; n <= 10_000; n++) {
    const size = sizeOf(n)
    if (size < previous) t.fail(`part ${n} is smaller than part ${n - 1}`)
    previous = size
  }
  t.equal(sizeOf(900), MIN_PART_SIZE, 'the first 900 parts stay at 5 MiB (files up to ~4.4 GiB)')
  // The peers' fixed 5 MiB parts fail at 10,000 parts (~48.8 GiB); here that size is plain sailing.
  t.ok(partsFor(defaults, 100 * GiB).length < 10_000, '100 GiB of unknown length fits')
})

t.test('a small maxParts forces growth early; the capacity still covers maxFileSize', async (t) => {
  const options = { ...defaults, maxParts: 20, maxFileSize: GiB }
  const parts = partsFor(options, GiB)
  t.ok(parts.length <= 20, `${parts.length} parts for 1 GiB with maxParts 20`)
  t.ok(parts.slice(0, -1).every((p) => p >= MIN_PART_SIZE))
  t.ok(new Set(parts.slice(0, -1)).size > 1, 'part sizes grew')
  t.ok(scheduleCapacity({ ...options, maxParts: 1000 }) >= GiB)
})

t.test('a store allowing 1,000 parts takes as much as 1,000 parts of ≤ 5 GiB can hold', async (t) => {
  const options = { ...defaults, maxParts: 1000 }
  const capacity = scheduleCapacity(options)
  // 1,000 × 5 GiB is 4.88 TiB: nothing can reach 5 TiB there; the schedule gets within 1 %.
  t.ok(capacity >= 0.99 * 1000 * MAX_PART_SIZE, `capacity ${(capacity / 1024 ** 4).toFixed(2)} TiB`)
  const parts = partsFor(options, capacity)
  t.ok(parts.length <= 1000, `${parts.length} parts`)
  t.ok(parts.every((p) => p <= MAX_PART_SIZE))
})

t.test('size known: one part size for all, the smallest that fits, in whole MiB', async (t) => {
  t.equal(partSchedule({ ...defaults, expectedSize: 100 * MiB })(1), MIN_PART_SIZE, 'small files keep partSize')
  const sizeOf = partSchedule({ ...defaults, maxParts: 20, expectedSize: 256 * MiB })
  t.same([1, 2, 3, 4, 20].map(sizeOf), [5 * MiB, 5 * MiB, 10 * MiB, 14 * MiB, 14 * MiB], '256 MiB in ≤ 20 parts → 14 MiB parts, the first ones earning their size')
  t.ok(partsFor({ ...defaults, maxParts: 20, expectedSize: 256 * MiB }, 256 * MiB).length <= 20, 'the ramp still fits the file in 20 parts')
  t.ok(partsFor({ ...defaults, expectedSize: MAX_OBJECT_SIZE }, MAX_OBJECT_SIZE).length <= 10_000)
  const declaredHuge = partSchedule({ ...defaults, expectedSize: 10 * MAX_OBJECT_SIZE })(100)
  t.ok(declaredHuge >= Math.ceil(MAX_OBJECT_SIZE / 10_000 / MiB) * MiB && declaredHuge <= Math.ceil(MAX_OBJECT_SIZE / 10_000 / MiB) * MiB + 2 * MiB, `a declared size beyond maxFileSize is capped (${declaredHuge / MiB} MiB: a MiB or two more make up for the ramp)`)
})

t.test('equalParts with the size unknown keeps partSize throughout', async (t) => {
  const options = { ...defaults, equalParts: true, partSize: 8 * MiB, maxParts: 1000 }
  const sizeOf = partSchedule(options)
  t.equal(sizeOf(1), 8 * MiB)
  t.equal(sizeOf(1000), 8 * MiB)
  t.equal(scheduleCapacity(options), 8000 * MiB)
})

t.test('a part is never larger than the parts before it together: a declared size earns nothing by itself', async (t) => {
  const sizeOf = partSchedule({ ...defaults, expectedSize: MAX_OBJECT_SIZE })
  t.same([1, 2, 3, 4, 5].map((n) => sizeOf(n) / MiB), [5, 5, 10, 20, 40])
  const capped = partSchedule({ ...defaults, maxPartSize: 64 * MiB, expectedSize: MAX_OBJECT_SIZE })
  t.same([1, 2, 3, 4, 5, 6, 7].map((n) => capped(n) / MiB), [5, 5, 10, 20, 40, 64, 64], 'and never larger than maxPartSize')
  const equal = partSchedule({ ...defaults, equalParts: true, maxPartSize: 64 * MiB, expectedSize: MAX_OBJECT_SIZE })
  t.equal(equal(1), equal(2), 'equalParts keeps every part the same size')
})
