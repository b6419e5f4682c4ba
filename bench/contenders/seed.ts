// Contender (s), the seed this package was modelled on: s3chunkuploader's
// S3FileUploadHandler (a Django upload handler queueing the request's chunks
// into a 10-thread pool of boto3 UploadPart calls) on Django under gunicorn.
//
// Installed with pip into a virtualenv in the cache directory (once per
// machine, pinned versions); the Django project is generated per run in a
// temporary directory: the handler as the only FILE_UPLOAD_HANDLERS, an upload
// view returning the stored key and size, a /health view, and the uploader's
// AWS settings pointing at the bench's S3 and bucket (AWS_CA_BUNDLE makes
// botocore trust the bench's TLS MinIO).
//
// gunicorn as a default production deploy would run it: the default (sync)
// worker class with (2 × cores) + 1 workers, the count gunicorn's own docs
// recommend; only --timeout is raised (30 s by default, and a sync worker busy
// with one multi-GiB upload for longer is killed), because a deploy taking
// such uploads must raise it.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { cacheDir, freePort } from '../../test/support/s3-server.ts'
import type { ContenderServer, S3Access } from '../contenders.ts'

/**
 * Pinned so every machine measures the same code. s3chunkuploader 0.15 (its
 * last release) requires Django < 3.2 and django-storages ≤ 1.9.1; the others
 * are the newest that pip picked for it on 2026-11-22.
 */
export const SEED_REQUIREMENTS = [
  's3chunkuploader==0.15',
  'Django==3.1.14',
  'django-storages==1.9.1',
  'boto3==1.44.5',
  'gunicorn==27.0.1'
]

export function seedVenv (): string {
  return join(cacheDir(), 'seed-venv')
}

export function gunicornWorkers (): number {
  return 2 * cpus().length + 1
}

/** The seed's stack as the report names it. */
export function seedDescription (): string {
  return `s3chunkuploader 0.15 on Django 3.1.14 under gunicorn 27.0.1 (sync workers × ${gunicornWorkers()}), boto3 1.44.5`
}

/**
 * Makes sure the virtualenv exists with SEED_REQUIREMENTS (creating it with
 * `python3 -m venv` and pip the first time: ~1 min). Returns null when ready,
 * or why the seed cannot run here (no Python, no venv module, pip failed).
 */
export function prepareSeed (log: (line: string) => void): string | null {
  const venv = seedVenv()
  const marker = join(venv, 'fastify-s3-chunk-requirements.txt')
  const wanted = SEED_REQUIREMENTS.join('\n') + '\n'
  if (existsSync(marker) && readFileSync(marker, 'utf8') === wanted && existsSync(join(venv, 'bin', 'gunicorn'))) return null
  const python = process.env.SEED_PYTHON ?? 'python3'
  const version = spawnSync(python, ['--version'], { encoding: 'utf8' })
  if (version.status !== 0) return `no ${python} on PATH (${version.error?.message ?? version.stderr.trim()})`
  log(`bench: installing the seed (${SEED_REQUIREMENTS.join(', ')}) into ${venv} with pip — once per machine`)
  rmSync(venv, { recursive: true, force: true })
  mkdirSync(cacheDir(), { recursive: true })
  const made = spawnSync(python, ['-m', 'venv', venv], { encoding: 'utf8', timeout: 120_000 })
  if (made.status !== 0) return `${python} -m venv failed: ${(made.stderr ?? made.error?.message ?? '').trim().split('\n').pop() ?? ''}`
  const pip = spawnSync(join(venv, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', ...SEED_REQUIREMENTS], { encoding: 'utf8', timeout: 600_000 })
  if (pip.status !== 0) {
    rmSync(venv, { recursive: true, force: true })
    return `pip install failed: ${(pip.stderr ?? pip.error?.message ?? '').trim().split('\n').slice(-3).join(' ')}`
  }
  writeFileSync(marker, wanted)
  return null
}

const SETTINGS = `
import json, os
_bench = json.loads(os.environ['SEED_BENCH_OPTIONS'])
SECRET_KEY = 'fastify-s3-chunk-bench'
DEBUG = False
ALLOWED_HOSTS = ['127.0.0.1']
ROOT_URLCONF = 'seed_urls'
INSTALLED_APPS = []
MIDDLEWARE = []
DATABASES = {}
# The seed's README: its handler as the upload handler.
FILE_UPLOAD_HANDLERS = ['s3chunkuploader.file_handler.S3FileUploadHandler']
AWS_ACCESS_KEY_ID = _bench['accessKeyId']
AWS_SECRET_ACCESS_KEY = _bench['secretAccessKey']
AWS_REGION = _bench['region']
AWS_S3_REGION_NAME = _bench['region']
AWS_S3_ENDPOINT_URL = _bench['endpoint']
AWS_STORAGE_BUCKET_NAME = _bench['bucket']
# django-storages' placeholder file object only: the handler sends no ACL. None silences its deprecation warning.
AWS_DEFAULT_ACL = None
LOGGING_CONFIG = None
`

const URLS = `
import resource
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

@csrf_exempt
def upload(request):
    files = [f for f in request.FILES.values()]
    if not files:
        return JsonResponse({'error': 'no file'}, status=400)
    f = files[0]
    return JsonResponse({'key': f.name, 'size': getattr(f, 'file_size', None), 'originalName': getattr(f, 'original_name', None)})

def health(request):
    return JsonResponse({'ok': True, 'maxRss': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024})

urlpatterns = [path('upload', upload), path('health', health)]
`

const WSGI = `
import os
os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'seed_settings')
from django.core.wsgi import get_wsgi_application
application = get_wsgi_application()
`

/** Starts gunicorn with the generated project; resolves once GET /health answers. */
export async function startSeedServer (bucket: string, s3: S3Access): Promise<ContenderServer> {
  const project = mkdtempSync(join(tmpdir(), 'fastify-s3-chunk-seed-'))
  writeFileSync(join(project, 'seed_settings.py'), SETTINGS)
  writeFileSync(join(project, 'seed_urls.py'), URLS)
  writeFileSync(join(project, 'seed_wsgi.py'), WSGI)
  const port = await freePort()
  const env: Record<string, string> = {
    ...process.env as Record<string, string>,
    SEED_BENCH_OPTIONS: JSON.stringify({ bucket, endpoint: s3.endpoint, region: s3.region, ...s3.credentials }),
    PYTHONDONTWRITEBYTECODE: '1'
  }
  // botocore reads its CA bundle from here (the uploader builds its client without `verify`).
  if (s3.caFile !== undefined) env.AWS_CA_BUNDLE = s3.caFile
  const child: ChildProcess = spawn(join(seedVenv(), 'bin', 'gunicorn'), [
    '--bind', `127.0.0.1:${port}`,
    '--workers', String(gunicornWorkers()),
    '--worker-class', 'sync',
    '--timeout', '600',
    '--graceful-timeout', '5',
    '--chdir', project,
    '--log-level', 'warning',
    'seed_wsgi:application'
  ], { env, stdio: ['ignore', 'ignore', 'inherit'] })
  const killOnExit = (): void => { child.kill('SIGKILL') }
  process.once('exit', killOnExit)
  const exited = new Promise<void>((resolve) => child.once('exit', () => { resolve() }))
  const stop = async (graceMs = 10_000): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
      await exited
      clearTimeout(timer)
    }
    process.removeListener('exit', killOnExit)
    rmSync(project, { recursive: true, force: true })
  }
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 60_000
  let last: unknown = null
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break
    try {
      const response = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) })
      if (response.ok) {
        await response.arrayBuffer()
        return { url, pid: child.pid ?? 0, stop, health: async () => ({}) }
      }
      last = new Error(`GET /health answered ${response.status}`)
    } catch (error) {
      last = error
    }
    await sleep(200)
  }
  await stop(1000)
  throw new Error(`gunicorn (the seed) did not start: ${child.exitCode !== null ? `exited with ${String(child.exitCode)}` : String(last)}`)
}
