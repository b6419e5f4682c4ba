import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

/**
 * V8's gc() in a test run without --expose-gc: the flag set at run time, the
 * function read from a fresh context (the current one was made without it).
 * Call it with no options for a full GC — Node 20's V8 reads
 * { type: 'major' } as a scavenge; { type: 'minor' } is a scavenge everywhere.
 */
export function exposedGc (): (options?: { type: 'minor' }) => void {
  setFlagsFromString('--expose-gc')
  return runInNewContext('gc') as (options?: { type: 'minor' }) => void
}
