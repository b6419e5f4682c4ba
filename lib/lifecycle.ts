import type { ServerResponse } from 'node:http'
import type { FastifyInstance, RouteHandlerMethod } from 'fastify'
import type { Engine } from './engine.js'
import type { S3File } from './types.js'

/**
 * Seconds a client refused while the server closes is told to wait
 * (`Retry-After`): long enough for a load balancer to see the instance go
 * (its health checks get 503 too) or for a restarted single instance to come
 * back up, short enough not to stall a client that a second instance could
 * serve at once.
 */
export const CLOSING_RETRY_AFTER_SECONDS = 5

/**
 * Every refusal while the app closes says when to come back, whoever
 * answers it:
 * - the plugin's own (FST_S3CHUNK_CLOSING for a new upload, and uploads
 *   aborted at the end of the grace period), through any error handler: an
 *   onSend hook adds `Retry-After` and `Connection: close`;
 * - Fastify's (return503OnClosing, the default): it answers 503 to every
 *   request that arrives during a close — on a new connection or a kept-alive
 *   one — before any hook runs; a listener ahead of Fastify's adds
 *   `Retry-After` to the 503s of requests that arrive while closing.
 */
export function closingReplies (fastify: FastifyInstance, engine: Engine): void {
  const retryAfter = String(CLOSING_RETRY_AFTER_SECONDS)
  fastify.addHook('onSend', async (_request, reply) => {
    if (!engine.closing) return
    reply.header('connection', 'close')
    if (reply.statusCode === 503 && !reply.hasHeader('retry-after')) reply.header('retry-after', retryAfter)
  })

  const server = fastify.server as { prependListener?: (event: 'request', listener: (request: unknown, response: ServerResponse) => void) => unknown, off?: (event: 'request', listener: (request: unknown, response: ServerResponse) => void) => unknown }
  if (typeof server.prependListener !== 'function') return
  // Only requests that arrive during a close pay for it.
  const listener = (_request: unknown, response: ServerResponse): void => {
    if (!engine.closing) return
    const writeHead = response.writeHead
    response.writeHead = function (this: ServerResponse, statusCode: number, ...rest: unknown[]) {
      if (statusCode === 503 && !this.hasHeader('retry-after')) this.setHeader('retry-after', retryAfter)
      return (writeHead as (...args: unknown[]) => ServerResponse).call(this, statusCode, ...rest)
    } as ServerResponse['writeHead']
  }
  server.prependListener('request', listener)
  fastify.addHook('onClose', async () => { server.off?.('request', listener) })
}

/**
 * The direct routes' part in a close and in telemetry: a new direct upload
 * (a POST policy, a multipart create) is refused while the app closes; the
 * calls of uploads under way (part URLs, completes, aborts) go on during the
 * grace period, which waits for a complete in progress. Each complete is an
 * upload span (`kind` direct) with its S3 calls as children.
 */
export function directLifecycle (routes: FastifyInstance, engine: Engine, bucket: string): void {
  routes.addHook('onRequest', async (request) => {
    const url = request.routeOptions.url ?? ''
    const method = request.method
    if ((method === 'GET' && url.endsWith('/s3/params')) || (method === 'POST' && url.endsWith('/s3/multipart'))) engine.assertOpen()
  })
  routes.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method]
    if (!methods.includes('POST') || !(route.url.endsWith('/s3/complete') || route.url.endsWith('/s3/multipart/*'))) return
    const handler = route.handler as (...args: Parameters<RouteHandlerMethod>) => Promise<{ file?: S3File } | undefined>
    route.handler = async function (this: FastifyInstance, request, reply) {
      const upload = engine.telemetry.startUpload('direct', { bucket })
      try {
        const result = await engine.track(upload.run(async () => await handler.call(this, request, reply)))
        const file = result?.file
        upload.stored(file !== undefined ? { size: file.size, parts: file.parts, key: file.key } : { size: 0, parts: 0 })
        return result
      } catch (error) {
        upload.failed(error)
        throw error
      }
    }
  })
}
