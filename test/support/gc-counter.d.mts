/** The main thread's garbage collections so far, by kind. */
export type GcSeen = Partial<Record<'minor' | 'major' | 'incremental' | 'weakcb', { count: number, ms: number }>>

/** Starts counting; the function returned gives the figures so far. */
export function countGarbageCollections (): () => GcSeen
