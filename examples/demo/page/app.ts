// Browser code: type-checked with tsconfig.browser.json (DOM types), bundled by ../bundle.ts.
// The demo page: sign-in, the three ways in (through the server, direct to S3,
// resumable through the server with tus), the user's files.
import Uppy from '@uppy/core'
import Dashboard from '@uppy/dashboard'
import AwsS3 from '@uppy/aws-s3'
import Tus from '@uppy/tus'

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T
const maxFileSize = Number(document.body.dataset.maxFileSize)

let token = localStorage.getItem('demo-token') ?? 'demo-alice'
const auth = (): Record<string, string> => ({ authorization: `Bearer ${token}` })

/** Turns the plugin's error codes into sentences a person can act on. */
function explain (status: number, body: { code?: string, message?: string } | null, name: string): string {
  switch (body?.code) {
    case 'FST_S3CHUNK_FILE_TOO_LARGE': return `${name}: too large — the limit is ${formatSize(maxFileSize)}.`
    case 'FST_S3CHUNK_TYPE_NOT_ALLOWED': return `${name}: not an allowed type (images, video and audio only).`
    case 'FST_S3CHUNK_UPLOAD_REJECTED': return `${name}: rejected — ${body.message ?? 'it broke the rules'}.`
    case 'FST_S3CHUNK_STORAGE': return `${name}: the storage (S3) could not be reached or refused the file.`
    case 'FST_S3CHUNK_UNAUTHORIZED': return 'Sign in first.'
  }
  if (status === 0) return `${name}: the server could not be reached.`
  return `${name}: ${body?.message ?? `failed (HTTP ${status})`}`
}

function showMessage (text: string, ok = false): void {
  const box = $('message')
  box.textContent = text
  box.className = ok ? 'ok' : ''
  box.hidden = false
}

function formatSize (bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++ }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`
}

// ── sign-in ────────────────────────────────────────────────────────────────
async function setUpUsers (): Promise<void> {
  const me = await (await fetch('/api/me')).json() as { users: Array<{ token: string, name: string }> }
  const select = $<HTMLSelectElement>('user')
  select.innerHTML = me.users.map((u) => `<option value="${u.token}">${u.name}</option>`).join('')
  select.value = token
  select.addEventListener('change', () => {
    token = select.value
    localStorage.setItem('demo-token', token)
    uppy.getPlugin('AwsS3')?.setOptions({ headers: auth() })
    void refreshFiles()
  })
}

// ── through the server: one XHR per file, for a progress bar per file ──────
function uploadThroughServer (file: File): Promise<void> {
  const row = document.createElement('li')
  row.dataset.name = file.name
  row.innerHTML = '<strong></strong> <progress max="100" value="0"></progress><div class="status">waiting…</div>'
  ;(row.querySelector('strong') as HTMLElement).textContent = `${file.name} (${formatSize(file.size)})`
  $('server-list').prepend(row)
  const bar = row.querySelector('progress') as HTMLProgressElement
  const status = row.querySelector('.status') as HTMLElement
  return new Promise((resolve) => {
    const form = new FormData()
    form.append('file', file, file.name)
    const xhr = new XMLHttpRequest()
    xhr.open('POST', '/api/upload')
    xhr.setRequestHeader('authorization', auth().authorization as string)
    xhr.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable) {
        bar.value = Math.round((event.loaded / event.total) * 100)
        status.textContent = `${bar.value} %`
      }
    })
    xhr.addEventListener('load', () => {
      let body: any = null
      try { body = JSON.parse(xhr.responseText) } catch {}
      if (xhr.status === 200) {
        const stored = body.files[0]
        bar.value = 100
        row.classList.add('done')
        status.textContent = `stored: ${stored.key} — ${formatSize(stored.size)}, ${stored.parts === 0 ? 'one PUT' : `${stored.parts} parts`}, ${stored.contentType}`
      } else {
        row.classList.add('failed')
        status.textContent = explain(xhr.status, body, file.name)
        showMessage(status.textContent)
      }
      resolve()
    })
    xhr.addEventListener('error', () => {
      row.classList.add('failed')
      status.textContent = explain(0, null, file.name)
      showMessage(status.textContent)
      resolve()
    })
    xhr.send(form)
  })
}

$('server-upload').addEventListener('click', () => {
  const input = $<HTMLInputElement>('server-files')
  const files = [...(input.files ?? [])]
  input.value = ''
  void Promise.all(files.map(uploadThroughServer)).then(refreshFiles)
})

// ── direct to S3: Uppy against the plugin's Companion-compatible routes ────
const uppy = new Uppy({ autoProceed: false })
  .use(Dashboard, { inline: true, target: '#uppy', height: 360, proudlyDisplayPoweredByUppy: false, note: 'Images, video and audio' })
  .use(AwsS3, {
    endpoint: location.origin,
    headers: auth(),
    shouldUseMultipart: (file) => (file.size ?? 0) > 20 * 1024 * 1024
  })
// The multipart create route needs the file's size (each part URL signs its exact
// length from it): Uppy sends the file's meta as `metadata`, so the size goes there.
uppy.on('file-added', (file) => { uppy.setFileMeta(file.id, { size: file.size }) })

uppy.on('upload-success', (file, response) => {
  if (file === undefined) return
  // POST uploads are checked (and recorded) when the page says they are done;
  // multipart uploads were checked by the complete route already.
  if ((file as { s3Multipart?: { uploadId?: string } }).s3Multipart?.uploadId !== undefined) return
  void fetch('/s3/complete', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...auth() },
    body: JSON.stringify({ key: (response.body as { key?: string } | undefined)?.key })
  }).then(async (reply) => {
    if (!reply.ok) {
      const text = explain(reply.status, await reply.json().catch(() => null), file.name ?? 'file')
      uppy.info(text, 'error', 8000)
      showMessage(text)
    }
    await refreshFiles()
  })
})
uppy.on('upload-error', (file, error) => {
  const body = (error as { source?: XMLHttpRequest, request?: { response?: Response } }).source
  showMessage(`${file?.name ?? 'file'}: ${error.message}${body?.status !== undefined ? ` (HTTP ${body.status})` : ''}`)
})
uppy.on('complete', () => { void refreshFiles() })

// ── resumable through the server: Uppy's tus plugin, a row per file ────────
// Its own Uppy (no Dashboard): the rows show each file's progress and carry
// its pause / resume button. tus-js-client underneath remembers each upload's
// URL, so a retry — after an error, a paused tab, a server restart — asks the
// server for the offset it holds and sends only the rest.
const tusUppy = new Uppy({ id: 'tus', autoProceed: false, restrictions: { maxFileSize } })
  .use(Tus, {
    endpoint: '/files',
    headers: () => auth(),
    // Generous, over a minute in all: a restarting server, or a second instance
    // taking over once the first one's hold on the upload (its lease) ran out.
    retryDelays: [0, 1000, 3000, 5000, 10_000, 20_000, 30_000],
    removeFingerprintOnSuccess: true
  })

const tusRows = new Map<string, { row: HTMLLIElement, bar: HTMLProgressElement, status: HTMLElement, button: HTMLButtonElement }>()

tusUppy.on('file-added', (file) => {
  const row = document.createElement('li')
  row.dataset.id = file.id
  row.dataset.name = file.name ?? ''
  row.innerHTML = '<button type="button" class="pause">Pause</button><strong></strong> <progress max="100" value="0"></progress><div class="status">waiting…</div>'
  ;(row.querySelector('strong') as HTMLElement).textContent = `${file.name ?? 'file'} (${formatSize(file.size ?? 0)})`
  const button = row.querySelector('button') as HTMLButtonElement
  button.addEventListener('click', () => {
    if (row.classList.contains('failed')) {
      row.classList.remove('failed')
      void tusUppy.retryUpload(file.id)
      return
    }
    tusUppy.pauseResume(file.id)
  })
  $('tus-list').prepend(row)
  tusRows.set(file.id, { row, bar: row.querySelector('progress') as HTMLProgressElement, status: row.querySelector('.status') as HTMLElement, button })
})

function showPaused (fileId: string, paused: boolean): void {
  const entry = tusRows.get(fileId)
  if (entry === undefined || entry.row.classList.contains('done')) return
  entry.row.classList.toggle('paused', paused)
  entry.button.textContent = paused ? 'Resume' : 'Pause'
  entry.status.textContent = `${paused ? 'paused at ' : ''}${entry.bar.value} %`
}

tusUppy.on('upload-progress', (file, progress) => {
  const entry = file === undefined ? undefined : tusRows.get(file.id)
  if (entry === undefined || progress.bytesTotal === null || progress.bytesTotal === 0) return
  entry.bar.value = Math.floor((progress.bytesUploaded / progress.bytesTotal) * 100)
  entry.row.dataset.bytes = String(progress.bytesUploaded)
  if (!entry.row.classList.contains('paused')) entry.status.textContent = `${entry.bar.value} % — ${formatSize(progress.bytesUploaded)} of ${formatSize(progress.bytesTotal)}`
})
tusUppy.on('upload-pause', (file, isPaused) => { if (file !== undefined) showPaused(file.id, isPaused) })
tusUppy.on('pause-all', () => { for (const id of tusRows.keys()) showPaused(id, true) })
tusUppy.on('resume-all', () => { for (const id of tusRows.keys()) showPaused(id, false) })
tusUppy.on('upload-success', (file) => {
  const entry = file === undefined ? undefined : tusRows.get(file.id)
  if (entry === undefined) return
  entry.bar.value = 100
  entry.row.classList.remove('paused', 'failed')
  entry.row.classList.add('done')
  entry.button.hidden = true
  entry.status.textContent = `stored — ${formatSize(file?.size ?? 0)}`
})
tusUppy.on('upload-error', (file, error) => {
  const entry = file === undefined ? undefined : tusRows.get(file.id)
  // tus-js-client's DetailedError carries the server's answer: the plugin's JSON error when it sent one.
  const response = (error as { originalResponse?: { getStatus: () => number, getBody: () => string } | null }).originalResponse ?? null
  let body: { code?: string, message?: string } | null = null
  try { body = response === null ? null : JSON.parse(response.getBody()) } catch {}
  const text = response === null ? `${file?.name ?? 'file'}: ${error.message}` : explain(response.getStatus(), body, file?.name ?? 'file')
  showMessage(text)
  if (entry === undefined) return
  entry.row.classList.add('failed')
  entry.button.textContent = 'Retry'
  entry.status.textContent = `${text} — Retry goes on from the server's offset.`
})
tusUppy.on('complete', () => { void refreshFiles() })

$('tus-upload').addEventListener('click', () => {
  const input = $<HTMLInputElement>('tus-files')
  for (const file of [...(input.files ?? [])]) {
    try {
      tusUppy.addFile({ name: file.name, type: file.type, data: file, source: 'Local' })
    } catch (error) {
      showMessage(`${file.name}: ${(error as Error).message}`)
    }
  }
  input.value = ''
  void tusUppy.upload()
})
$('tus-pause-all').addEventListener('click', () => { tusUppy.pauseAll() })
$('tus-resume-all').addEventListener('click', () => { tusUppy.resumeAll() })

// ── the user's files ───────────────────────────────────────────────────────
async function refreshFiles (): Promise<void> {
  const reply = await fetch('/api/files', { headers: auth() })
  if (!reply.ok) {
    showMessage(explain(reply.status, await reply.json().catch(() => null), 'Listing your files'))
    return
  }
  const files = await reply.json() as Array<{ key: string, name: string, size: number, type: string, date: string, url: string }>
  $('file-rows').innerHTML = ''
  for (const file of files) {
    const tr = document.createElement('tr')
    tr.dataset.key = file.key
    for (const text of [file.name, formatSize(file.size), file.type, new Date(file.date).toLocaleString()]) {
      const td = document.createElement('td')
      td.textContent = text
      tr.append(td)
    }
    const link = document.createElement('a')
    link.href = file.url
    link.textContent = 'download'
    const td = document.createElement('td')
    td.append(link)
    tr.append(td)
    $('file-rows').append(tr)
  }
}
$('refresh').addEventListener('click', () => { void refreshFiles() })

void setUpUsers().then(refreshFiles).catch(() => { showMessage('The server could not be reached.') })
