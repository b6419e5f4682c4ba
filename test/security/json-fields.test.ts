// Attacks with fields sent as application/json, which @fastify/multipart parses
// (helper-30, 2026-12-06; both failed before the fix):
// - a field nested 10 000 deep (20 KB) parses — the parser does not recurse —
//   but measuring it with JSON.stringify overflowed the stack: 500. Now 400.
// - maxFieldsSize counts a field's text, but the parsed value was kept (in
//   @fastify/multipart's request body) until the request ended: 1 MiB of
//   `[{},{},…]` is ~350 000 objects, and 8 open requests grew the heap by
//   177 MiB. The part now keeps the text.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { startApp } from '../support/app.ts'
import { boundary, sendRequest } from '../support/multipart.ts'
import { exposedGc } from '../support/force-gc.ts'
import { freshBucket, listKeys, needsStrictS3, testClient, testS3 } from '../support/s3.ts'

const MiB = 1024 * 1024
const DEPTH = 10_000
const CONNECTIONS = 8
const server = await testS3()
const client = testClient(server)
const gc = exposedGc()

t.test(`a JSON field nested ${DEPTH} deep (${2 * DEPTH} bytes) is a 4xx, not a 500`, { skip: needsStrictS3(server) }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { url } = await startApp(t, server, { bucket, mode: 'inline' })
  for (const path of ['/upload', '/many']) {
    const separator = boundary()
    const body = Buffer.concat([
      Buffer.from(`--${separator}\r\nContent-Disposition: form-data; name="meta"\r\nContent-Type: application/json\r\n\r\n${'['.repeat(DEPTH)}${']'.repeat(DEPTH)}\r\n`),
      Buffer.from(`--${separator}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`),
      randomBytes(1000),
      Buffer.from(`\r\n--${separator}--\r\n`)
    ])
    const response = await sendRequest(`${url}${path}`, {
      headers: { 'content-type': `multipart/form-data; boundary=${separator}`, 'content-length': String(body.byteLength) },
      chunks: [body]
    })
    t.comment(`${path}: ${response.status} ${response.body.slice(0, 160)}`)
    t.equal(response.status, 400, `${path}: 400 (got ${response.status})`)
    t.match(response.body, /nested more than 64 levels/)
  }
  t.same(await listKeys(client, bucket), [], 'nothing stored')
})

t.test(`${CONNECTIONS} requests, each one JSON field within maxFieldsSize (1 MiB), left open: heap held stays near their field bytes`, { skip: needsStrictS3(server), timeout: 90_000 }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { url } = await startApp(t, server, { bucket, mode: 'inline', maxBufferedBytes: 20 * MiB, bodyTimeout: 60_000 })
  const target = new URL(url)
  // Just under 1 MiB of text: within the default maxFieldSize and maxFieldsSize.
  const value = `[${Array.from({ length: Math.floor((MiB - 64) / 3) }, () => '{}').join(',')}]`
  gc(); gc()
  const before = process.memoryUsage().heapUsed
  const sockets: Socket[] = []
  t.teardown(() => { for (const s of sockets) s.destroy() })
  const answers: string[] = []
  for (let i = 0; i < CONNECTIONS; i++) {
    const separator = boundary()
    const socket = connect({ host: target.hostname, port: Number(target.port) })
    socket.on('error', () => {})
    let answer = ''
    socket.on('data', (chunk: Buffer) => { answer += chunk.toString('latin1') })
    socket.on('close', () => { answers[i] = answer })
    await new Promise<void>((resolve) => socket.once('connect', resolve))
    socket.write(`POST /upload HTTP/1.1\r\nHost: ${target.host}\r\nContent-Type: multipart/form-data; boundary=${separator}\r\nTransfer-Encoding: chunked\r\n\r\n`)
    const part = `--${separator}\r\nContent-Disposition: form-data; name="meta"\r\nContent-Type: application/json\r\n\r\n${value}\r\n--${separator}\r\nContent-Disposition: form-data; name="tail"\r\n\r\n`
    socket.write(`${Buffer.byteLength(part).toString(16)}\r\n${part}\r\n`)
    sockets.push(socket)
  }
  await sleep(5000)
  gc(); gc()
  const grew = (process.memoryUsage().heapUsed - before) / MiB
  const open = sockets.filter((s) => !s.destroyed && s.readyState === 'open').length
  const fieldBytes = CONNECTIONS * Buffer.byteLength(value) / MiB
  t.comment(`${open}/${CONNECTIONS} requests still open, no answer yet: ${sockets.every((_, i) => answers[i] === undefined)}; fields sent ${fieldBytes.toFixed(1)} MiB; heap grew ${grew.toFixed(0)} MiB`)
  const bound = 3 * fieldBytes + 16
  t.ok(grew < bound, `heap held for ${CONNECTIONS} open requests within 3× their field bytes + 16 MiB (${bound.toFixed(0)} MiB): grew ${grew.toFixed(0)} MiB`)
})
