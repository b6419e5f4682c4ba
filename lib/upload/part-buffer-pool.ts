import { ServerBusyError } from '../errors.js'

/**
 * The part buffers of every upload of one plugin instance, within one budget
 * (`maxBufferedBytes`).
 *
 * Memory is reserved as a client's bytes arrive, never for what it only
 * declares:
 * - a part starts in a small head buffer (HEAD_BYTES); only once the head is
 *   full does the part reserve its whole size — so a client that sends a
 *   few bytes and then trickles holds a head, not a part;
 * - a part that then fills slowly (less than HEAD_BYTES in SLOW_AFTER_MS)
 *   while others wait for room is parked: its buffer shrinks to what it
 *   holds (resizable ArrayBuffers give the pages back) and it must wait for
 *   room again before it takes more bytes;
 * - a holder whose client has sent less than HEAD_BYTES in STALLED_AFTER_MS (8 s)
 *   while others wait is failed (503, retry later), the stalest first and as
 *   many as the first waiter needs — whatever other uploads are doing: one
 *   client trickling at a healthy pace once kept every silent holder's memory
 *   until its bodyTimeout, and heads went one per relief tick (attack runs);
 * - when every byte is held by parts that all wait for more — nothing in
 *   flight to S3, nothing filling — the longest waiter that holds memory is
 *   failed (503, retry later) so the others can go on.
 * A part whose whole size is reserved and that keeps filling never waits, so
 * healthy uploads always finish their parts.
 *
 * A buffer is in use from the moment a part starts filling until S3 has
 * answered for it; then it comes back (from a worker thread too: it is
 * transferred back) and is reused for the next part of the same size. Reuse
 * keeps resident memory at what the budget says and spares the page faults
 * of fresh memory. Free buffers are dropped when nothing has been in use for
 * `idleMs` — except shared ones (below).
 *
 * With `shared` (workers mode) a whole part's buffer is a SharedArrayBuffer:
 * the worker thread reads the part where the main thread wrote it, and the
 * buffer never leaves the main thread. Moving an ArrayBuffer to a thread and
 * back made each isolate take it in as new external memory every time, and
 * V8 answers that with garbage collections: with 8 concurrent uploads the
 * main thread ran 32–61 major and 127–150 minor GCs per 2 GiB, against 1 and
 * ~65 with shared buffers (bench, 2026-11-22). Heads, and the small copies parked parts
 * keep, stay plain resizable ArrayBuffers (a SharedArrayBuffer cannot shrink).
 * A shared buffer's memory goes only once neither thread holds it, and an
 * idle worker thread runs no GC: dropping free shared buffers gave nothing
 * back (idle: RSS 273 → 260 MiB, against 334 → 142 with moved buffers), and
 * under a full budget, dropping them to make room for heads and allocating
 * new ones took a server to 863 MiB with a 256 MiB budget (memory-load). So a
 * shared pool keeps its free shared buffers: it makes room by dropping plain
 * ones, and drops a shared one only for a whole part of another size. Shared
 * buffers then never outnumber what the busiest moment used at once (within
 * the budget); heads may take free room beyond it, 64 KiB per part filling.
 */

/** Bytes a part may hold before it reserves its whole size. */
export const HEAD_BYTES = 64 * 1024
/** A part that gained less than HEAD_BYTES in this long is slow (under 64 KiB/s). */
export const SLOW_AFTER_MS = 1000
/**
 * A holder that gained less than HEAD_BYTES in this long, while others wait for memory, is
 * failed (under 8 KiB/s). Long enough that a client starved by an overloaded machine is not
 * taken for a stalled one: with 2 s, two honest uploads of sixteen were failed in the
 * memory-load test while the rest of the suite shared this 2-core machine.
 */
export const STALLED_AFTER_MS = 8 * SLOW_AFTER_MS
/** How long an evicted part's memory is counted as on its way back. */
const EVICTION_GRACE_MS = 1000
/** How often waiting requests look for slow parts to park. */
const RELIEF_INTERVAL_MS = 250

/** A part's memory: moved to a worker thread (ArrayBuffer) or shared with it (SharedArrayBuffer). */
export type PartMemory = ArrayBuffer | SharedArrayBuffer

/** A new part buffer of `size` bytes: unpooled and unzeroed memory of its own, so moving it to a thread detaches nothing else. */
export function allocatePartBuffer (size: number): ArrayBuffer {
  return new ArrayBuffer(size, { maxByteLength: size })
}

/** True for memory a worker thread reads in place (never moved, never detached). */
export function isShared (buffer: PartMemory): buffer is SharedArrayBuffer {
  return buffer instanceof SharedArrayBuffer
}

export class PartBufferPool {
  readonly limit: number
  /** Whole part buffers are SharedArrayBuffers (see above). */
  readonly shared: boolean
  readonly #idleMs: number
  readonly #now: () => number
  #used = 0
  #peak = 0
  #freeBytes = 0
  /** Free buffers by their full size (maxByteLength). */
  readonly #free = new Map<number, PartMemory[]>()
  /** The same buffers, to refuse one given back twice (a shared buffer under two parts would mix their bytes). */
  readonly #isFree = new WeakSet<PartMemory>()
  readonly #waiters: Waiter[] = []
  readonly #filling = new Set<FillingPart>()
  /** Bytes reserved by parts still filling (the rest of `used` is parts on their way to S3). */
  #fillingBytes = 0
  #idleTimer: NodeJS.Timeout | undefined
  #reliefTimer: NodeJS.Timeout | undefined
  /** Told how long a reservation waited for room, in ms (telemetry); the fast path, with room at once, tells nothing. */
  onWaited: ((ms: number) => void) | undefined

  constructor (limit: number, options: { idleMs?: number, now?: () => number, shared?: boolean } = {}) {
    this.limit = limit
    this.shared = options.shared ?? false
    this.#idleMs = options.idleMs ?? 30_000
    this.#now = options.now ?? Date.now
  }

  /** Bytes of buffers in use (filling, queued or being sent). */
  get used (): number { return this.#used }
  get peak (): number { return this.#peak }
  /** Bytes of free buffers kept for reuse. */
  get free (): number { return this.#freeBytes }
  get waiting (): number { return this.#waiters.length }
  /** Parts parked for filling slowly while others waited. */
  get parked (): number { return [...this.#filling].filter((part) => part.stage === 'parked').length }

  /**
   * A part of `size` bytes to fill. Reserves a head at once (waiting for room
   * first come first served); the part reserves more as its bytes arrive.
   */
  async open (size: number, signal?: AbortSignal, evict?: (error: Error) => void): Promise<FillingPart> {
    const head = Math.min(size, HEAD_BYTES)
    await this.#reserve(head, signal, null)
    const part = new FillingPart(this, size, this.#buffer(head), signal, this.#now, evict)
    this.#filling.add(part)
    this.#fillingBytes += head
    return part
  }

  /** A whole buffer of exactly `size` bytes, once the budget has room; rejects with `signal.reason` if aborted first. */
  async acquire (size: number, signal?: AbortSignal): Promise<PartMemory> {
    await this.#reserve(size, signal, null)
    return this.#buffer(size)
  }

  /** Gives back a buffer whose part is done; it is kept for reuse. */
  release (buffer: PartMemory): void {
    this.#used -= buffer.byteLength
    this.#keep(buffer)
    this.#afterRelease()
  }

  /** Accounts for a buffer that will not come back (lost with a crashed thread, or dropped with a failed upload). */
  forget (bytes: number): void {
    this.#used -= bytes
    this.#afterRelease()
  }

  /** @internal FillingPart: reserve `bytes` more for `part`, waiting for room. */
  async reserveFor (part: FillingPart, bytes: number): Promise<void> {
    await this.#reserve(bytes, part.signal, part)
    this.#fillingBytes += bytes
  }

  /**
   * @internal FillingPart: a whole buffer for a part leaving its head (or, in
   * a shared pool, the small copy it was parked in); its bytes copied over.
   * A head is kept for reuse; a parked copy, of no standard size, is dropped.
   */
  swapHead (head: PartMemory, written: number, size: number): PartMemory {
    const buffer = this.#buffer(size)
    new Uint8Array(buffer, 0, written).set(new Uint8Array(head, 0, written))
    // The head's reservation is now part of the whole part's.
    if (head.byteLength === HEAD_BYTES) this.#keep(head)
    return buffer
  }

  /**
   * @internal FillingPart: `bytes` of a parked part's reservation given back;
   * with `whole`, the shared buffer its bytes were copied out of, kept for
   * reuse (before any waiter wakes) when the budget has room.
   */
  unreserve (bytes: number, whole?: PartMemory): void {
    this.#fillingBytes -= bytes
    this.#used -= bytes
    if (whole !== undefined) this.#keep(whole)
    this.#afterRelease()
  }

  /**
   * @internal Drops free buffers until in use + free fit the budget again: a
   * waiter is woken on room among the reservations alone, so memory a parked
   * part takes back by growing its own buffer must come out of the free ones.
   */
  trim (): void {
    this.#dropFree(this.#used + this.#freeBytes - this.limit, this.shared)
  }

  /** @internal FillingPart: the part stopped filling (sealed or abandoned). */
  done (part: FillingPart): void {
    if (this.#filling.delete(part)) this.#fillingBytes -= part.reserved
  }

  async #reserve (bytes: number, signal: AbortSignal | undefined, part: FillingPart | null): Promise<void> {
    signal?.throwIfAborted()
    if (this.#waiters.length === 0 && this.#fits(bytes, part)) {
      this.#account(bytes)
      return
    }
    const started = this.onWaited !== undefined ? performance.now() : 0
    try {
      await this.#wait(bytes, signal, part)
    } finally {
      if (this.onWaited !== undefined) this.onWaited(performance.now() - started)
    }
  }

  async #wait (bytes: number, signal: AbortSignal | undefined, part: FillingPart | null): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { bytes, resolve, reject, part }
      if (signal !== undefined) {
        waiter.signal = signal
        waiter.onAbort = () => {
          this.#dropWaiter(waiter)
          reject(signal.reason)
          // It may have been blocking smaller requests behind it.
          this.#wake()
        }
        signal.addEventListener('abort', waiter.onAbort, { once: true })
      }
      this.#waiters.push(waiter)
      this.#relieve()
    })
  }

  /** Room for `bytes` more; or nothing else in use (a buffer larger than the whole budget then goes through alone rather than never). */
  #fits (bytes: number, part: FillingPart | null = null): boolean {
    return this.#used + bytes <= this.limit || this.#used === (part?.reserved ?? 0)
  }

  #account (bytes: number): void {
    this.#used += bytes
    if (this.#used > this.#peak) this.#peak = this.#used
  }

  /**
   * A buffer of `size` bytes for a reservation already made: a free one when
   * there is one; else a new one, after making room among the free buffers so
   * that in use + free stays within the budget. (Making room at reservation
   * time instead dropped the very buffer a part was about to reuse: measured,
   * a quarter of the main thread went to page faults of fresh buffers.)
   */
  #buffer (size: number): PartMemory {
    const reused = this.#reuse(size)
    if (reused !== undefined) {
      // A shrunk buffer grew back: its new pages must fit beside the free ones too.
      this.trim()
      return reused
    }
    const shared = this.shared && size > HEAD_BYTES
    // A head never costs a shared buffer (see above); a whole part of a new size may.
    this.#dropFree(this.#used + this.#freeBytes - this.limit, this.shared && !shared)
    return shared ? new SharedArrayBuffer(size) : allocatePartBuffer(size)
  }

  #reuse (size: number): PartMemory | undefined {
    const list = this.#free.get(size)
    const buffer = list?.pop()
    if (buffer === undefined) return undefined
    if (list?.length === 0) this.#free.delete(size)
    this.#isFree.delete(buffer)
    this.#freeBytes -= buffer.byteLength
    // A parked part's buffer came back shrunk: it is whole again within the reservation just made.
    if (buffer.byteLength < size && !isShared(buffer)) buffer.resize(size)
    return buffer
  }

  #keep (buffer: PartMemory): void {
    const size = buffer.maxByteLength
    if (buffer.byteLength === 0 || (!isShared(buffer) && buffer.detached) || this.#isFree.has(buffer)) return
    // In a shared pool a plain buffer is a head or a parked part's small copy; only heads are asked for again.
    const unwanted = this.shared && !isShared(buffer) && size !== HEAD_BYTES
    // A shared buffer is kept even beyond the budget: dropping it would free nothing now (see above).
    if (unwanted || (!isShared(buffer) && this.#used + this.#freeBytes + buffer.byteLength > this.limit)) {
      release(buffer)
      return
    }
    const list = this.#free.get(size) ?? []
    list.push(buffer)
    this.#free.set(size, list)
    this.#isFree.add(buffer)
    this.#freeBytes += buffer.byteLength
  }

  #afterRelease (): void {
    this.#wake()
    if (this.#used === 0 && this.#freeBytes > 0 && this.#idleTimer === undefined) {
      this.#idleTimer = setTimeout(() => {
        this.#idleTimer = undefined
        if (this.#used === 0) this.#dropFree(Infinity, this.shared)
      }, this.#idleMs)
      this.#idleTimer.unref()
    }
  }

  /** Drops free buffers, `bytes` of them at least, plain ones first; with `keepShared`, plain ones only. */
  #dropFree (bytes: number, keepShared = false): void {
    if (bytes <= 0) return
    const lists = [...this.#free].sort(([, a], [, b]) => Number(isShared(a[0] as PartMemory)) - Number(isShared(b[0] as PartMemory)))
    for (const [size, list] of lists) {
      if (keepShared && isShared(list[0] as PartMemory)) continue
      while (bytes > 0 && list.length > 0) {
        const buffer = list.pop() as PartMemory
        this.#isFree.delete(buffer)
        this.#freeBytes -= buffer.byteLength
        bytes -= buffer.byteLength
        release(buffer)
      }
      if (list.length === 0) this.#free.delete(size)
    }
  }

  /**
   * Fails the holders whose clients stalled (not waiting on us: a part waiting for room is not
   * its client's doing), stalest first, until what they hold — with what earlier evictions are
   * still giving back — makes room for the first waiter. True when that much is on its way.
   */
  #evictStalled (now: number): boolean {
    const first = this.#waiters[0] as Waiter
    // What parts on their way to S3 will give back comes back by itself: only the rest is taken
    // from stalled clients (counting it, honest slow clients were failed with nothing stuck: review).
    const inFlight = this.#used - this.#fillingBytes
    const need = this.#used + first.bytes - this.limit - inFlight
    if (need <= 0) return true
    let freeing = 0
    // An evicted part gives its memory back as its upload stops; one that has not after a
    // second (stuck in a read nothing interrupts) no longer counts, or relief would wait on it for ever.
    for (const part of this.#filling) if (part.evicted && now - part.evictedAt < EVICTION_GRACE_MS) freeing += part.reserved
    if (freeing >= need) return true
    const stalled = [...this.#filling]
      .filter((part) => part.canEvict && !part.evicted && !part.waiting && part.reserved > 0 && now - part.markedAt > STALLED_AFTER_MS)
      .sort((a, b) => a.markedAt - b.markedAt)
    for (const part of stalled) {
      freeing += part.reserved
      part.evict(new ServerBusyError())
      if (freeing >= need) return true
    }
    return false
  }

  #dropWaiter (waiter: Waiter): void {
    const index = this.#waiters.indexOf(waiter)
    if (index >= 0) this.#waiters.splice(index, 1)
    if (waiter.onAbort !== undefined) waiter.signal?.removeEventListener('abort', waiter.onAbort)
  }

  #wake (): void {
    while (this.#waiters.length > 0 && this.#fits((this.#waiters[0] as Waiter).bytes, (this.#waiters[0] as Waiter).part)) {
      const waiter = this.#waiters[0] as Waiter
      this.#dropWaiter(waiter)
      this.#account(waiter.bytes)
      waiter.resolve()
    }
    if (this.#waiters.length === 0 && this.#reliefTimer !== undefined) {
      clearInterval(this.#reliefTimer)
      this.#reliefTimer = undefined
    }
  }

  /**
   * Someone waits: park the slow parts; and if every byte is then held by
   * parts that wait for more or crawl (nothing on its way to S3, no part
   * filling at a healthy pace), fail the holder that has gone longest
   * without progress — a trickling client before a healthy one that just
   * filled its head. Runs again every RELIEF_INTERVAL_MS while anyone waits,
   * since slowness shows over time.
   */
  #relieve (): void {
    const now = this.#now()
    const slow = (part: FillingPart): boolean => now - part.markedAt > SLOW_AFTER_MS
    for (const part of this.#filling) {
      if (part.stage === 'whole' && !part.waiting && slow(part)) part.park()
    }
    this.#wake()
    if (this.#waiters.length === 0) return
    this.#reliefTimer ??= setInterval(() => { this.#relieve() }, RELIEF_INTERVAL_MS)
    this.#reliefTimer.unref()
    if (this.#evictStalled(now)) return
    const inFlight = this.#used - this.#fillingBytes
    // A whole part too full to park and crawling still counts as stuck.
    const progressing = [...this.#filling].some((part) => !part.waiting && part.stage === 'whole' && !slow(part))
    if (inFlight > 0 || progressing) return
    // Deadlock: nothing will give memory back by itself.
    const holders = [...this.#filling].filter((part) => part.reserved > 0 && !part.evicted).sort((a, b) => a.markedAt - b.markedAt)
    const victim = holders.find((part) => part.canEvict || part.waiting)
    if (victim === undefined) return
    // A victim waiting here for room is failed here: its grow() throws. Its upload may have no
    // read pending that an eviction could end (a tus PATCH's eviction only ends its read on the
    // client: two waiting PATCHes then held the budget until the app closed, found in review).
    const waiter = victim.waiting ? this.#waiters.find((candidate) => candidate.part === victim) : undefined
    if (waiter !== undefined) {
      victim.evicted = true
      victim.evictedAt = now
      this.#dropWaiter(waiter)
      waiter.reject(new ServerBusyError())
      return
    }
    if (victim.canEvict) victim.evict(new ServerBusyError())
  }
}

/** The state of one part while its bytes arrive: head, whole (its size reserved), parked (shrunk while slow). */
export type FillingStage = 'head' | 'whole' | 'parked'

/**
 * One part being filled, its memory reserved as bytes arrive (see the pool).
 * `room()` says how many bytes can be written now; when it is 0, `grow()`
 * reserves more (and may wait). `seal()` ends the filling and hands over the
 * bytes; `abandon()` gives the memory back.
 */
export class FillingPart {
  readonly size: number
  readonly signal: AbortSignal | undefined
  stage: FillingStage
  buffer: PartMemory
  written = 0
  /** Bytes of the budget this part holds. */
  reserved: number
  /** When the part last gained HEAD_BYTES (or started). */
  markedAt: number
  /** True while grow() waits for room. */
  waiting = false
  /** Failed by the pool (its upload gives the memory back as it stops), and when. */
  evicted = false
  evictedAt = 0
  #markAt = HEAD_BYTES
  readonly #pool: PartBufferPool
  readonly #now: () => number
  readonly #evict: ((error: Error) => void) | undefined

  constructor (pool: PartBufferPool, size: number, head: PartMemory, signal: AbortSignal | undefined, now: () => number, evict?: (error: Error) => void) {
    this.#pool = pool
    this.size = size
    this.signal = signal
    this.buffer = head
    this.reserved = head.byteLength
    this.stage = size <= HEAD_BYTES ? 'whole' : 'head'
    this.#now = now
    this.markedAt = now()
    this.#evict = evict
  }

  /** True when the part's upload can be failed from here (the pool's last resort). */
  get canEvict (): boolean { return this.#evict !== undefined }

  /** Fails the part's upload (which then abandons the part): a deadlock's way out. */
  evict (error: Error): void {
    this.evicted = true
    this.evictedAt = this.#now()
    this.#evict?.(error)
  }

  /** Bytes that can be written without waiting. */
  room (): number {
    return Math.min(this.reserved, this.buffer.byteLength) - this.written
  }

  /** Copies `bytes` in (at most room()). */
  write (bytes: Uint8Array): void {
    if (bytes.byteLength === 0) return
    const buffer = this.buffer
    if (isShared(buffer)) {
      copyIntoShared(sharedView(buffer), bytes, this.written)
    } else {
      new Uint8Array(buffer, this.written, bytes.byteLength).set(bytes)
    }
    this.written += bytes.byteLength
    if (this.written >= this.#markAt) {
      this.#markAt = this.written + HEAD_BYTES
      this.markedAt = this.#now()
    }
  }

  /** Reserves the rest of the part (waiting for room), so it can fill to its size. */
  async grow (): Promise<void> {
    const more = this.size - this.reserved
    if (more <= 0) return
    this.waiting = true
    try {
      await this.#pool.reserveFor(this, more)
    } finally {
      this.waiting = false
    }
    this.reserved = this.size
    this.markedAt = this.#now()
    if (this.stage === 'head' || this.buffer.maxByteLength < this.size) {
      // A head, or a shared pool's parked copy: the bytes move to a whole buffer.
      this.buffer = this.#pool.swapHead(this.buffer, this.written, this.size)
    } else if (this.buffer.byteLength < this.size && !isShared(this.buffer)) {
      this.buffer.resize(this.size)
      this.#pool.trim()
    }
    this.stage = 'whole'
  }

  /** Gives back the reserved room this slow part has not used: its buffer shrinks to its bytes. */
  park (): void {
    const keep = Math.min(this.size, Math.ceil(Math.max(this.written, 1) / HEAD_BYTES) * HEAD_BYTES)
    if (keep >= this.reserved) return
    const whole = this.buffer
    if (isShared(whole)) {
      // A SharedArrayBuffer cannot shrink: the bytes move to a small buffer of their own.
      const small = allocatePartBuffer(keep)
      new Uint8Array(small).set(new Uint8Array(whole, 0, this.written))
      this.buffer = small
    } else {
      whole.resize(keep)
    }
    const freed = this.reserved - keep
    this.reserved = keep
    this.stage = 'parked'
    this.#pool.unreserve(freed, isShared(whole) ? whole : undefined)
  }

  /** Ends the filling: the part's bytes, in a buffer whose byteLength is exactly what it holds of the budget. */
  seal (): Uint8Array {
    this.#pool.done(this)
    shrink(this.buffer, this.reserved)
    return new Uint8Array(this.buffer, 0, this.written)
  }

  /** Gives the part's memory back (its upload failed). */
  abandon (): void {
    this.#pool.done(this)
    const buffer = this.buffer
    shrink(buffer, this.reserved)
    this.#pool.release(buffer)
  }
}

interface Waiter {
  bytes: number
  resolve: () => void
  reject: (error: unknown) => void
  /** The filling part this reservation grows; null for a new part or a whole buffer. */
  part: FillingPart | null
  signal?: AbortSignal
  onAbort?: () => void
}

/**
 * A Buffer over each shared part buffer, made once per buffer (not per write).
 * Weakly held: a part keeps no view of a buffer it gave back, so a buffer the
 * pool drops is collected even while a parked part lives on.
 */
const sharedViews = new WeakMap<SharedArrayBuffer, Buffer>()

function sharedView (buffer: SharedArrayBuffer): Buffer {
  let view = sharedViews.get(buffer)
  if (view === undefined) {
    view = Buffer.from(buffer)
    sharedViews.set(buffer, view)
  }
  return view
}

/**
 * Copies `bytes` into shared memory at `offset`. TypedArray.prototype.set
 * (and Buffer.prototype.copy, which calls it) copies into a SharedArrayBuffer
 * with relaxed atomic stores, byte by byte unless source and destination are
 * equally aligned — and a body chunk's bytes start wherever the HTTP and
 * multipart parsers cut them: 300–340 ms per GiB against 50–60 ms into an
 * ArrayBuffer (microbenchmark, Node 20 and 24, 2026-11-22), a fifth of the main
 * thread's time in workers mode (perf: v8::internal::relaxed_memmove).
 * Buffer.prototype.fill with a value exactly as long as the range is one
 * native memcpy. Plain memory ordering is enough: the worker thread reads the
 * part only after postMessage, which orders these writes before its reads.
 */
function copyIntoShared (target: Buffer, bytes: Uint8Array, offset: number): void {
  const end = offset + bytes.byteLength
  if (end > target.byteLength) throw new RangeError(`a write of ${bytes.byteLength} bytes at ${offset} overruns a ${target.byteLength}-byte part buffer`)
  target.fill(bytes, offset, end)
}

/** A resizable buffer cut down to `bytes` (a shared one is always exactly its part's size). */
function shrink (buffer: PartMemory, bytes: number): void {
  if (!isShared(buffer) && buffer.byteLength > bytes) buffer.resize(bytes)
}

/**
 * Gives a dropped buffer's pages back now rather than whenever the GC collects
 * it. A SharedArrayBuffer's go once neither thread holds it any more.
 */
function release (buffer: PartMemory): void {
  if (!isShared(buffer) && buffer.resizable && !buffer.detached) buffer.resize(0)
}
