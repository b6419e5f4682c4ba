/**
 * Tells every upload in flight that the server is closing. One AbortSignal
 * shared by all uploads would collect a listener per upload, and past ten Node
 * prints MaxListenersExceededWarning into production logs; a set of callbacks
 * has no such limit and forgets each upload when it ends.
 */
export class Shutdown {
  #reason: { value: unknown } | null = null
  readonly #listeners = new Set<(reason: unknown) => void>()

  get closing (): boolean { return this.#reason !== null }
  get reason (): unknown { return this.#reason?.value }

  /** Calls `listener` when the server closes (at once if it already has); returns the unsubscribe function. */
  subscribe (listener: (reason: unknown) => void): () => void {
    if (this.#reason !== null) {
      listener(this.#reason.value)
      return () => {}
    }
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  close (reason: unknown): void {
    if (this.#reason !== null) return
    this.#reason = { value: reason }
    for (const listener of [...this.#listeners]) listener(reason)
    this.#listeners.clear()
  }
}
