// An HTTP reverse proxy between S3 clients and a real S3 server that injects
// faults (resets, error statuses, delays, corrupted bytes) into chosen requests,
// for the fault-injection tests: point the plugin's `s3.endpoint` at it.
import { Agent, createServer, request as httpRequest, type ClientRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import type { Socket } from 'node:net'
import { pipeline, Transform } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { seededRandom } from './seeded-random.ts'

export type FaultKind = 'reset' | 'status' | 'delay' | 'flip' | 'flipAnswer' | 'resetMidBody' | 'dropAnswer'

export type Fault =
  /** Destroy the client's socket (TCP RST) without answering. */
  | { kind: 'reset' }
  /**
   * Forward, then reset both sides once `afterBytes` body bytes went through (or at the body's end if
   * shorter: the server has the whole body, the client never hears). With `fraction` instead, the cut
   * is at that share of the request's Content-Length and always before its last byte, so the server
   * never sees a body that looks whole (a request without Content-Length is answered 411).
   */
  | { kind: 'resetMidBody', afterBytes: number }
  | { kind: 'resetMidBody', fraction: number }
  /** Drain the body and answer an S3-style XML error; nothing is forwarded. */
  | { kind: 'status', status: number, code?: string, message?: string }
  /** Wait, then forward normally. */
  | { kind: 'delay', ms: number }
  /** Forward the whole request, let S3 answer, then reset the client's socket instead of relaying the answer: S3 did it (for a 2xx), the client never hears. */
  | { kind: 'dropAnswer' }
  /** Forward with one body byte XORed with 0xff: at `offset`, else the middle (content-length known), else byte 0. */
  | { kind: 'flip', offset?: number }
  /** Forward normally, then relay S3's answer with one body byte XORed with 0xff: the middle of a body with a Content-Length, else byte 0. */
  | { kind: 'flipAnswer' }

/** What a rule sees of a request. `path` and `query` are as sent, not normalised. */
export interface FaultRequest {
  method: string
  path: string
  query: URLSearchParams
  headers: IncomingHttpHeaders
}

export interface FaultRule {
  match: (request: FaultRequest) => boolean
  fault: Fault
  /** Chance that a matching request gets the fault, from the proxy's seeded generator (default 1). */
  probability?: number
  /** Most injections by this rule; then it no longer matches (default unlimited). */
  times?: number
}

export interface FaultStats {
  requests: number
  forwarded: number
  /** Faults injected; a resetMidBody only once its cut was made. */
  faults: Record<FaultKind, number>
}

export interface FaultProxy {
  /** `http://127.0.0.1:<port>`. */
  endpoint: string
  /** Replaces the rules (and their `times` counters). */
  setRules: (rules: FaultRule[]) => void
  stats: () => FaultStats
  resetStats: () => void
  /** Stops listening and destroys every socket, both sides, and pending delays. */
  close: () => Promise<void>
}

// Path-style addressing (`/bucket/key`), as the tests' clients use it.
const hasKey = (path: string): boolean => /^\/[^/]+\/./.test(path)
const isCopy = (request: FaultRequest): boolean => request.headers['x-amz-copy-source'] !== undefined

/** UploadPart (not UploadPartCopy). */
export const isUploadPart = (request: FaultRequest): boolean =>
  request.method === 'PUT' && request.query.has('partNumber') && request.query.has('uploadId') && !isCopy(request)

/** PutObject: a PUT on a key, not a part, not a copy, no sub-resource (`?tagging`, `?acl`…; the SDK's `x-id` aside). */
export const isPutObject = (request: FaultRequest): boolean =>
  request.method === 'PUT' && hasKey(request.path) && !isCopy(request) && [...request.query.keys()].every((name) => name === 'x-id')

/** GetObject: a GET on a key. */
export const isGetObject = (request: FaultRequest): boolean => request.method === 'GET' && hasKey(request.path)

export const isCreateMultipart = (request: FaultRequest): boolean => request.method === 'POST' && request.query.has('uploads')

export const isComplete = (request: FaultRequest): boolean => request.method === 'POST' && request.query.has('uploadId')

export const isAbort = (request: FaultRequest): boolean => request.method === 'DELETE' && request.query.has('uploadId')

const ERRORS: Record<number, [code: string, message: string]> = {
  400: ['BadRequest', 'Bad Request'],
  403: ['AccessDenied', 'Access Denied'],
  404: ['NoSuchKey', 'The specified key does not exist.'],
  429: ['SlowDown', 'Please reduce your request rate.'],
  500: ['InternalError', 'We encountered an internal error. Please try again.'],
  502: ['BadGateway', 'The fault proxy could not reach the S3 server.'],
  503: ['SlowDown', 'Please reduce your request rate.'],
  504: ['GatewayTimeout', 'Gateway Timeout']
}

const FALLBACK_4XX: [string, string] = ['BadRequest', 'Bad Request']
const FALLBACK_5XX: [string, string] = ['InternalError', 'We encountered an internal error. Please try again.']

const noop = (): void => {}

function emptyStats (): FaultStats {
  return { requests: 0, forwarded: 0, faults: { reset: 0, status: 0, delay: 0, flip: 0, flipAnswer: 0, resetMidBody: 0, dropAnswer: 0 } }
}

/** Passes bytes through with the one at `at` XORed with 0xff. */
function flipping (at: number): Transform {
  let passed = 0
  return new Transform({
    transform (chunk: Buffer, _encoding, done) {
      let out = chunk
      if (at >= passed && at < passed + chunk.byteLength) {
        out = Buffer.from(chunk)
        out[at - passed] = (out[at - passed] as number) ^ 0xff
      }
      passed += chunk.byteLength
      done(null, out)
    }
  })
}

function splitUrl (url: string): { path: string, query: URLSearchParams } {
  const at = url.indexOf('?')
  return at < 0 ? { path: url, query: new URLSearchParams() } : { path: url.slice(0, at), query: new URLSearchParams(url.slice(at + 1)) }
}

export async function startFaultProxy (options: { target: string, seed?: number }): Promise<FaultProxy> {
  const target = new URL(options.target)
  if (target.protocol !== 'http:' && target.protocol !== 'https:') throw new Error(`fault proxy: only http(s) targets, got ${options.target}`)
  // An https target (the TLS MinIO, for SSE-C) is reached over TLS, trusted as
  // this process trusts it (NODE_EXTRA_CA_CERTS); clients talk plain http to the proxy.
  const tls = target.protocol === 'https:'
  const random = seededRandom(options.seed ?? 1)
  // Idle upstream sockets go well before MinIO's 30 s idle timeout, so none is reused as it closes.
  const agent = tls ? new HttpsAgent({ keepAlive: true, timeout: 15_000 }) : new Agent({ keepAlive: true, timeout: 15_000 })
  const upstreamRequest = tls ? httpsRequest : httpRequest
  const sockets = new Set<Socket>()
  const delays = new AbortController()
  let rules: Array<{ rule: FaultRule, injected: number }> = []
  let stats = emptyStats()
  let requestIds = 0

  function pick (request: FaultRequest): Fault | null {
    for (const entry of rules) {
      if (entry.rule.times !== undefined && entry.injected >= entry.rule.times) continue
      if (!entry.rule.match(request)) continue
      // Dice only for partial probabilities, so certain rules do not shift the sequence.
      const probability = entry.rule.probability ?? 1
      if (probability < 1 && random() >= probability) continue
      entry.injected++
      return entry.rule.fault
    }
    return null
  }

  function answerError (res: ServerResponse, status: number, code?: string, message?: string): void {
    const [defaultCode, defaultMessage] = ERRORS[status] ?? (status >= 500 ? FALLBACK_5XX : FALLBACK_4XX)
    const requestId = `fault-proxy-${++requestIds}`
    const body = '<?xml version="1.0" encoding="UTF-8"?>\n' +
      `<Error><Code>${code ?? defaultCode}</Code><Message>${message ?? defaultMessage}</Message><RequestId>${requestId}</RequestId></Error>`
    res.writeHead(status, {
      'content-type': 'application/xml',
      'content-length': Buffer.byteLength(body),
      'x-amz-request-id': requestId
    })
    res.end(body)
  }

  /** Sends the request upstream as received, body streamed through `fault`'s edits, response streamed back. */
  function forward (req: IncomingMessage, res: ServerResponse, fault: Fault | null): void {
    stats.forwarded++
    let cut = false
    const upstream: ClientRequest = upstreamRequest({
      agent,
      protocol: target.protocol,
      hostname: target.hostname,
      port: target.port,
      method: req.method,
      path: req.url,
      // Raw headers, Host included: SigV4 signs Host, so S3 must see what the client signed.
      headers: req.rawHeaders
    })
    const cutBoth = (): void => {
      if (!cut) stats.faults.resetMidBody++
      cut = true
      upstream.destroy()
      req.socket.resetAndDestroy()
    }
    // An upstream that answered (or failed) before the whole body went through drains no more:
    // read the rest of the client's body (dropped) so its answer is not stuck behind it.
    upstream.on('close', () => { if (!cut && !req.complete) req.resume() })
    upstream.on('error', () => {
      if (cut) return
      // Keep reading the client's body so it gets the answer rather than a write error.
      req.resume()
      if (!res.headersSent) answerError(res, 502)
      else if (!res.writableEnded) res.destroy()
    })
    upstream.on('response', (response) => {
      if (cut || res.destroyed) {
        response.destroy()
        return
      }
      if (fault?.kind === 'dropAnswer') {
        // S3 has answered (for a 2xx: carried the request out). Its answer is read, then dropped.
        response.resume()
        const drop = (): void => { if (!req.socket.destroyed) req.socket.resetAndDestroy() }
        response.once('end', drop)
        response.once('error', drop)
        response.once('close', drop)
        return
      }
      res.writeHead(response.statusCode ?? 502, response.statusMessage, response.rawHeaders)
      if (fault?.kind === 'flipAnswer') {
        const length = Number(response.headers['content-length'])
        pipeline(response, flipping(Number.isFinite(length) && length > 0 ? Math.floor(length / 2) : 0), res, noop)
        return
      }
      pipeline(response, res, noop)
    })

    const contentLength = Number(req.headers['content-length'])
    const flipAt = fault?.kind === 'flip' ? fault.offset ?? (Number.isFinite(contentLength) && contentLength > 0 ? Math.floor(contentLength / 2) : 0) : -1
    const cutAfter = fault?.kind === 'resetMidBody'
      ? Math.max(0, 'fraction' in fault ? Math.min(Math.floor(fault.fraction * contentLength), contentLength - 1) : fault.afterBytes)
      : Infinity
    let passed = 0
    req.on('data', (chunk: Buffer) => {
      if (cut || upstream.destroyed) return
      let out = chunk
      if (flipAt >= passed && flipAt < passed + chunk.byteLength) {
        // A copy: the chunk may be a view into a pooled buffer.
        out = Buffer.from(chunk)
        out[flipAt - passed] = (out[flipAt - passed] as number) ^ 0xff
      }
      if (passed + out.byteLength >= cutAfter) {
        const piece = out.subarray(0, cutAfter - passed)
        passed = cutAfter
        req.pause()
        if (piece.byteLength > 0) upstream.write(piece, cutBoth)
        else setImmediate(cutBoth)
        return
      }
      passed += out.byteLength
      if (!upstream.write(out)) {
        req.pause()
        upstream.once('drain', () => { req.resume() })
      }
    })
    req.on('end', () => {
      if (cut || upstream.destroyed) return
      if (cutAfter !== Infinity) cutBoth()
      else upstream.end()
    })
    req.on('close', () => {
      // The client went away mid-body: S3 must not receive a body that looks complete.
      if (!req.complete) upstream.destroy()
    })
  }

  async function handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    stats.requests++
    req.on('error', noop)
    res.on('error', noop)
    const { path, query } = splitUrl(req.url ?? '/')
    const fault = pick({ method: req.method ?? 'GET', path, query, headers: req.headers })
    // A resetMidBody is counted when the cut is made: a server that answers before the cut
    // point (and closes) leaves nothing to cut.
    if (fault !== null && fault.kind !== 'resetMidBody') stats.faults[fault.kind]++
    switch (fault?.kind) {
      case 'reset':
        req.socket.resetAndDestroy()
        return
      case 'status':
        req.resume()
        req.on('end', () => { answerError(res, fault.status, fault.code, fault.message) })
        return
      case 'delay':
        try {
          await sleep(fault.ms, undefined, { signal: delays.signal })
        } catch {
          req.socket.destroy()
          return
        }
        // The client may have given up while it waited.
        if (!req.destroyed && !req.socket.destroyed) forward(req, res, null)
        return
      default:
        if (fault?.kind === 'resetMidBody' && 'fraction' in fault && !(Number(req.headers['content-length']) > 0)) {
          req.resume()
          req.on('end', () => { answerError(res, 411, 'MissingContentLength', 'fault proxy: resetMidBody by fraction needs a Content-Length') })
          return
        }
        forward(req, res, fault ?? null)
    }
  }

  // Clients keep their sockets as long as they would with MinIO (30 s), not Node's 5 s.
  const server = createServer({ keepAliveTimeout: 30_000 }, (req, res) => { handle(req, res).catch(() => { res.destroy() }) })
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  server.on('clientError', (_error, socket) => { socket.destroy() })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  const address = server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0

  return {
    endpoint: `http://127.0.0.1:${port}`,
    setRules: (next) => { rules = next.map((rule) => ({ rule, injected: 0 })) },
    stats: () => ({ ...stats, faults: { ...stats.faults } }),
    resetStats: () => { stats = emptyStats() },
    close: async () => {
      delays.abort()
      const closed = new Promise<void>((resolve) => { server.close(() => resolve()) })
      for (const socket of sockets) socket.destroy()
      agent.destroy()
      await closed
    }
  }
}

/** A fault proxy in front of `target` for one test, closed at its teardown. */
export async function testFaultProxy (t: { teardown: (fn: () => unknown) => void }, target: string): Promise<FaultProxy> {
  const proxy = await startFaultProxy({ target })
  t.teardown(async () => { await proxy.close() })
  return proxy
}
