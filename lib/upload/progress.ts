import type { ProgressHook, UploadProgress } from '../options.js'

/** How often, at most, an upload's progress is reported. */
export const PROGRESS_INTERVAL_MS = 250

/**
 * Reports one upload's progress to the app's `onProgress`, throttled: at most
 * every PROGRESS_INTERVAL_MS while bytes come and parts are stored, and once
 * more, `done`, when the file is stored. A hook that throws is not the
 * upload's problem: the error is dropped.
 */
export class ProgressReporter {
  readonly #hook: ProgressHook
  readonly #progress: UploadProgress
  #last = 0

  constructor (hook: ProgressHook, file: Pick<UploadProgress, 'fieldName' | 'originalName' | 'key' | 'total'>) {
    this.#hook = hook
    this.#progress = { ...file, bytesReceived: 0, bytesStored: 0, partsDone: 0, done: false }
  }

  received (bytes: number): void {
    this.#progress.bytesReceived += bytes
    this.#maybeReport()
  }

  stored (bytes: number, parts: number): void {
    this.#progress.bytesStored += bytes
    this.#progress.partsDone += parts
    this.#maybeReport()
  }

  done (size: number, parts: number): void {
    Object.assign(this.#progress, { bytesReceived: size, bytesStored: size, partsDone: parts, done: true })
    this.#report()
  }

  #maybeReport (): void {
    const now = Date.now()
    if (now - this.#last < PROGRESS_INTERVAL_MS) return
    this.#last = now
    this.#report()
  }

  #report (): void {
    try {
      const result: unknown = this.#hook({ ...this.#progress })
      // An async hook's rejection is dropped too: left alone it is an unhandled rejection, which
      // ends the process under Node's default (found in review).
      if (typeof (result as PromiseLike<unknown> | null)?.then === 'function') (result as PromiseLike<unknown>).then(undefined, () => {})
    } catch {
      // The app's bookkeeping failing does not fail the upload.
    }
  }
}
