/**
 * The part buffers of every upload of one plugin instance, within one budget
 * (`maxBufferedBytes`).
 *
 * A buffer is in use from the moment a part starts filling until S3 has
 * answered for it; then it comes back (from a worker thread too: it is
 * transferred back) and is reused for the next part of the same size. Reuse
 * keeps resident memory at what the budget says: freshly allocated 5 MiB
 * buffers, freed whenever each thread's GC gets round to it, would let RSS
 * run far past the budget under load.
 *
 * A request for a buffer waits while the buffers in use fill the budget,
 * first come first served — and while it waits its upload does not read its
 * socket, so TCP pushes back on the client. A buffer larger than the whole
 * budget is let through when nothing is in use, so it can never wait forever.
 * Free buffers are dropped when nothing has been in use for `idleMs`.
 */
/** A new part buffer: unpooled and unzeroed, its ArrayBuffer its own, so moving it to a thread detaches nothing else. */
export function allocatePartBuffer (size: number): ArrayBuffer {
  return Buffer.allocUnsafeSlow(size).buffer as ArrayBuffer
}

export class PartBufferPool {
  readonly limit: number
  readonly #idleMs: number
  #used = 0
  #peak = 0
  #freeBytes = 0
  readonly #free = new Map<number, ArrayBuffer[]>()
  readonly #waiters: Waiter[] = []
  #idleTimer: NodeJS.Timeout | undefined

  constructor (limit: number, options: { idleMs?: number } = {}) {
    this.limit = limit
    this.#idleMs = options.idleMs ?? 30_000
  }

  /** Bytes of buffers in use (filling, queued or being sent). */
  get used (): number { return this.#used }
  get peak (): number { return this.#peak }
  /** Bytes of free buffers kept for reuse. */
  get free (): number { return this.#freeBytes }
  get waiting (): number { return this.#waiters.length }

  /** A buffer of exactly `size` bytes, once the budget has room; rejects with `signal.reason` if aborted first. */
  async acquire (size: number, signal?: AbortSignal): Promise<ArrayBuffer> {
    signal?.throwIfAborted()
    if (this.#waiters.length === 0 && this.#fits(size)) return this.#take(size)
    return await new Promise<ArrayBuffer>((resolve, reject) => {
      const waiter: Waiter = { size, resolve, reject }
      if (signal !== undefined) {
        waiter.signal = signal
        waiter.onAbort = () => {
          const index = this.#waiters.indexOf(waiter)
          if (index >= 0) this.#waiters.splice(index, 1)
          reject(signal.reason)
          // It may have been blocking smaller requests behind it.
          this.#wake()
        }
        signal.addEventListener('abort', waiter.onAbort, { once: true })
      }
      this.#waiters.push(waiter)
    })
  }

  /** Gives back a buffer whose part is done; it is kept for reuse. */
  release (buffer: ArrayBuffer): void {
    this.#used -= buffer.byteLength
    if (buffer.byteLength > 0 && this.#used + this.#freeBytes + buffer.byteLength <= this.limit) {
      const list = this.#free.get(buffer.byteLength) ?? []
      list.push(buffer)
      this.#free.set(buffer.byteLength, list)
      this.#freeBytes += buffer.byteLength
    }
    this.#afterRelease()
  }

  /** Accounts for a buffer that will not come back (lost with a crashed thread, or dropped with a failed upload). */
  forget (bytes: number): void {
    this.#used -= bytes
    this.#afterRelease()
  }

  #afterRelease (): void {
    this.#wake()
    if (this.#used === 0 && this.#freeBytes > 0 && this.#idleTimer === undefined) {
      this.#idleTimer = setTimeout(() => {
        this.#idleTimer = undefined
        if (this.#used === 0) this.#dropFree(Infinity)
      }, this.#idleMs)
      this.#idleTimer.unref()
    }
  }

  #fits (size: number): boolean {
    return this.#used + size <= this.limit || this.#used === 0
  }

  #take (size: number): ArrayBuffer {
    this.#used += size
    if (this.#used > this.#peak) this.#peak = this.#used
    const reused = this.#free.get(size)?.pop()
    if (reused !== undefined) {
      this.#freeBytes -= size
      return reused
    }
    // Make room among free buffers of other sizes so the total stays within the budget.
    this.#dropFree(this.#used + this.#freeBytes - this.limit)
    return allocatePartBuffer(size)
  }

  #dropFree (bytes: number): void {
    for (const [size, list] of this.#free) {
      while (bytes > 0 && list.length > 0) {
        list.pop()
        this.#freeBytes -= size
        bytes -= size
      }
      if (list.length === 0) this.#free.delete(size)
    }
  }

  #wake (): void {
    while (this.#waiters.length > 0 && this.#fits((this.#waiters[0] as Waiter).size)) {
      const waiter = this.#waiters.shift() as Waiter
      if (waiter.onAbort !== undefined) waiter.signal?.removeEventListener('abort', waiter.onAbort)
      waiter.resolve(this.#take(waiter.size))
    }
  }
}

interface Waiter {
  size: number
  resolve: (buffer: ArrayBuffer) => void
  reject: (error: unknown) => void
  signal?: AbortSignal
  onAbort?: () => void
}
