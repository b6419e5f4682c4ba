// What the bench runs: the issue's scenarios at full size, and smaller ones
// for `--quick` (the CI smoke test, under 3 minutes); the https- ones talk
// to a MinIO over TLS.
import type { ContenderId } from './contenders.ts'

const MiB = 1024 * 1024

export interface Scenario {
  id: string
  /** Short human title, e.g. "8 × 256 MiB". */
  title: string
  /** Files uploaded in the run. */
  files: number
  /** Bytes of each file. */
  size: number
  /** Uploads in flight at once. */
  concurrency: number
  /** What the scenario is for, one phrase. */
  purpose: string
  /** Contenders that run it (all of its protocol when absent). */
  contenders?: ContenderId[]
  /** How files are sent: multipart POSTs (the default) or tus; only contenders of the same protocol run it. */
  protocol?: 'multipart' | 'tus'
  /** Against the bench's MinIO over TLS (a certificate made per bench run) instead of plain HTTP. */
  tls?: boolean
}

export function formatSize (bytes: number): string {
  return bytes >= 1024 * MiB && bytes % (1024 * MiB) === 0 ? `${bytes / (1024 * MiB)} GiB` : `${bytes / MiB} MiB`
}

function scenario (id: string, files: number, size: number, concurrency: number, purpose: string, contenders?: ContenderId[]): Scenario {
  const title = `${files} × ${formatSize(size)}${concurrency > 1 ? `, ${concurrency} at a time` : ''}`
  return { id, title, files, size, concurrency, purpose, ...(contenders === undefined ? {} : { contenders }) }
}

/** The tus scenarios (issue 13): tus-js-client sends each file as one upload, the whole file in one PATCH. */
function tusScenario (id: string, files: number, size: number, concurrency: number, purpose: string): Scenario {
  const base = scenario(id, files, size, concurrency, purpose)
  return { ...base, title: `tus: ${base.title}`, protocol: 'tus' }
}

/** True when a contender runs a scenario: the same protocol, named by the scenario when it names any, and among the contender's own when it has a list. */
export function runsScenario (scenario: Scenario, contender: { id: ContenderId, protocol?: 'multipart' | 'tus', onlyScenarios?: string[] }): boolean {
  return (scenario.protocol ?? 'multipart') === (contender.protocol ?? 'multipart') && (scenario.contenders?.includes(contender.id) ?? true) &&
    (contender.onlyScenarios?.includes(scenario.id) ?? true)
}

/** The same over HTTPS: real S3 is always HTTPS, and TLS is work the worker threads take off the main thread. */
function httpsScenario (id: string, files: number, size: number, concurrency: number, purpose: string, contenders?: ContenderId[]): Scenario {
  const base = scenario(id, files, size, concurrency, purpose, contenders)
  return { ...base, title: `HTTPS: ${base.title}`, tls: true }
}

export function scenarios (quick: boolean): Scenario[] {
  // The memory scenario has no server to measure for (d); its throughput is the 1 GiB one's.
  const servers: ContenderId[] = ['a', 'b', 'c', 's']
  if (quick) {
    // The seed (s) runs two quick scenarios, one per S3 (its HTTP and TLS set-up), not four more: CI time.
    const notSeed: ContenderId[] = ['a', 'b', 'c', 'd', 'r']
    return [
      scenario('one-large', 1, 512 * MiB, 1, 'one large file'),
      scenario('concurrent', 8, 64 * MiB, 8, 'concurrent large files', notSeed),
      scenario('small-files', 100, MiB, 8, 'small files: the single-PUT path', notSeed),
      scenario('memory', 1, 1024 * MiB, 1, 'peak memory of one big file', ['a', 'b', 'c']),
      httpsScenario('https-concurrent', 8, 32 * MiB, 8, 'concurrent files, S3 over TLS'),
      tusScenario('tus-one-large', 1, 256 * MiB, 1, 'resumable: one large file'),
      tusScenario('tus-concurrent', 8, 32 * MiB, 8, 'resumable: concurrent files')
    ]
  }
  return [
    scenario('one-large', 1, 1024 * MiB, 1, 'one large file'),
    scenario('concurrent', 8, 256 * MiB, 8, 'concurrent large files'),
    scenario('small-files', 200, MiB, 8, 'small files: the single-PUT path'),
    scenario('memory', 1, 4096 * MiB, 1, 'peak memory of one big file', servers),
    httpsScenario('https-one-large', 1, 1024 * MiB, 1, 'one large file, S3 over TLS'),
    httpsScenario('https-concurrent', 8, 256 * MiB, 8, 'concurrent files, S3 over TLS'),
    httpsScenario('https-small-files', 200, MiB, 8, 'small files, S3 over TLS: whose thread pays the TLS of a single PUT'),
    tusScenario('tus-one-large', 1, 1024 * MiB, 1, 'resumable: one large file'),
    tusScenario('tus-concurrent', 8, 256 * MiB, 8, 'resumable: concurrent files')
  ]
}
