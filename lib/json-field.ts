import { BadMultipartError } from './errors.js'

/** Deepest nesting a JSON field may have: far beyond a form's needs, far short of the stack. */
export const MAX_JSON_FIELD_DEPTH = 64

/**
 * The text of a field @fastify/multipart parsed as JSON (its part was sent as
 * application/json), as the app gets it from s3Fields(). Its nesting is
 * measured with a loop first: a field of `[` × 10 000 parses (the parser does
 * not recurse) but JSON.stringify of it overflows the stack — a 500 for a
 * 20 KB field before this check; now 400.
 */
export function jsonFieldText (value: unknown): string {
  const pending: Array<{ value: unknown, depth: number }> = [{ value, depth: 0 }]
  while (pending.length > 0) {
    const { value: next, depth } = pending.pop() as { value: unknown, depth: number }
    if (next === null || typeof next !== 'object') continue
    if (depth >= MAX_JSON_FIELD_DEPTH) throw new BadMultipartError(`a JSON field is nested more than ${MAX_JSON_FIELD_DEPTH} levels deep`)
    for (const child of Object.values(next)) pending.push({ value: child, depth: depth + 1 })
  }
  return JSON.stringify(value)
}
