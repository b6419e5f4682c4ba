import { MAX_PART_SIZE, MiB } from '../options.js'

export interface ScheduleOptions {
  /** The configured (smallest) part size. */
  partSize: number
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
 * parts with no part but the last under `partSize` (≥ 5 MiB) or over 5 GiB.
 *
 * - Size known up front: one size for every part, the smallest that fits.
 * - Size unknown: parts start at `partSize` and double every G parts, G as
 *   large as possible (growth as late as possible, so small and medium files
 *   keep small parts). With S3's 10,000 parts, 5 MiB parts grow to reach 5 TiB.
 * - `equalParts` with the size unknown: `partSize` throughout (the store then
 *   holds at most partSize × maxParts).
 */
export function partSchedule (options: ScheduleOptions): PartSizeFn {
  const { partSize, maxParts } = options
  if (options.expectedSize !== undefined && Number.isFinite(options.expectedSize)) {
    const fixed = fittedPartSize(Math.min(options.expectedSize, options.maxFileSize), partSize, maxParts)
    return () => fixed
  }
  if (options.equalParts || capacity(partSize, maxParts, maxParts) >= options.maxFileSize) return () => partSize
  const group = growthGroup(partSize, maxParts, options.maxFileSize)
  return (number) => Math.min(MAX_PART_SIZE, partSize * 2 ** Math.floor((number - 1) / group))
}

/** The most bytes the schedule can hold in `maxParts` parts. */
export function scheduleCapacity (options: Omit<ScheduleOptions, 'expectedSize'>): number {
  if (options.equalParts) return options.partSize * options.maxParts
  return capacity(options.partSize, options.maxParts, growthGroup(options.partSize, options.maxParts, options.maxFileSize))
}

/** The smallest part size, in whole MiB, ≥ partSize, that holds `size` bytes in maxParts parts. */
function fittedPartSize (size: number, partSize: number, maxParts: number): number {
  const needed = Math.ceil(Math.ceil(size / maxParts) / MiB) * MiB
  return Math.min(MAX_PART_SIZE, Math.max(partSize, needed))
}

/** Bytes held by maxParts parts that start at partSize and double every `group` parts (capped at 5 GiB). */
function capacity (partSize: number, maxParts: number, group: number): number {
  let total = 0
  for (let first = 1, doubling = 0; first <= maxParts; first += group, doubling++) {
    const count = Math.min(group, maxParts - first + 1)
    total += count * Math.min(MAX_PART_SIZE, partSize * 2 ** doubling)
  }
  return total
}

/** The largest G whose capacity still reaches `target` (capacity falls as G rises); 1 when none does. */
function growthGroup (partSize: number, maxParts: number, target: number): number {
  let low = 1
  let high = maxParts
  if (capacity(partSize, maxParts, low) < target) return 1
  while (low < high) {
    const middle = Math.ceil((low + high) / 2)
    if (capacity(partSize, maxParts, middle) >= target) low = middle
    else high = middle - 1
  }
  return low
}
