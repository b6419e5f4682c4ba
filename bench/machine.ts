// The machine and versions the figures belong to, printed with them.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { cpus, loadavg, release, totalmem, type as osType } from 'node:os'
import { MINIO_VERSION, minioBinary, type S3Server } from '../test/support/s3-server.ts'

export interface Machine {
  cores: number
  cpuModel: string
  memoryGiB: number
  os: string
  node: string
  s3: string
  /** 1-minute load average when the bench started: another job on the machine shows here. */
  loadAverageAtStart: number
  /** The commit measured, and whether the package's source differed from it. */
  revision: string
}

function revision (): string {
  const root = fileURLToPath(new URL('..', import.meta.url))
  const git = (args: string[]): string => spawnSync('git', args, { cwd: root, encoding: 'utf8', timeout: 10_000 }).stdout?.trim() ?? ''
  const commit = git(['rev-parse', '--short', 'HEAD'])
  if (commit === '') return 'unknown (not a git checkout)'
  const changed = git(['status', '--porcelain', '--', 'lib', 'workers', 'package.json'])
  return changed === '' ? commit : `${commit} + uncommitted changes to lib/, workers/ or package.json`
}

function minioVersion (): string {
  const out = spawnSync(minioBinary(), ['--version'], { encoding: 'utf8', timeout: 10_000 })
  const line = out.stdout?.split('\n')[0]?.trim() ?? ''
  // A binary built with `go install` calls itself DEVELOPMENT.GOGET; the module version says which source it is.
  return line.includes('DEVELOPMENT.GOGET') || line === '' ? `MinIO ${MINIO_VERSION} (go install)` : line
}

export function describeMachine (s3: S3Server): Machine {
  const processors = cpus()
  return {
    cores: processors.length,
    cpuModel: processors[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 1024 ** 3),
    os: `${osType()} ${release()}`,
    node: process.version,
    s3: s3.kind === 'minio' ? minioVersion() : s3.description,
    loadAverageAtStart: loadavg()[0] ?? 0,
    revision: revision()
  }
}
