/**
 * The process-wide budget for part buffers (`maxBufferedBytes`), shared by
 * every upload of one plugin instance. A part is counted from its allocation
 * until S3 has answered for it. A new part waits for room, first come first
 * served — and while it waits its upload does not read its socket, so TCP
 * pushes back on the client. A part larger than the whole budget is let
 * through when nothing else is held, so a huge part can never wait forever.
 */
interface Waiter {
  bytes: number
  resolve: () => void
  reject: (error: unknown) => void
  signal?: AbortSignal
  onAbort?: () => void
}

export class MemoryBudget {
  readonly limit: number
  #used = 0
  #peak = 0
  readonly #waiters: Waiter[] = []

  constructor (limit: number) {
    this.limit = limit
  }

  get used (): number { return this.#used }
  get peak (): number { return this.#peak }
  get waiting (): number { return this.#waiters.length }

  /** Resolves once `bytes` are reserved; rejects with `signal.reason` if aborted first. */
  async reserve (bytes: number, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted()
    if (this.#waiters.length === 0 && this.#fits(bytes)) {
      this.#take(bytes)
      return
    }
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { bytes, resolve, reject }
      if (signal !== undefined) {
        waiter.signal = signal
        waiter.onAbort = () => {
          const index = this.#waiters.indexOf(waiter)
          if (index >= 0) this.#waiters.splice(index, 1)
          reject(signal.reason)
          // The head of the queue may have been blocking others that now fit.
          this.#wake()
        }
        signal.addEventListener('abort', waiter.onAbort, { once: true })
      }
      this.#waiters.push(waiter)
    })
  }

  release (bytes: number): void {
    this.#used -= bytes
    this.#wake()
  }

  #fits (bytes: number): boolean {
    return this.#used + bytes <= this.limit || this.#used === 0
  }

  #take (bytes: number): void {
    this.#used += bytes
    if (this.#used > this.#peak) this.#peak = this.#used
  }

  #wake (): void {
    while (this.#waiters.length > 0 && this.#fits((this.#waiters[0] as Waiter).bytes)) {
      const waiter = this.#waiters.shift() as Waiter
      if (waiter.onAbort !== undefined) waiter.signal?.removeEventListener('abort', waiter.onAbort)
      this.#take(waiter.bytes)
      waiter.resolve()
    }
  }
}
