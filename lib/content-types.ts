import { fileTypeFromBuffer } from 'file-type'

/** Bytes file-type needs to recognise every format it knows. */
export const SNIFF_BYTES = 4100

/** True when `type` (parameters ignored) matches an entry of `allowed` (`image/png`, `image/*`). */
export function typeAllowed (type: string, allowed: readonly string[] | undefined): boolean {
  if (allowed === undefined) return true
  const bare = type.split(';')[0]?.trim().toLowerCase() ?? ''
  const [major] = bare.split('/')
  return allowed.some((entry) => {
    const pattern = entry.toLowerCase()
    return pattern === bare || (pattern.endsWith('/*') && pattern.slice(0, -2) === major)
  })
}

/** The type the bytes say they are (magic numbers), or undefined when file-type does not recognise them. */
export async function sniffType (bytes: Uint8Array): Promise<string | undefined> {
  const detected = await fileTypeFromBuffer(bytes.subarray(0, SNIFF_BYTES))
  return detected?.mime
}
