import { randomBytes } from 'node:crypto'
import type { S3ChunkConfig, KeyContext } from './options.js'
import { BadRequestError, InvalidKeyError } from './errors.js'

// S3 allows 1024 bytes per key; a segment this long leaves room for prefixes.
const MAX_FILENAME_BYTES = 200
export const MAX_KEY_BYTES = 1024
/** A client filename longer than this is abuse, not a file; the bound also keeps originalName (echoed to clients) small. */
export const MAX_ORIGINAL_NAME_BYTES = 4096
const FALLBACK_NAME = 'file'

/**
 * Makes an untrusted client filename safe as one key segment: the last path
 * component only, Unicode NFC, no control or reserved characters, no leading
 * dots, at most 200 UTF-8 bytes with the extension kept.
 */
export function sanitiseFilename (name: string): string {
  // Browsers may send a full client path (old IE: C:\Users\…); keep the last component.
  const base = name.split(/[/\\]/).pop() ?? ''
  let clean = base
    .replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, '')   // control, format (bidi overrides), separators
    // NFC once they are gone: one between a letter and its combining mark would keep the pair apart.
    .normalize('NFC')
    .replace(/\s+/gu, '_')
    .replace(/[^\p{L}\p{M}\p{N}._\-()+=@,]/gu, '_')  // keep letters, marks, digits and a few safe marks
    .replace(/_{2,}/g, '_')
    .replace(/\.{2,}/g, '.')
    .replace(/^[._]+/, '')
  clean = truncateKeepingExtension(clean, MAX_FILENAME_BYTES)
  return clean === '' || clean === '.' ? FALLBACK_NAME : clean
}

/** Most segments a client may name with the prefix query parameter. */
export const MAX_QUERY_PREFIX_SEGMENTS = 8

/**
 * Sanitises each segment of a sub-path; `..`, `.` and empty segments vanish.
 * Nothing is cut: a caller that bounds the depth refuses a deeper path
 * rather than dropping segments (dropping the filename made files share a key).
 */
export function sanitisePrefix (value: string): string {
  return value
    .split(/[/\\]/)
    .map((segment) => segment.normalize('NFC').replace(/[\p{Cc}\p{Cf}]/gu, '').trim())
    .filter((segment) => segment !== '' && !/^\.+$/.test(segment))
    .map((segment) => sanitiseFilename(segment))
    .join('/')
}

/**
 * `photo.final.jpg` at 2026-11-21T05:21:46.123Z → `photo.final_20261121T052146123Z-3f9a0c5e1b2d.jpg`:
 * a timestamp for people, and 48 random bits so that uploads of one name in the
 * same millisecond still get keys of their own (a timestamp alone gave 100
 * concurrent uploads 40 keys). Conditional writes catch what randomness cannot.
 */
export function withTimestamp (filename: string, now: Date, random = randomBytes(6).toString('hex')): string {
  const stamp = `${now.toISOString().replace(/[-:.]/g, '')}-${random}`
  const dot = filename.lastIndexOf('.')
  if (dot <= 0) return `${filename}_${stamp}`
  return `${filename.slice(0, dot)}_${stamp}${filename.slice(dot)}`
}

export function joinKey (...segments: string[]): string {
  return segments.filter((segment) => segment !== '').join('/')
}

/** Names the object for one incoming file, following the configured naming rules. */
export async function makeKey (config: S3ChunkConfig, context: KeyContext, now = new Date()): Promise<string> {
  if (config.key !== undefined) {
    const custom = await config.key(context)
    if (typeof custom !== 'string') throw new InvalidKeyError('it did not return a string')
    return customKey(config, custom)
  }
  const name = config.appendTimestamp ? withTimestamp(context.filename, now) : context.filename
  const prefix = queryPrefix(config, context)
  const key = joinKey(config.keyPrefix, prefix, name)
  // Too long only with the prefix the client chose: its mistake (400), not the app's key naming (500).
  if (prefix !== '' && Buffer.byteLength(key) > MAX_KEY_BYTES && Buffer.byteLength(joinKey(config.keyPrefix, name)) <= MAX_KEY_BYTES) {
    throw new BadRequestError(`the prefix query parameter makes the key longer than ${MAX_KEY_BYTES} bytes`)
  }
  return checkedLength(key)
}

/**
 * An app-given key (from `key()` or `onFile`), below keyPrefix. It may hold
 * sub-paths; each segment is sanitised so it can never climb out of keyPrefix.
 * Sanitising would cut an over-long segment, and two keys could then meet:
 * that is refused instead.
 */
export function customKey (config: Pick<S3ChunkConfig, 'keyPrefix'>, custom: string): string {
  if (custom.split(/[/\\]/).some((segment) => Buffer.byteLength(segment.normalize('NFC')) > MAX_FILENAME_BYTES)) {
    throw new InvalidKeyError(`a segment is longer than ${MAX_FILENAME_BYTES} bytes`)
  }
  const safe = sanitisePrefix(custom)
  if (safe === '') throw new InvalidKeyError(`"${custom}" has no usable segment`)
  return checkedLength(joinKey(config.keyPrefix, safe))
}

function checkedLength (key: string): string {
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw new InvalidKeyError(`it is longer than ${MAX_KEY_BYTES} bytes`)
  return key
}

function queryPrefix (config: S3ChunkConfig, context: KeyContext): string {
  if (config.prefixQueryParam === false) return ''
  const param = config.prefixQueryParam === true ? '__prefix' : config.prefixQueryParam
  const query = context.request.query as Record<string, unknown> | undefined
  const value = query?.[param]
  if (typeof value !== 'string') return ''
  const prefix = sanitisePrefix(value)
  if (prefix.split('/').length > MAX_QUERY_PREFIX_SEGMENTS) {
    throw new BadRequestError(`the ${param} query parameter names more than ${MAX_QUERY_PREFIX_SEGMENTS} segments`)
  }
  return prefix
}

function truncateKeepingExtension (name: string, maxBytes: number): string {
  if (Buffer.byteLength(name) <= maxBytes) return name
  const dot = name.lastIndexOf('.')
  const extension = dot > 0 && name.length - dot <= 16 ? name.slice(dot) : ''
  const budget = maxBytes - Buffer.byteLength(extension)
  let stem = ''
  // Walk by code point so a multi-byte character is never cut in half.
  for (const char of name.slice(0, name.length - extension.length)) {
    if (Buffer.byteLength(stem + char) > budget) break
    stem += char
  }
  return stem + extension
}
