import { fileTypeFromBuffer } from 'file-type'
import { BadContentTypeError, TypeNotAllowedError } from './errors.js'

/** Bytes file-type needs to recognise every format it knows. */
export const SNIFF_BYTES = 4100

/** What a declaration that says nothing about the bytes looks like (curl's default, a missing type). */
// `*/*` and `unknown/unknown` parse as tokens, and a browser sniffs an object served so (as HTML, even).
const GENERIC_TYPES = new Set(['application/octet-stream', 'binary/octet-stream', 'application/unknown', 'application/x-unknown', 'unknown/unknown', '*/*'])

// RFC 9110 token characters; a media type is exactly `token/token`.
const TOKEN = "[!#$%&'*+.^_`|~0-9a-z-]+"
const MEDIA_TYPE = new RegExp(`^(${TOKEN})/(${TOKEN})$`)
const MAX_TYPE_LENGTH = 255

/**
 * Types a browser runs as active content when it opens the object's URL:
 * pages (HTML, XHTML, SVG and any XML, which can carry script or XSLT) and
 * scripts. A wildcard never admits them; only their exact name in
 * `allowedTypes` does.
 */
const ACTIVE_TYPES = new Set([
  'text/html',
  'application/xhtml+xml',
  'image/svg+xml',
  'text/xml',
  'application/xml',
  'text/xsl',
  'text/javascript',
  'application/javascript',
  'application/x-javascript',
  'application/ecmascript',
  'text/ecmascript',
  'text/jscript',
  'application/x-shockwave-flash',
  'multipart/x-mixed-replace'
])

/**
 * Names that mean the same format: a browser's or an OS's name on the left,
 * file-type's on the right. A declaration agrees with the bytes when both
 * name the same format.
 */
const SAME_FORMAT: Record<string, string> = {
  'image/jpg': 'image/jpeg',
  'image/pjpeg': 'image/jpeg',
  'image/apng': 'image/png',
  'image/x-png': 'image/png',
  'audio/mp3': 'audio/mpeg',
  'audio/x-mpeg': 'audio/mpeg',
  'audio/x-wav': 'audio/wav',
  'audio/wave': 'audio/wav',
  'audio/vnd.wave': 'audio/wav',
  'audio/x-m4a': 'audio/mp4',
  'audio/m4a': 'audio/mp4',
  'video/x-m4v': 'video/mp4',
  'audio/x-flac': 'audio/flac',
  'application/x-zip-compressed': 'application/zip',
  'application/x-pdf': 'application/pdf'
}

/**
 * A declared Content-Type, parsed: exactly one `type/subtype`, parameters
 * dropped, lowercased; undefined when nothing (or an empty value) was
 * declared. Anything else — a list (`image/png, text/html`), a bare type,
 * control characters, an empty subtype — throws BadContentTypeError (400):
 * a declaration is attacker data, and S3 would store it as sent.
 */
export function parseMediaType (value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'string') throw new BadContentTypeError('it is not a string')
  const bare = (value.split(';')[0] ?? '').trim().toLowerCase()
  if (bare === '' && value.trim() === '') return undefined
  if (bare.length > MAX_TYPE_LENGTH || !MEDIA_TYPE.test(bare)) {
    throw new BadContentTypeError('expected exactly one type/subtype')
  }
  return bare
}

/** True for types a browser runs as a page or a script (see ACTIVE_TYPES); any `+xml` type counts. */
export function isActiveContent (type: string): boolean {
  return ACTIVE_TYPES.has(type) || type.endsWith('+xml')
}

/** True for a declaration that says nothing about the format. */
export function isGenericType (type: string | undefined): boolean {
  return type === undefined || GENERIC_TYPES.has(type)
}

/**
 * True when the parsed `type` matches an entry of `allowed`: its exact name,
 * or `major/*` — except that a wildcard never admits active content
 * (HTML, SVG, XML, JavaScript, …), which must be listed by name.
 */
export function typeAllowed (type: string, allowed: readonly string[] | undefined): boolean {
  if (allowed === undefined) return true
  const [major] = type.split('/')
  return allowed.some((entry) => {
    const pattern = entry.toLowerCase()
    if (pattern === type) return true
    return pattern.endsWith('/*') && pattern.slice(0, -2) === major && !isActiveContent(type)
  })
}

/** True when two parsed types name the same format (`image/jpg` and `image/jpeg`). */
export function sameFormat (a: string, b: string): boolean {
  return (SAME_FORMAT[a] ?? a) === (SAME_FORMAT[b] ?? b)
}

/**
 * busboy's type for a file part sent without a Content-Type (RFC 7578's default), which it cannot
 * tell from a declared `text/plain` — and Python's requests, among others, sends none. For a
 * streamed file (`partDefault`) it says nothing about the format: the bytes decide, as for a
 * generic declaration, and bytes no format matches stay `text/plain`. A PNG sent so was refused
 * 415 "text/plain" by `allowedTypes: ['image/*']` (found in a new user's review).
 */
const PART_DEFAULT_TYPE = 'text/plain'

/**
 * Checks a declaration before any byte is read, where that is possible:
 * with `allowedTypes`, a specific declaration must itself be allowed (a
 * generic one waits for the bytes). Returns the parsed declaration.
 */
export function checkDeclaredType (declared: unknown, allowed: readonly string[] | undefined, partDefault = false): string | undefined {
  const type = parseMediaType(declared)
  if (allowed !== undefined && !isGenericType(type) && !(partDefault && type === PART_DEFAULT_TYPE) && !typeAllowed(type as string, allowed)) {
    throw new TypeNotAllowedError(type as string)
  }
  return type
}

/**
 * The type an object is stored with, decided once its first bytes are known.
 *
 * With `allowedTypes` the bytes decide: they must be of an allowed type
 * (unrecognisable bytes are refused), a generic or missing declaration takes
 * the sniffed type, and a specific declaration must name the same format as
 * the bytes. Without `allowedTypes` the declaration is kept; a generic or
 * missing one takes the sniffed type when the bytes are recognised and not
 * active content, else `application/octet-stream`. `partDefault`: see PART_DEFAULT_TYPE.
 */
export function decideType (declared: string | undefined, sniffed: string | undefined, allowed: readonly string[] | undefined, partDefault = false): string {
  const defaulted = partDefault && declared === PART_DEFAULT_TYPE
  if (allowed === undefined) {
    if (!isGenericType(declared) && !defaulted) return declared as string
    if (sniffed !== undefined && !isActiveContent(sniffed)) return sniffed
    return defaulted ? PART_DEFAULT_TYPE : 'application/octet-stream'
  }
  if (defaulted) declared = undefined
  if (sniffed === undefined) throw new TypeNotAllowedError('unrecognised content')
  if (!typeAllowed(sniffed, allowed)) throw new TypeNotAllowedError(sniffed)
  if (!isGenericType(declared) && !sameFormat(declared as string, sniffed)) {
    throw new TypeNotAllowedError(`declared ${declared as string}, but the content is ${sniffed}`)
  }
  return sniffed
}

/** The type the bytes say they are (magic numbers), or undefined when file-type does not recognise them. */
export async function sniffType (bytes: Uint8Array): Promise<string | undefined> {
  if (bytes.byteLength === 0) return undefined
  const detected = await fileTypeFromBuffer(bytes.subarray(0, SNIFF_BYTES))
  return detected?.mime
}
