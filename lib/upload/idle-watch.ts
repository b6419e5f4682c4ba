import { BodyTimeoutError } from '../errors.js'

/**
 * The body timeout of one request: a read that waits more than `ms` for the
 * client's next bytes fails with BodyTimeoutError (408). Only the time spent
 * waiting on the client counts — while the upload does not read (parts in
 * flight, waiting for the memory budget) TCP holds the client back, and that
 * is the plugin's doing, not the client's. Enforced here rather than left to
 * Node's server timeouts, which did not fire for a stalled upload (Node only
 * enforced requestTimeout once headersTimeout was lowered too).
 *
 * One timer per request, refreshed on every read, so the hot path costs a
 * timer refresh, not a timer per chunk.
 */
export class IdleWatch {
  readonly #ms: number
  #timer: NodeJS.Timeout | undefined
  /** The read waiting for the client right now, failed when the timer fires. */
  #waiting: ((error: Error) => void) | null = null
  /** Set by fail(): every read from then on fails with it, the one waiting now included. */
  #failure: Error | null = null
  /** When the read waiting now began (Date.now()); 0 while none waits. */
  #waitingSince = 0

  constructor (ms: number) {
    this.#ms = ms
  }

  /** The iterable's items, each awaited within the body timeout. */
  async * iterate<T> (iterable: AsyncIterable<T>): AsyncGenerator<T, void, undefined> {
    const iterator = iterable[Symbol.asyncIterator]()
    let timedOut = false
    try {
      while (true) {
        let step: IteratorResult<T>
        try {
          step = await this.#next(iterator)
        } catch (error) {
          // The read still pending is abandoned, not awaited (below), when the watch itself failed it.
          timedOut = error instanceof BodyTimeoutError || (this.#failure !== null && error === this.#failure)
          throw error
        }
        if (step.done === true) return
        yield step.value
      }
    } finally {
      // After a timeout the read is still pending inside the iterator: ask it to
      // stop, but do not wait for it (an async generator queues return() behind it).
      const closing = iterator.return?.()
      if (!timedOut && closing !== undefined) await closing.catch(() => {})
      else closing?.catch(() => {})
    }
  }

  /**
   * Fails the read waiting for the client now and every read after it with
   * `error` (the server closing: a client that keeps its bytes coming, a
   * field or a byte at a time, is never idle, so the timer alone would not).
   */
  fail (error: Error): void {
    if (this.#failure !== null) return
    this.#failure = error
    this.#waiting?.(error)
  }

  /** How long the read waiting now has waited for the client: 0 while none waits (nothing asked, or TCP held back by us). */
  idleMs (): number {
    return this.#waiting === null ? 0 : Date.now() - this.#waitingSince
  }

  stop (): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#waiting = null
  }

  async #next<T> (iterator: AsyncIterator<T>): Promise<IteratorResult<T>> {
    if (this.#failure !== null) throw this.#failure
    const read = iterator.next()
    if (this.#timer === undefined) {
      this.#timer = setTimeout(() => { this.#expire() }, this.#ms)
      this.#timer.unref()
    } else {
      this.#timer.refresh()
    }
    let fail: ((error: Error) => void) | undefined
    const expired = new Promise<never>((_resolve, reject) => { fail = reject })
    this.#waiting = fail as (error: Error) => void
    this.#waitingSince = Date.now()
    try {
      return await Promise.race([read, expired])
    } finally {
      this.#waiting = null
    }
  }

  #expire (): void {
    // The timer runs on between reads; it only counts while a read is waiting.
    if (this.#waiting === null) return
    this.#waiting(new BodyTimeoutError(this.#ms))
  }
}
