/**
 * A setting of the process, not of the plugin, that an upload server on
 * Node 24 pays for dearly without. Node's HTTP parser gives every body chunk
 * (~64 KiB) a buffer of its own, dead as soon as the plugin has copied it; V8
 * frees such buffers only in a GC. On Node 24 the main thread's young
 * generation is large, scavenges come a few times per GiB, and the dead
 * buffers pile up as external memory until V8 starts a major GC: 28–33 of
 * them per GiB uploaded, measured here. With `--max-semi-space-size=2` the
 * scavenges free the buffers first (one major GC per GiB): in the bench
 * (medians, three scenarios) CPU per GiB 4.2–4.6 → 2.7–3.2 s, and one
 * upload's peak RSS 251–261 → 179–194 MiB (README, "Instances and memory").
 * Node 22 showed no such storm, and Node 20 one in some runs only; there the
 * flag saved memory and moved the CPU both ways. Measured on Node 24 only;
 * said on later versions too, whose V8 sizes the young generation the same way.
 * Any explicit size silences it: a size someone chose is theirs to keep.
 * A library cannot set a V8 heap flag after the process started, so it says so.
 */
export function youngGenerationHint (nodeVersion: string, execArgv: readonly string[], nodeOptions: string | undefined): string | null {
  const major = Number(nodeVersion.replace(/^v/, '').split('.')[0])
  if (!Number.isInteger(major) || major < 24) return null
  const flags = [...execArgv, ...(nodeOptions ?? '').split(/\s+/)]
  // V8 takes dashes or underscores, and the value after "=" or as the next argument.
  if (flags.some((flag) => /^--max[-_]semi[-_]space[-_]size(=|$)/.test(flag))) return null
  return 'fastify-s3-chunk: on Node 24 and later run the server with NODE_OPTIONS=--max-semi-space-size=2 — ' +
    'without it, uploads on Node 24 measured ~1.5× the CPU per GiB (one large upload ~70 MiB more memory) ' +
    '(V8 frees the HTTP parser\'s body buffers with major GCs); see the README, "Instances and memory"'
}
