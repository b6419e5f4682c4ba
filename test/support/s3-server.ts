// Starts a real S3 server for the tests, the bench and the demo: MinIO (built
// once per machine with Go into a cache directory outside the work tree), or
// S3_ENDPOINT when set, or — on a machine with only Node — an embedded s3rver.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

/**
 * MinIO's release tag RELEASE.2025-10-15T17-29-55Z is not served by the Go
 * module proxy (403), nor is its commit; this pseudo-version is the newest
 * MinIO source the proxy serves, built the same way.
 */
export const MINIO_MODULE = 'github.com/minio/minio'
export const MINIO_VERSION = 'v0.0.0-20260212201848-7aac2a2c5b7c'

/** `strict` servers check part sizes, policies and have Abort/ListMultipartUploads (MinIO, AWS); s3rver does not. */
export type S3Kind = 'minio' | 's3rver' | 'external'

export interface S3Server {
  kind: S3Kind
  endpoint: string
  region: string
  accessKeyId: string
  secretAccessKey: string
  /** Whether the server behaves like AWS where tests rely on it. */
  strict: boolean
  /** Human description for logs. */
  description: string
  stop: () => Promise<void>
}

export function cacheDir (): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'fastify-s3-chunk')
}

export function minioBinary (): string {
  return process.env.MINIO_BIN ?? join(cacheDir(), 'bin', 'minio')
}

function haveGo (): boolean {
  return spawnSync('go', ['version'], { stdio: 'ignore' }).status === 0
}

/** Builds MinIO with Go into the cache directory; returns false when Go is missing or the build fails. */
export function buildMinio (log: (line: string) => void = console.error): boolean {
  if (existsSync(minioBinary())) return true
  if (!haveGo()) return false
  const bin = join(cacheDir(), 'bin')
  mkdirSync(bin, { recursive: true })
  log(`fastify-s3-chunk: building MinIO (${MINIO_VERSION}) into ${bin} — once per machine, a few minutes`)
  const built = spawnSync('go', ['install', `${MINIO_MODULE}@${MINIO_VERSION}`], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, GOBIN: bin, CGO_ENABLED: '0', GOFLAGS: '-buildvcs=false' }
  })
  return built.status === 0 && existsSync(minioBinary())
}

export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

async function waitForHttp (url: string, child: ChildProcess | null, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  while (Date.now() < deadline) {
    if (child !== null && child.exitCode !== null) throw new Error(`S3 server exited with code ${child.exitCode} before it was ready`)
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1000) })
      if (response.ok) return
      lastError = new Error(`HTTP ${response.status}`)
    } catch (error) {
      lastError = error
    }
    await sleep(100)
  }
  throw new Error(`S3 server at ${url} not ready after ${timeoutMs} ms: ${String(lastError)}`)
}

export async function startMinio (options: { quiet?: boolean } = {}): Promise<S3Server> {
  const port = await freePort()
  const consolePort = await freePort()
  const dataDir = mkdtempSync(join(tmpdir(), 'fastify-s3-chunk-minio-'))
  const accessKeyId = 'minio-test-user'
  const secretAccessKey = 'minio-test-secret-key'
  const child = spawn(minioBinary(), ['server', '--quiet', '--address', `127.0.0.1:${port}`, '--console-address', `127.0.0.1:${consolePort}`, dataDir], {
    env: {
      ...process.env,
      MINIO_ROOT_USER: accessKeyId,
      MINIO_ROOT_PASSWORD: secretAccessKey,
      MINIO_BROWSER: 'off',
      MINIO_UPDATE: 'off',
      MINIO_CALLHOME_ENABLE: 'off'
    },
    stdio: ['ignore', options.quiet === true ? 'ignore' : 'inherit', 'inherit']
  })
  const endpoint = `http://127.0.0.1:${port}`
  // MinIO alone must not keep this process alive (a test file run on its own
  // would never exit), and if this process exits without stopping it, it goes too.
  child.unref()
  // (A process that exits without calling stop() still removes the data directory.)
  const killOnExit = (): void => {
    child.kill('SIGKILL')
    rmSync(dataDir, { recursive: true, force: true })
  }
  process.once('exit', killOnExit)
  const stop = async (): Promise<void> => {
    process.removeListener('exit', killOnExit)
    if (child.exitCode === null) {
      child.kill('SIGTERM')
      await Promise.race([new Promise((resolve) => child.once('exit', resolve)), sleep(5000)])
      if (child.exitCode === null) child.kill('SIGKILL')
    }
    rmSync(dataDir, { recursive: true, force: true })
  }
  try {
    await waitForHttp(`${endpoint}/minio/health/live`, child, 30_000)
  } catch (error) {
    await stop()
    throw error
  }
  return { kind: 'minio', endpoint, region: 'us-east-1', accessKeyId, secretAccessKey, strict: true, description: `MinIO ${MINIO_VERSION} at ${endpoint} (pid ${child.pid})`, stop }
}

export async function startS3rver (): Promise<S3Server> {
  const { default: S3rver } = await import('s3rver')
  const directory = mkdtempSync(join(tmpdir(), 'fastify-s3-chunk-s3rver-'))
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory, resetOnClose: true })
  const { port } = await server.run()
  const endpoint = `http://127.0.0.1:${port}`
  return {
    kind: 's3rver',
    endpoint,
    region: 'us-east-1',
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    strict: false,
    description: `embedded s3rver at ${endpoint} (no AbortMultipartUpload, no policy checks)`,
    stop: async () => {
      await server.close()
      rmSync(directory, { recursive: true, force: true })
    }
  }
}

/** The S3 named by the environment (S3_ENDPOINT + credentials), if any. */
export function externalS3 (): S3Server | null {
  const endpoint = process.env.S3_ENDPOINT
  if (endpoint === undefined || endpoint === '') return null
  const kind = (process.env.S3_KIND ?? 'external') as S3Kind
  return {
    kind,
    endpoint,
    region: process.env.S3_REGION ?? 'us-east-1',
    accessKeyId: process.env.S3_ACCESS_KEY_ID ?? process.env.AWS_ACCESS_KEY_ID ?? '',
    secretAccessKey: process.env.S3_SECRET_ACCESS_KEY ?? process.env.AWS_SECRET_ACCESS_KEY ?? '',
    // An endpoint given from outside is taken to be a real S3 unless it says it is s3rver.
    strict: kind !== 's3rver',
    description: `${kind} S3 at ${endpoint} (from S3_ENDPOINT)`,
    stop: async () => {}
  }
}

/** S3_ENDPOINT, else MinIO (building it when Go is here), else s3rver. */
export async function startS3 (options: { quiet?: boolean, log?: (line: string) => void } = {}): Promise<S3Server> {
  const external = externalS3()
  if (external !== null) return external
  if (process.env.S3_SERVER !== 's3rver' && buildMinio(options.log)) return await startMinio(options)
  return await startS3rver()
}

/** The environment that points a child process (tap, a contender) at this server. */
export function s3Environment (server: S3Server): Record<string, string> {
  return {
    S3_ENDPOINT: server.endpoint,
    S3_REGION: server.region,
    S3_ACCESS_KEY_ID: server.accessKeyId,
    S3_SECRET_ACCESS_KEY: server.secretAccessKey,
    S3_KIND: server.kind
  }
}
