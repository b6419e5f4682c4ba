// Starts Debian's nginx as this (non-root) user on 127.0.0.1 for the
// deployment tests: a prefix directory of its own in a temp dir, the main
// config rendered there (`-p`, `-c`, `-e`, `daemon off`, a pid file, its own
// error log and its own client body temp directory), stopped by pid.
import { spawn, spawnSync } from 'node:child_process'
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { freePort } from './s3-server.ts'

/** The documented configuration the README shows and users copy. */
export const DEPLOY_CONFIG = fileURLToPath(new URL('../../examples/deploy/nginx.conf', import.meta.url))

export function nginxBinary (): string {
  return process.env.NGINX_BIN ?? '/usr/sbin/nginx'
}

/** null when nginx can run here, else why not. */
export function nginxMissing (): string | null {
  if (!existsSync(nginxBinary())) return `no nginx at ${nginxBinary()} (apt-get install nginx, or NGINX_BIN)`
  const version = spawnSync(nginxBinary(), ['-v'], { encoding: 'utf8' })
  return version.status === 0 ? null : `${nginxBinary()} -v failed: ${version.stderr}`
}

/**
 * Skip reason for a test that needs nginx, or false. Under
 * S3_REQUIRE_STRICT=1 (CI) a missing nginx is an error, never a skip.
 */
export function needsNginx (): false | string {
  const missing = nginxMissing()
  if (missing === null) return false
  if (process.env.S3_REQUIRE_STRICT === '1') throw new Error(`S3_REQUIRE_STRICT=1 but ${missing}`)
  console.log(`# skip: ${missing}`)
  return missing
}

/**
 * The shipped site file with the test's ports: its `listen` line becomes
 * 127.0.0.1:`port`, and the upstream's `server` lines become `upstreams`.
 * Everything else is the file as users get it; `extra` lines are added to
 * the server block (the default-config comparisons use none of this).
 */
export function renderDeployConfig (options: { port: number, upstreams: string[], source?: string }): string {
  const text = readFileSync(options.source ?? DEPLOY_CONFIG, 'utf8')
  let listens = 0
  let servers = 0
  const out: string[] = []
  for (const line of text.split('\n')) {
    if (/^\s*listen\s+\d+;/.test(line)) {
      listens++
      out.push(`    listen 127.0.0.1:${options.port};`)
    } else if (/^\s*server\s+127\.0\.0\.1:\d+;/.test(line)) {
      // All the sample's instances are replaced by the test's, once.
      if (servers++ === 0) for (const upstream of options.upstreams) out.push(`    server ${upstream};`)
    } else {
      out.push(line)
    }
  }
  if (listens !== 1 || servers === 0) throw new Error(`${options.source ?? DEPLOY_CONFIG}: expected one "listen N;" and "server 127.0.0.1:P;" lines in the upstream (found ${listens}, ${servers})`)
  return out.join('\n')
}

export interface Nginx {
  /** http://127.0.0.1:<port> of the first `listen`. */
  url: string
  port: number
  /** The master process (daemon off: the child this module spawned). */
  pid: number
  prefix: string
  /** Its client_body_temp_path. */
  clientBodyTemp: string
  errorLog: string
  /** Pids of the worker processes (the master's children). */
  workers: () => number[]
  /** Bytes the master and workers caused to be written to storage (/proc/<pid>/io write_bytes, summed). */
  writeBytes: () => number
  /** Files (recursively) in the client body temp directory and their total size, now. */
  bodyTempUsage: () => { files: number, bytes: number }
  /** Stops nginx (SIGQUIT, graceful; SIGKILL after `graceMs`) and removes its prefix. */
  stop: (graceMs?: number) => Promise<void>
}

/**
 * nginx with `site` (http-context directives: upstreams and servers) in a
 * prefix directory of its own. `port` is the port the site listens on (the
 * caller rendered it into `site`). The main config sets what a non-root
 * process needs: every temp path inside the prefix, pid and logs there.
 */
export async function startNginx (options: { site: string, port: number, errorLogLevel?: string }): Promise<Nginx> {
  const prefix = mkdtempSync(join(tmpdir(), 'fastify-s3-chunk-nginx-'))
  const clientBodyTemp = join(prefix, 'client_body_temp')
  const errorLog = join(prefix, 'error.log')
  const pidFile = join(prefix, 'nginx.pid')
  for (const dir of ['client_body_temp', 'proxy_temp', 'fastcgi_temp', 'uwsgi_temp', 'scgi_temp', 'logs']) mkdirSync(join(prefix, dir))
  const conf = join(prefix, 'nginx.conf')
  writeFileSync(conf, [
    'daemon off;',
    'worker_processes 1;',
    `pid ${pidFile};`,
    // warn: nginx logs "a client request body is buffered to a temporary file" at warn.
    `error_log ${errorLog} ${options.errorLogLevel ?? 'warn'};`,
    'events { worker_connections 1024; }',
    'http {',
    `  access_log ${join(prefix, 'logs', 'access.log')};`,
    `  client_body_temp_path ${clientBodyTemp};`,
    `  proxy_temp_path ${join(prefix, 'proxy_temp')};`,
    `  fastcgi_temp_path ${join(prefix, 'fastcgi_temp')};`,
    `  uwsgi_temp_path ${join(prefix, 'uwsgi_temp')};`,
    `  scgi_temp_path ${join(prefix, 'scgi_temp')};`,
    options.site,
    '}',
    ''
  ].join('\n'))
  // Never root: as root, nginx's master would stay root and its workers drop
  // to `nobody`; run all of it as `nobody` instead, owning its prefix.
  const ids = process.getuid?.() === 0 ? { uid: NOBODY, gid: NOBODY } : {}
  if (ids.uid !== undefined) chownTree(prefix, NOBODY)
  const tested = spawnSync(nginxBinary(), ['-t', '-q', '-p', prefix, '-e', errorLog, '-c', conf], { encoding: 'utf8', ...ids })
  if (tested.status !== 0) {
    rmSync(prefix, { recursive: true, force: true })
    throw new Error(`nginx -t refused the configuration:\n${tested.stderr}\n${readFileSync(conf, 'utf8')}`)
  }
  const child = spawn(nginxBinary(), ['-p', prefix, '-e', errorLog, '-c', conf], { stdio: ['ignore', 'ignore', 'inherit'], ...ids })
  const pid = child.pid ?? 0
  const workers = (): number[] => {
    try {
      return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter((p) => p !== '').map(Number)
    } catch { return [] }
  }
  // nginx's workers outlive a master killed with SIGKILL: kill them too.
  const killAll = (): void => {
    for (const worker of workers()) { try { process.kill(worker, 'SIGKILL') } catch {} }
    child.kill('SIGKILL')
  }
  const killOnExit = (): void => {
    killAll()
    try { rmSync(prefix, { recursive: true, force: true }) } catch {}
  }
  process.once('exit', killOnExit)
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const stop = async (graceMs = 5000): Promise<void> => {
    process.removeListener('exit', killOnExit)
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGQUIT')
      const timer = setTimeout(killAll, graceMs)
      await exited
      clearTimeout(timer)
    }
    rmSync(prefix, { recursive: true, force: true })
  }
  const url = `http://127.0.0.1:${options.port}`
  // Ready once the port accepts and a worker answers (any status).
  const deadline = Date.now() + 15_000
  for (;;) {
    if (child.exitCode !== null) {
      const log = existsSync(errorLog) ? readFileSync(errorLog, 'utf8') : ''
      await stop()
      throw new Error(`nginx exited with ${child.exitCode}: ${log}`)
    }
    try {
      await fetch(`${url}/nginx-ready-probe`, { signal: AbortSignal.timeout(1000) })
      if (existsSync(pidFile) && workers().length > 0) break
    } catch {}
    if (Date.now() > deadline) {
      await stop()
      throw new Error('nginx did not start within 15 s')
    }
    await sleep(50)
  }
  return {
    url,
    port: options.port,
    pid,
    prefix,
    clientBodyTemp,
    errorLog,
    workers,
    writeBytes: () => [pid, ...workers()].reduce((sum, p) => sum + ioWriteBytes(p), 0),
    bodyTempUsage: () => usage(clientBodyTemp),
    stop
  }
}

/** A free loopback port for nginx to listen on. */
export async function nginxPort (): Promise<number> {
  return await freePort()
}

/** /proc/<pid>/io write_bytes: bytes this process caused to be sent to storage (page cache dirtied counts). */
export function ioWriteBytes (pid: number): number {
  try {
    const match = /^write_bytes:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))
    return match === null ? 0 : Number(match[1])
  } catch { return 0 }
}

/** uid and gid of Debian's `nobody` / `nogroup`. */
const NOBODY = 65534

function chownTree (dir: string, id: number): void {
  chownSync(dir, id, id)
  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) chownTree(path, id)
    else chownSync(path, id, id)
  }
}

function usage (dir: string): { files: number, bytes: number } {
  let files = 0
  let bytes = 0
  let entries: string[]
  try { entries = readdirSync(dir) } catch { return { files, bytes } }
  for (const name of entries) {
    const path = join(dir, name)
    try {
      const stat = statSync(path)
      if (stat.isDirectory()) {
        const inner = usage(path)
        files += inner.files
        bytes += inner.bytes
      } else {
        files++
        bytes += stat.size
      }
    } catch {} // removed between readdir and stat
  }
  return { files, bytes }
}
