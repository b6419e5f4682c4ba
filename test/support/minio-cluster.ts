// MinIO processes a test controls itself (pause with SIGSTOP, kill, restart),
// for the deployment tests: one MinIO of the test's own (the suite's shared
// one must never be paused), or MinIO in distributed erasure-coded mode —
// 4 `minio server` processes on loopback ports, one drive each, sharing one
// endpoint list — with nginx in front of the 4 nodes, as MinIO documents it.
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { buildMinio, freePort, MINIO_CREDENTIALS, minioBinary, minioEnv, type S3Server } from './s3-server.ts'
import { startNginx, type Nginx } from './nginx.ts'


export interface MinioNode {
  port: number
  /** The current process's pid (changes on restart). */
  pid: () => number
  /** SIGSTOP: the process holds its sockets and answers nothing. */
  pause: () => void
  /** SIGCONT. */
  resume: () => void
  /** SIGKILL, as a crashed machine; resolves once it is gone. */
  kill: () => Promise<void>
  /** Starts the process again on the same port and drive(s). */
  restart: () => Promise<void>
  running: () => boolean
}

/** Skip reason when MinIO cannot run here; an error under S3_REQUIRE_STRICT=1 (CI). */
export function needsMinioBinary (): false | string {
  if (buildMinio(() => {})) return false
  const reason = `no MinIO binary at ${minioBinary()} (and Go could not build it)`
  if (process.env.S3_REQUIRE_STRICT === '1') throw new Error(`S3_REQUIRE_STRICT=1 but ${reason}`)
  console.log(`# skip: ${reason}`)
  return reason
}

function clusterEnv (): NodeJS.ProcessEnv {
  return {
    ...minioEnv(),
    // The drives are directories on the root disk: MinIO refuses that in
    // distributed mode unless told it is a test.
    MINIO_CI_CD: 'on'
  }
}

/**
 * Where a node's output goes: appended to `<logDir>/minio-<port>.log` when a log directory
 * is given (the `logDir` option, or MINIO_CLUSTER_LOG_DIR: MinIO logs a drive it judges
 * offline, a quorum lost, a heal); else the test's own output, or nowhere.
 */
function nodeOutput (port: number, quiet: boolean, logDir: string | undefined): 'ignore' | 'inherit' | number {
  if (logDir !== undefined && logDir !== '') {
    mkdirSync(logDir, { recursive: true })
    return openSync(join(logDir, `minio-${port}.log`), 'a')
  }
  return quiet ? 'ignore' : 'inherit'
}

function node (port: number, args: string[], quiet: boolean, logDir?: string): MinioNode {
  let child: ChildProcess
  const launch = (): void => {
    const output = nodeOutput(port, quiet, logDir)
    child = spawn(minioBinary(), ['server', '--quiet', '--address', `127.0.0.1:${port}`, '--console-address', `127.0.0.1:0`, ...args], {
      // In a container (/.dockerenv) MinIO waits forever for endpoints that
      // resolve to loopback to "resolve to a valid IP" (cmd/endpoint.go,
      // UpdateIsLocal); _MINIO_SERVER_LOCAL names the endpoint that is this
      // process, which ends that wait. Harmless elsewhere.
      env: { ...clusterEnv(), _MINIO_SERVER_LOCAL: `127.0.0.1:${port}` },
      stdio: ['ignore', output, output]
    })
    // The child has its own copy of the log file's descriptor.
    if (typeof output === 'number') closeSync(output)
    child.unref()
  }
  launch()
  const running = (): boolean => child.exitCode === null && child.signalCode === null
  return {
    port,
    pid: () => child.pid ?? 0,
    pause: () => { child.kill('SIGSTOP') },
    resume: () => { child.kill('SIGCONT') },
    running,
    kill: async () => {
      if (!running()) return
      const gone = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGCONT')
      child.kill('SIGKILL')
      await gone
    },
    restart: async () => {
      if (running()) throw new Error(`MinIO on ${port} is still running`)
      launch()
    }
  }
}

async function waitFor (url: string, timeoutMs: number, alive: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last = ''
  while (Date.now() < deadline) {
    if (!alive()) throw new Error(`MinIO exited before ${url} answered`)
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2000) })
      if (response.ok) return
      last = `HTTP ${response.status}`
    } catch (error) { last = String(error) }
    await sleep(200)
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms: ${last}`)
}

async function stopNodes (nodes: MinioNode[]): Promise<void> {
  for (const n of nodes) {
    if (!n.running()) continue
    n.resume()
    process.kill(n.pid(), 'SIGTERM')
  }
  const deadline = Date.now() + 5000
  while (nodes.some((n) => n.running()) && Date.now() < deadline) await sleep(50)
  await Promise.all(nodes.map(async (n) => { await n.kill() }))
}

export interface OwnMinio { server: S3Server, node: MinioNode }

/** One single-drive MinIO of this test's own (pausable); stopped with `server.stop()`. */
export async function startOwnMinio (options: { quiet?: boolean } = {}): Promise<OwnMinio> {
  const port = await freePort()
  const dataDir = mkdtempSync(join(tmpdir(), 'fastify-s3-chunk-own-minio-'))
  const n = node(port, [dataDir], options.quiet !== false)
  const killOnExit = (): void => {
    try { process.kill(n.pid(), 'SIGKILL') } catch {}
    try { rmSync(dataDir, { recursive: true, force: true }) } catch {}
  }
  process.once('exit', killOnExit)
  const stop = async (): Promise<void> => {
    process.removeListener('exit', killOnExit)
    await stopNodes([n])
    rmSync(dataDir, { recursive: true, force: true })
  }
  const endpoint = `http://127.0.0.1:${port}`
  try {
    await waitFor(`${endpoint}/minio/health/live`, 30_000, n.running)
  } catch (error) {
    await stop()
    throw error
  }
  return {
    node: n,
    server: { kind: 'minio', endpoint, region: 'us-east-1', ...MINIO_CREDENTIALS, strict: true, description: `MinIO at ${endpoint} (pid ${n.pid()}, this test's own)`, stop }
  }
}

export interface MinioCluster {
  /** The S3 to use: nginx in front of every node. */
  server: S3Server
  nodes: MinioNode[]
  /** Each node's drive (a directory), in the order of `nodes`: an object's `<drive>/<bucket>/<key>/xl.meta` says which drives hold it. */
  drives: string[]
  nginx: Nginx
  /** GET /minio/health/cluster on a running node, through nginx: 200 when the cluster has write quorum. */
  healthy: () => Promise<boolean>
}

/**
 * MinIO in distributed erasure-coded mode: `size` processes (default 4) on
 * loopback ports, one drive (a temp dir) each, every process given the same
 * explicit endpoint list `http://127.0.0.1:<port_i><dir_i>` (MinIO's ellipsis
 * syntax would make the product of ports and dirs, not pairs). With 4 drives
 * MinIO's default parity is EC:2: reads need 2 drives; writes need 3
 * (data = parity → write quorum data + 1), so one node down is tolerated.
 * nginx balances over the nodes (MinIO's documented proxy settings: Host
 * passed as is for SigV4, bodies unbuffered, HTTP/1.1 keep-alive).
 */
/** `logDir`: keep each node's log there as `minio-<port>.log` (MINIO_CLUSTER_LOG_DIR too). */
export async function startMinioCluster (options: { size?: number, quiet?: boolean, logDir?: string } = {}): Promise<MinioCluster> {
  const size = options.size ?? 4
  const root = mkdtempSync(join(tmpdir(), 'fastify-s3-chunk-minio-cluster-'))
  const ports: number[] = []
  while (ports.length < size) {
    const port = await freePort()
    if (!ports.includes(port)) ports.push(port)
  }
  const drives = ports.map((_, i) => join(root, `drive${i + 1}`))
  for (const drive of drives) mkdirSync(drive)
  const endpoints = ports.map((port, i) => `http://127.0.0.1:${port}${drives[i] as string}`)
  const logDir = options.logDir ?? process.env.MINIO_CLUSTER_LOG_DIR
  const nodes = ports.map((port) => node(port, endpoints, options.quiet !== false, logDir))
  let nginx: Nginx | null = null
  const killOnExit = (): void => {
    for (const n of nodes) { try { process.kill(n.pid(), 'SIGKILL') } catch {} }
    try { rmSync(root, { recursive: true, force: true }) } catch {}
  }
  process.once('exit', killOnExit)
  const stop = async (): Promise<void> => {
    process.removeListener('exit', killOnExit)
    await nginx?.stop()
    await stopNodes(nodes)
    rmSync(root, { recursive: true, force: true })
  }
  try {
    // Each node answers /minio/health/cluster 200 once the erasure set has write quorum.
    await Promise.all(nodes.map(async (n) => { await waitFor(`http://127.0.0.1:${n.port}/minio/health/cluster`, 90_000, n.running) }))
    const port = await freePort()
    nginx = await startNginx({ port, site: minioSite(port, ports) })
  } catch (error) {
    await stop()
    throw error
  }
  const front = nginx
  const endpoint = front.url
  return {
    nodes,
    drives,
    nginx: front,
    healthy: async () => {
      try {
        return (await fetch(`${endpoint}/minio/health/cluster`, { signal: AbortSignal.timeout(5000) })).ok
      } catch { return false }
    },
    server: {
      kind: 'minio',
      endpoint,
      region: 'us-east-1',
      ...MINIO_CREDENTIALS,
      strict: true,
      description: `distributed MinIO (${size} nodes, EC, pids ${nodes.map((n) => n.pid()).join(' ')}) behind nginx at ${endpoint}`,
      stop
    }
  }
}

/** nginx in front of MinIO nodes, after MinIO's "Configure NGINX Proxy for MinIO Server" page. */
function minioSite (port: number, nodePorts: number[]): string {
  return `
upstream minio_s3 {
    least_conn;
${nodePorts.map((p) => `    server 127.0.0.1:${p} max_fails=1 fail_timeout=5s;`).join('\n')}
    keepalive 64;
}
server {
    listen 127.0.0.1:${port};
    client_max_body_size 0;
    ignore_invalid_headers off;
    proxy_buffering off;
    proxy_request_buffering off;
    location / {
        proxy_set_header Host $http_host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_connect_timeout 2s;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        chunked_transfer_encoding off;
        # A node that refuses connections (killed) is skipped; nginx retries a
        # request on another node only before any of it was sent.
        proxy_next_upstream error timeout http_502;
        proxy_pass http://minio_s3;
    }
}
`
}
