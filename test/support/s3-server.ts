// Starts a real S3 server for the tests, the bench and the demo: MinIO (built
// once per machine with Go into a cache directory outside the work tree), or
// S3_ENDPOINT when set, or — on a machine with only Node — an embedded s3rver.
// MinIO starts with a static KMS key (SSE-KMS tests); a second MinIO can be
// started over TLS with a self-signed certificate (SSE-C needs TLS).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { request as httpsRequest } from 'node:https'
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
export type S3Kind = 'minio' | 'versitygw' | 's3rver' | 'external'

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
  /** Name of the server's KMS key (MinIO's static-key KMS), when it has one: SSE-KMS tests use it as SSEKMSKeyId. */
  kmsKeyId?: string
  /**
   * PEM file that makes an https endpoint trusted when no public CA signed its
   * certificate (the test bed's self-signed one, after the certificates
   * NODE_EXTRA_CA_CERTS named when it started). Node reads NODE_EXTRA_CA_CERTS
   * at process start only, so whoever spawns the test process sets it to this.
   */
  caFile?: string
  stop: () => Promise<void>
}

export function cacheDir (): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'fastify-s3-chunk')
}

export function minioBinary (): string {
  return process.env.MINIO_BIN ?? join(cacheDir(), 'bin', 'minio')
}

/**
 * versitygw, a second independent S3 implementation (posix backend): the
 * integration suite runs on it too (S3_SERVER=versitygw), so the tests hold
 * to S3's semantics rather than to MinIO's answers.
 */
export const VERSITYGW_MODULE = 'github.com/versity/versitygw/cmd/versitygw'
export const VERSITYGW_VERSION = 'v1.8.0'

export function versitygwBinary (): string {
  return process.env.VERSITYGW_BIN ?? join(cacheDir(), 'bin', 'versitygw')
}

function haveGo (): boolean {
  return spawnSync('go', ['version'], { stdio: 'ignore' }).status === 0
}

/** Builds MinIO with Go into the cache directory; returns false when Go is missing or the build fails. */
export function buildMinio (log: (line: string) => void = console.error): boolean {
  return goInstall('MinIO', MINIO_MODULE, MINIO_VERSION, minioBinary(), log)
}

/** Builds versitygw with Go into the cache directory; returns false when Go is missing or the build fails. */
export function buildVersitygw (log: (line: string) => void = console.error): boolean {
  return goInstall('versitygw', VERSITYGW_MODULE, VERSITYGW_VERSION, versitygwBinary(), log)
}

/** `go install module@version` into the cache's bin directory, once: true when `binary` is there. */
function goInstall (name: string, module: string, version: string, binary: string, log: (line: string) => void): boolean {
  if (existsSync(binary)) return true
  if (!haveGo()) return false
  const bin = join(cacheDir(), 'bin')
  mkdirSync(bin, { recursive: true })
  log(`fastify-s3-chunk: building ${name} (${version}) into ${bin} — once per machine, a few minutes`)
  const built = spawnSync('go', ['install', `${module}@${version}`], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, GOBIN: bin, CGO_ENABLED: '0', GOFLAGS: '-buildvcs=false' }
  })
  return built.status === 0 && existsSync(binary)
}

/** The test MinIOs' root credentials (every MinIO the tests start, alone or in a cluster). */
export const MINIO_CREDENTIALS = { accessKeyId: 'minio-test-user', secretAccessKey: 'minio-test-secret-key' }

/** A test MinIO's environment: the credentials, and no browser, update check or call-home. */
export function minioEnv (): NodeJS.ProcessEnv {
  return {
    ...process.env,
    MINIO_ROOT_USER: MINIO_CREDENTIALS.accessKeyId,
    MINIO_ROOT_PASSWORD: MINIO_CREDENTIALS.secretAccessKey,
    MINIO_BROWSER: 'off',
    MINIO_UPDATE: 'off',
    MINIO_CALLHOME_ENABLE: 'off'
  }
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

async function waitForHttp (url: string, child: ChildProcess | null, timeoutMs: number, ca?: Buffer): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  while (Date.now() < deadline) {
    if (child !== null && child.exitCode !== null) throw new Error(`S3 server exited with code ${child.exitCode} before it was ready`)
    try {
      const status = ca === undefined
        ? (await fetch(url, { signal: AbortSignal.timeout(1000) })).status
        : await httpsStatus(url, ca)
      if (status >= 200 && status < 300) return
      lastError = new Error(`HTTP ${status}`)
    } catch (error) {
      lastError = error
    }
    await sleep(100)
  }
  throw new Error(`S3 server at ${url} not ready after ${timeoutMs} ms: ${String(lastError)}`)
}

/** GET over https trusting `ca` (this process may not trust it: NODE_EXTRA_CA_CERTS is read at start). */
async function httpsStatus (url: string, ca: Buffer): Promise<number> {
  return await new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca, agent: false, timeout: 1000 }, (res) => {
      res.resume()
      resolve(res.statusCode ?? 0)
    })
    req.on('timeout', () => { req.destroy(new Error('timeout')) })
    req.on('error', reject)
    req.end()
  })
}

/**
 * The file for NODE_EXTRA_CA_CERTS: the server's certificate, after whatever
 * NODE_EXTRA_CA_CERTS already named (a machine may rely on it, e.g. for a
 * proxy's CA: replacing it would break the child's other https).
 */
function writeTrustBundle (out: string, certificate: string): void {
  let existing = ''
  const previous = process.env.NODE_EXTRA_CA_CERTS
  if (previous !== undefined && previous !== '') {
    try { existing = readFileSync(previous, 'utf8') } catch {}
  }
  writeFileSync(out, `${existing}${existing === '' || existing.endsWith('\n') ? '' : '\n'}${readFileSync(certificate, 'utf8')}`)
}

/** The name MinIO's static-key KMS knows its one key by (SSEKMSKeyId in tests). */
export const KMS_KEY_NAME = 'fastify-s3-chunk-test-key'

function haveOpenssl (): boolean {
  return spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0
}

/**
 * A self-signed certificate for 127.0.0.1 (subjectAltName IP:127.0.0.1) and
 * its key, written as MinIO's --certs-dir expects them (public.crt,
 * private.key). node:crypto makes keys but not X.509 certificates, hence the
 * openssl CLI.
 */
function makeCertificate (certsDir: string): void {
  const made = spawnSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', join(certsDir, 'private.key'), '-out', join(certsDir, 'public.crt'),
    '-days', '7', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'
  ], { encoding: 'utf8' })
  if (made.status !== 0) throw new Error(`openssl could not make a certificate: ${made.error?.message ?? made.stderr}`)
}

/**
 * MinIO on a temporary data directory, with a static KMS key (a fresh random
 * secret per start, named KMS_KEY_NAME). With `tls`, it serves https only,
 * with a self-signed certificate made for this start (`caFile`).
 */
export async function startMinio (options: { quiet?: boolean, tls?: boolean } = {}): Promise<S3Server> {
  const tls = options.tls === true
  if (tls && !haveOpenssl()) throw new Error('MinIO over TLS needs the openssl CLI to make its certificate, and it is not on PATH')
  const port = await freePort()
  const consolePort = await freePort()
  const dataDir = mkdtempSync(join(tmpdir(), 'fastify-s3-chunk-minio-'))
  const tlsDir = tls ? mkdtempSync(join(tmpdir(), 'fastify-s3-chunk-tls-')) : null
  const certsDir = tlsDir !== null ? join(tlsDir, 'certs') : null
  const caFile = tlsDir !== null ? join(tlsDir, 'trust.pem') : undefined
  const removeDirs = (): void => {
    rmSync(dataDir, { recursive: true, force: true })
    if (tlsDir !== null) rmSync(tlsDir, { recursive: true, force: true })
  }
  if (certsDir !== null && caFile !== undefined) {
    try {
      mkdirSync(certsDir)
      makeCertificate(certsDir)
      writeTrustBundle(caFile, join(certsDir, 'public.crt'))
    } catch (error) {
      removeDirs()
      throw error
    }
  }
  const args = ['server', '--quiet', '--address', `127.0.0.1:${port}`, '--console-address', `127.0.0.1:${consolePort}`]
  if (certsDir !== null) args.push('--certs-dir', certsDir)
  const child = spawn(minioBinary(), [...args, dataDir], {
    env: {
      ...minioEnv(),
      // MinIO's static-key KMS: one 256-bit key, SSE-KMS and SSE-S3 use it.
      MINIO_KMS_SECRET_KEY: `${KMS_KEY_NAME}:${randomBytes(32).toString('base64')}`
    },
    stdio: ['ignore', options.quiet === true ? 'ignore' : 'inherit', 'inherit']
  })
  const endpoint = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`
  // MinIO alone must not keep this process alive (a test file run on its own
  // would never exit), and if this process exits without stopping it, it goes
  // too, and so do its temporary directories (a test file run on its own).
  child.unref()
  const killOnExit = (): void => {
    child.kill('SIGKILL')
    try {
      rmSync(dataDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 20 })
      if (tlsDir !== null) rmSync(tlsDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 20 })
    } catch {}
  }
  process.once('exit', killOnExit)
  const stop = async (): Promise<void> => {
    process.removeListener('exit', killOnExit)
    if (child.exitCode === null) {
      child.kill('SIGTERM')
      await Promise.race([new Promise((resolve) => child.once('exit', resolve)), sleep(5000)])
      if (child.exitCode === null) child.kill('SIGKILL')
    }
    removeDirs()
  }
  try {
    await waitForHttp(`${endpoint}/minio/health/live`, child, 30_000, certsDir !== null ? readFileSync(join(certsDir, 'public.crt')) : undefined)
  } catch (error) {
    await stop()
    throw error
  }
  return {
    kind: 'minio',
    endpoint,
    region: 'us-east-1',
    ...MINIO_CREDENTIALS,
    strict: true,
    description: `MinIO ${MINIO_VERSION} at ${endpoint} (pid ${child.pid}${tls ? ', self-signed TLS' : ''}, KMS key ${KMS_KEY_NAME})`,
    kmsKeyId: KMS_KEY_NAME,
    ...(caFile !== undefined ? { caFile } : {}),
    stop
  }
}

/**
 * versitygw's posix backend on a temporary root (buckets are its
 * directories) with a sidecar directory for metadata (no xattrs needed on
 * /tmp), on loopback only.
 * Credentials reach it through its environment, not its command line.
 */
export async function startVersitygw (options: { quiet?: boolean } = {}): Promise<S3Server> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'fastify-s3-chunk-versitygw-'))
  const root = join(dir, 'root')
  const sidecar = join(dir, 'sidecar')
  mkdirSync(root)
  mkdirSync(sidecar)
  const accessKeyId = 'versitygw-test-user'
  const secretAccessKey = 'versitygw-test-secret-key'
  // versitygw's default: no HTTP keep-alive. With --keep-alive, lost-complete.test.ts's
  // workers mode took 157-173 s here instead of 40 s (2026-11-22, not explained yet).
  const args = ['--port', `127.0.0.1:${port}`, '--health', '/health', '--quiet', 'posix', '--sidecar', sidecar, root]
  const child = spawn(versitygwBinary(), args, {
    env: { ...process.env, ROOT_ACCESS_KEY_ID: accessKeyId, ROOT_SECRET_ACCESS_KEY: secretAccessKey },
    stdio: ['ignore', options.quiet === true ? 'ignore' : 'inherit', 'inherit']
  })
  const endpoint = `http://127.0.0.1:${port}`
  // As for MinIO: it must neither keep this process alive nor outlive it.
  child.unref()
  const killOnExit = (): void => {
    child.kill('SIGKILL')
    try { rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 20 }) } catch {}
  }
  process.once('exit', killOnExit)
  const stop = async (): Promise<void> => {
    process.removeListener('exit', killOnExit)
    if (child.exitCode === null) {
      child.kill('SIGTERM')
      await Promise.race([new Promise((resolve) => child.once('exit', resolve)), sleep(5000)])
      if (child.exitCode === null) child.kill('SIGKILL')
    }
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    await waitForHttp(`${endpoint}/health`, child, 30_000)
  } catch (error) {
    await stop()
    throw error
  }
  return {
    kind: 'versitygw',
    endpoint,
    region: 'us-east-1',
    accessKeyId,
    secretAccessKey,
    strict: true,
    description: `versitygw ${VERSITYGW_VERSION} (posix) at ${endpoint} (pid ${child.pid}, no KMS, no TLS)`,
    stop
  }
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
  const kmsKeyId = process.env.S3_KMS_KEY_ID
  return {
    kind,
    endpoint,
    region: process.env.S3_REGION ?? 'us-east-1',
    accessKeyId: process.env.S3_ACCESS_KEY_ID ?? process.env.AWS_ACCESS_KEY_ID ?? '',
    secretAccessKey: process.env.S3_SECRET_ACCESS_KEY ?? process.env.AWS_SECRET_ACCESS_KEY ?? '',
    // An endpoint given from outside is taken to be a real S3 unless it says it is s3rver.
    strict: kind !== 's3rver',
    description: `${kind} S3 at ${endpoint} (from S3_ENDPOINT)`,
    ...(kmsKeyId !== undefined && kmsKeyId !== '' ? { kmsKeyId } : {}),
    stop: async () => {}
  }
}

/** The S3 over TLS named by the environment (S3_TLS_ENDPOINT, its CA file and credentials), if any. */
export function externalTlsS3 (): S3Server | null {
  const endpoint = process.env.S3_TLS_ENDPOINT
  if (endpoint === undefined || endpoint === '') return null
  const kind = (process.env.S3_TLS_KIND ?? 'external') as S3Kind
  const caFile = process.env.S3_TLS_CA_FILE
  const kmsKeyId = process.env.S3_TLS_KMS_KEY_ID
  return {
    kind,
    endpoint,
    region: process.env.S3_TLS_REGION ?? process.env.S3_REGION ?? 'us-east-1',
    accessKeyId: process.env.S3_TLS_ACCESS_KEY_ID ?? process.env.S3_ACCESS_KEY_ID ?? process.env.AWS_ACCESS_KEY_ID ?? '',
    secretAccessKey: process.env.S3_TLS_SECRET_ACCESS_KEY ?? process.env.S3_SECRET_ACCESS_KEY ?? process.env.AWS_SECRET_ACCESS_KEY ?? '',
    strict: kind !== 's3rver',
    description: `${kind} S3 over TLS at ${endpoint} (from S3_TLS_ENDPOINT)`,
    ...(caFile !== undefined && caFile !== '' ? { caFile } : {}),
    ...(kmsKeyId !== undefined && kmsKeyId !== '' ? { kmsKeyId } : {}),
    stop: async () => {}
  }
}

/**
 * S3_ENDPOINT, else versitygw when S3_SERVER=versitygw (an error when it
 * cannot be built: asked for by name, it is never replaced by another store),
 * else MinIO (building it when Go is here), else s3rver.
 */
export async function startS3 (options: { quiet?: boolean, log?: (line: string) => void } = {}): Promise<S3Server> {
  const external = externalS3()
  if (external !== null) return external
  if (process.env.S3_SERVER === 'versitygw') {
    if (!buildVersitygw(options.log)) throw new Error(`S3_SERVER=versitygw but versitygw is not at ${versitygwBinary()} and could not be built (is Go installed?)`)
    return await startVersitygw(options)
  }
  if (process.env.S3_SERVER !== 's3rver' && buildMinio(options.log)) return await startMinio(options)
  return await startS3rver()
}

/**
 * The S3 over TLS for the tests that need https (SSE-C): S3_TLS_ENDPOINT,
 * else a MinIO of its own over TLS with a certificate made for it; null, with
 * the reason logged, when there is no MinIO (or S3_SERVER=s3rver) or no
 * openssl — the runner fails on that when strict S3 is required.
 */
export async function startTlsS3 (options: { quiet?: boolean, log?: (line: string) => void } = {}): Promise<{ server: S3Server | null, reason: string }> {
  const external = externalTlsS3()
  if (external !== null) return { server: external, reason: '' }
  if (process.env.S3_SERVER === 's3rver') return { server: null, reason: 'S3_SERVER=s3rver: no MinIO over TLS' }
  if (process.env.S3_SERVER === 'versitygw') return { server: null, reason: 'S3_SERVER=versitygw: the SSE-C tests that need S3 over TLS are not in the versitygw suite' }
  if (!buildMinio(options.log)) return { server: null, reason: 'no MinIO binary (and it could not be built): no S3 over TLS' }
  if (!haveOpenssl()) return { server: null, reason: 'the openssl CLI is not on PATH: no certificate, so no MinIO over TLS' }
  return { server: await startMinio({ ...options, tls: true }), reason: '' }
}

/**
 * The environment that points a child process (tap, a contender) at this
 * server, and at the TLS one when given. NODE_EXTRA_CA_CERTS makes the child
 * trust the TLS server's self-signed certificate: Node reads it at start, and
 * worker threads share the process's trust store.
 */
export function s3Environment (server: S3Server, tls?: S3Server | null): Record<string, string> {
  const env: Record<string, string> = {
    S3_ENDPOINT: server.endpoint,
    S3_REGION: server.region,
    S3_ACCESS_KEY_ID: server.accessKeyId,
    S3_SECRET_ACCESS_KEY: server.secretAccessKey,
    S3_KIND: server.kind
  }
  if (server.kmsKeyId !== undefined) env.S3_KMS_KEY_ID = server.kmsKeyId
  if (tls !== undefined && tls !== null) {
    env.S3_TLS_ENDPOINT = tls.endpoint
    env.S3_TLS_REGION = tls.region
    env.S3_TLS_ACCESS_KEY_ID = tls.accessKeyId
    env.S3_TLS_SECRET_ACCESS_KEY = tls.secretAccessKey
    env.S3_TLS_KIND = tls.kind
    if (tls.kmsKeyId !== undefined) env.S3_TLS_KMS_KEY_ID = tls.kmsKeyId
    if (tls.caFile !== undefined) {
      env.S3_TLS_CA_FILE = tls.caFile
      env.NODE_EXTRA_CA_CERTS = tls.caFile
    }
  }
  return env
}
