import { MAX_PART_SIZE, MiB, type S3ChunkConfig } from '../options.js'

export interface ScheduleOptions {
  /** The configured (smallest) part size. */
  partSize: number
  /** The largest part made (a fraction of the memory budget; at most S3's 5 GiB). */
  maxPartSize?: number
  /** Most parts the store allows. */
  maxParts: number
  /** Largest file to make room for. */
  maxFileSize: number
  /** Keep every part but the last the same size. */
  equalParts: boolean
  /** An upper bound of the file's size when known (the request's Content-Length). */
  expectedSize?: number
}

/** Size of part `number` (1-based). */
export type PartSizeFn = (number: number) => number

/**
 * Chooses part sizes so that a file up to `maxFileSize` fits in `maxParts`
 * parts with no part but the last under `partSize` (≥ 5 MiB) or over
 * `maxPartSize` (default 5 GiB).
 *
 * - Size known up front: one size for every part, the smallest that fits.
 * - Size unknown: parts start at `partSize` and double every G parts, G as
 *   large as possible (growth as late as possible, so small and medium files
 *   keep small parts).
 * - `equalParts` with the size unknown: `partSize` throughout (the store then
 *   holds at most partSize × maxParts).
 *
 * And, but with `equalParts`, a part is never larger than all the parts
 * before it together (or `partSize`): a size is only ever earned by bytes
 * already received, so a client that declares 5 TiB and sends a trickle
 * never gets a part sized for 5 TiB.
 */
export function partSchedule (options: ScheduleOptions): PartSizeFn {
  const raw = rawSchedule(options)
  if (options.equalParts) return raw
  const sizes: number[] = []
  let received = 0
  return (number) => {
    while (sizes.length < number) {
      const size = Math.min(raw(sizes.length + 1), Math.max(options.partSize, received))
      sizes.push(size)
      received += size
    }
    return sizes[number - 1] as number
  }
}

function rawSchedule (options: ScheduleOptions): PartSizeFn {
  const { partSize, maxParts } = options
  const cap = capOf(options)
  if (options.expectedSize !== undefined && Number.isFinite(options.expectedSize)) {
    const size = Math.min(options.expectedSize, options.maxFileSize)
    let fixed = fittedPartSize(size, partSize, maxParts, cap)
    // The first parts are smaller while they earn the size (unless equal parts are asked for): make up for them.
    while (!options.equalParts && fixed < cap && rampedCapacity(fixed, partSize, maxParts) < size) fixed += MiB
    const chosen = Math.min(fixed, cap)
    return () => chosen
  }
  if (options.equalParts || capacity(partSize, maxParts, maxParts, cap) >= options.maxFileSize) return () => partSize
  const group = growthGroup(partSize, maxParts, options.maxFileSize, cap)
  return (number) => Math.min(cap, partSize * 2 ** Math.floor((number - 1) / group))
}

function capOf (options: Pick<ScheduleOptions, 'partSize' | 'maxPartSize'>): number {
  return Math.max(options.partSize, Math.min(MAX_PART_SIZE, options.maxPartSize ?? MAX_PART_SIZE))
}

/** The most bytes the schedule can hold in `maxParts` parts (its first parts ramping up, as uploads see them). */
export function scheduleCapacity (options: Omit<ScheduleOptions, 'expectedSize'>): number {
  const sizeOf = partSchedule(options)
  let total = 0
  for (let number = 1; number <= options.maxParts; number++) total += sizeOf(number)
  return total
}

/** The smallest part size, in whole MiB, ≥ partSize and ≤ cap, that holds `size` bytes in maxParts parts. */
function fittedPartSize (size: number, partSize: number, maxParts: number, cap: number): number {
  const needed = Math.ceil(Math.ceil(size / maxParts) / MiB) * MiB
  return Math.min(cap, Math.max(partSize, needed))
}

/** Bytes held by maxParts parts of `size` whose first parts ramp up from partSize as partSchedule makes them. */
function rampedCapacity (size: number, partSize: number, maxParts: number): number {
  let received = 0
  for (let number = 1; number <= maxParts; number++) {
    const part = Math.min(size, Math.max(partSize, received))
    if (part === size) return received + size * (maxParts - number + 1)
    received += part
  }
  return received
}

/** Bytes held by maxParts parts that start at partSize and double every `group` parts (capped). */
function capacity (partSize: number, maxParts: number, group: number, cap: number): number {
  let total = 0
  for (let first = 1, doubling = 0; first <= maxParts; first += group, doubling++) {
    const count = Math.min(group, maxParts - first + 1)
    total += count * Math.min(cap, partSize * 2 ** doubling)
  }
  return total
}

/** The largest G whose capacity still reaches `target` (capacity falls as G rises); 1 when none does. */
function growthGroup (partSize: number, maxParts: number, target: number, cap: number): number {
  let low = 1
  let high = maxParts
  if (capacity(partSize, maxParts, low, cap) < target) return 1
  while (low < high) {
    const middle = Math.ceil((low + high) / 2)
    if (capacity(partSize, maxParts, middle, cap) >= target) low = middle
    else high = middle - 1
  }
  return low
}

/**
 * The largest part the plugin makes: a quarter of the memory budget (or the
 * configured part size, when larger), so one upload's part can never take the
 * whole budget, whatever size a client declares.
 */
export function maxPartSize (config: Pick<S3ChunkConfig, 'partSize' | 'maxBufferedBytes'>): number {
  return Math.max(config.partSize, Math.floor(config.maxBufferedBytes / 4))
}
