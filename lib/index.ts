import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import fastifyMultipart from '@fastify/multipart'
import { AlreadyRegisteredError, InvalidOptionError } from './errors.js'
import { engineFor, forgetEngine } from './engine.js'
import { checkRootConfig, layerRules, parseOptions, RULE_OPTIONS, type RouteRules, type S3ChunkConfig, type S3ChunkOptions } from './options.js'
import { bodyConsumed, createRequestApi, declaresMultipart, kScope, scopeOf, type Scope } from './request-api.js'
import { directRoutes } from './direct/routes.js'
import { tusRoutes } from './tus/routes.js'
import { abortStaleUploadsAt, ensureCors, ensureLifecycleRulesAt, type UploadLocation } from './maintenance.js'
import type { S3ChunkDecorator } from './types.js'
import { maxPartSize, scheduleCapacity } from './upload/part-schedule.js'
import { closingReplies, directLifecycle } from './lifecycle.js'
import { youngGenerationHint } from './runtime-hint.js'

type Scoped = FastifyInstance & { [kScope]?: Scope }

/** Each scope's route locations, and the routes checked already: every registration's hook sees every route. */
const scopeLocations = new WeakMap<Scope, UploadLocation[]>()
const checkedRoutes = new WeakSet<object>()

interface RouteSeen { method: unknown, url: string, config?: unknown }

/**
 * Checks a route's `config.s3Chunk` against its scope's rules (InvalidOptionError, naming the
 * route) and records where it stores when that is its own bucket or keyPrefix.
 */
function checkRoute (owner: Scope, route: RouteSeen): void {
  const given = (route.config as { s3Chunk: RouteRules }).s3Chunk
  const where = `route ${String(route.method)} ${route.url}`
  const setName = typeof given === 'string' ? given : given.rules
  if (setName !== undefined && !Object.hasOwn(owner.rules, setName)) throw new InvalidOptionError(`${where}: no rule set named "${setName}" (declare it in the plugin's \`rules\` option)`)
  if (typeof given === 'string') return
  const { rules: _name, ...overrides } = given
  const layered = layerRules(setName !== undefined ? owner.rules[setName] as S3ChunkConfig : owner.config, overrides, `${where} config.s3Chunk`)
  if (given.bucket === undefined && given.keyPrefix === undefined) return
  const locations = scopeLocations.get(owner)
  if (locations !== undefined && !locations.some((location) => location.bucket === layered.bucket && location.prefix === layered.keyPrefix)) {
    locations.push({ bucket: layered.bucket, prefix: layered.keyPrefix })
  }
}

/**
 * One registration of the plugin. The first in an app makes the engine (the
 * worker pool, the memory budget, the S3 clients: `engine.ts`); every other
 * registration — in a child scope, or a sibling — shares it and adds its own
 * rules: a child's rules are layered over its parent's.
 */
const s3Chunk: FastifyPluginAsync<S3ChunkOptions> = async function s3Chunk (fastify: FastifyInstance, options: S3ChunkOptions) {
  const instance = fastify as Scoped
  if (Object.prototype.hasOwnProperty.call(instance, kScope)) throw new AlreadyRegisteredError()
  const parsed = parseOptions(options)
  const outer = instance[kScope]
  // Checked before the engine exists: a refused registration must not leave a worker pool behind.
  if (outer === undefined) checkRootConfig(parsed.config)
  if (outer === undefined) checkGracePeriod(fastify, parsed.config.closeGracePeriod)
  const { engine, created } = engineFor(fastify, parsed.config, parsed.given)
  if (created) {
    const hint = youngGenerationHint(process.versions.node, process.execArgv, process.env.NODE_OPTIONS)
    if (hint !== null) fastify.log.info(hint)
    // On close new uploads are refused (503, Retry-After); those in flight may
    // finish for closeGracePeriod, then the rest are aborted (never committed
    // half-done), so close() does not wait on clients that may take hours.
    fastify.addHook('preClose', async () => {
      await engine.drain()
    })
    closingReplies(fastify, engine)
    fastify.addHook('onClose', async () => {
      await engine.close()
      forgetEngine(fastify)
    })
  }

  // This registration's rules: the defaults (first registration), or the outer registration's with what this one gives.
  let config: S3ChunkConfig
  if (outer === undefined) {
    config = { ...parsed.config, ...engine.config, bucket: parsed.config.bucket as string }
  } else {
    const given = Object.fromEntries(RULE_OPTIONS.filter((name) => parsed.given.has(name)).map((name) => [name, options[name]]))
    config = layerRules(outer.config, given, 'registration')
  }
  if (parsed.config.direct !== undefined || outer === undefined) config = { ...config, direct: parsed.config.direct }
  const rules: Record<string, S3ChunkConfig> = { ...outer?.rules }
  for (const [name, set] of Object.entries(parsed.rules)) rules[name] = layerRules(config, set, `rules.${name}`)
  const scope: Scope = { engine, config: Object.freeze(config), rules: Object.freeze(rules) }
  instance[kScope] = scope

  warnOfCapacity(fastify, options, config)

  // @fastify/multipart parses the body; reuse it when the app registered it already.
  if (!fastify.hasRequestDecorator('parts')) await fastify.register(fastifyMultipart)

  // Each route's `config.s3Chunk` is checked at boot (onReady, once every registration has run):
  // a mistake (an option, a rule set's name) fails ready()/listen(), naming the route — it was a
  // 500 at each of the route's uploads, its message sent to the client (found in a new user's
  // review). Not as the route is added: a route declared before its own scope's registration ran
  // (a child's, not awaited) runs by that scope's rules, which did not exist yet (review). A
  // route's own bucket or keyPrefix is recorded as it is added too, so that a sweep at start-up,
  // before ready(), covers it (review). (A route declared before any registration is not seen:
  // its first upload says what is wrong, 500.)
  const routeLocations: UploadLocation[] = []
  scopeLocations.set(scope, routeLocations)
  const pending: Array<{ instance: Scoped, route: RouteSeen }> = []
  fastify.addHook('onRoute', function (this: FastifyInstance, route) {
    if ((route.config as { s3Chunk?: RouteRules } | undefined)?.s3Chunk === undefined) return
    pending.push({ instance: this as Scoped, route })
    if ((this as Scoped)[kScope] === scope) {
      try {
        checkRoute(scope, route)
      } catch {
        // Said at onReady.
      }
    }
  })
  fastify.addHook('onReady', async function () {
    for (const { instance, route } of pending.splice(0)) {
      if (checkedRoutes.has(route)) continue
      checkedRoutes.add(route)
      const owner = instance[kScope]
      if (owner !== undefined) checkRoute(owner, route)
    }
  })
  const decorator = scopeDecorator(scope, routeLocations)
  // An outer registration decorated the app already: this scope gets its own view.
  if (fastify.hasDecorator('s3Chunk')) Object.defineProperty(fastify, 's3Chunk', { value: decorator, enumerable: true, configurable: true })
  else fastify.decorate('s3Chunk', decorator)

  const direct = config.direct
  if (direct !== undefined && (outer === undefined || parsed.given.has('direct'))) {
    const directConfig = direct.rules === undefined ? config : Object.hasOwn(rules, direct.rules) ? rules[direct.rules] : undefined
    if (directConfig === undefined) throw new InvalidOptionError(`"direct.rules": no rule set named "${direct.rules ?? ''}"`)
    // Wrapped: refused while closing (new uploads only), traced (completes).
    await fastify.register(async (routes) => {
      directLifecycle(routes, engine, directConfig.bucket)
      await routes.register(directRoutes, {
        prefix: direct.prefix,
        config: directConfig,
        direct,
        client: engine.client,
        onStored: async (file, request) => { await directConfig.onUploadComplete?.(file, request) }
      })
    })
  }

  const tus = parsed.config.tus
  if (tus !== undefined) {
    const tusConfig = tus.rules === undefined ? config : Object.hasOwn(rules, tus.rules) ? rules[tus.rules] : undefined
    if (tusConfig === undefined) throw new InvalidOptionError(`"tus.rules": no rule set named "${tus.rules ?? ''}"`)
    // Its own encapsulated scope: the tus routes stream their bodies, and no other route's body parsing changes.
    await fastify.register(tusRoutes, {
      prefix: tus.prefix,
      config: tusConfig,
      tus,
      engine,
      onStored: async (file, request) => { await tusConfig.onUploadComplete?.(file, request) }
    })
  }

  // Request methods and hooks once per scope tree: an inner registration's routes inherit them.
  if (!fastify.hasRequestDecorator('s3File')) {
    const api = createRequestApi()
    fastify.decorateRequest('s3File', api.s3File)
    fastify.decorateRequest('s3Files', api.s3Files)
    fastify.decorateRequest('s3Fields', api.s3Fields)

    // An upload that failed mid-body leaves the rest of it unread: close the connection after
    // the reply (a lingering close: the client still writing reads the answer, not a reset).
    // So does a multipart body nobody began to read — a route refused before its handler (a
    // preHandler's or an onRequest hook's 401): @fastify/multipart's parser reads nothing, and
    // Node read the rest for ever to keep the connection, a chunked body that never ends
    // included (an attack run). Told by its header: in onRequest no parser has run yet (review).
    fastify.addHook('onSend', async (request, reply) => {
      if (!request.raw.complete && (bodyConsumed(request) || declaresMultipart(request))) scopeOf(request).engine.lingering.closeAfterAnswer(request.raw, reply)
    })

    // A reply sent while the body is still arriving (the handler threw, or an
    // upload failed) leaves the request paused mid-body; Node then never ends
    // or closes it, and the upload would wait for bytes forever. Destroying it
    // fails the upload, which is then aborted.
    fastify.addHook('onResponse', async (request) => {
      if (bodyConsumed(request) && !request.raw.complete && !request.raw.destroyed) scopeOf(request).engine.lingering.destroyRequest(request.raw)
    })
  }
}

/**
 * `fastify.s3Chunk` for one registration scope: the shared engine, this scope's bucket; its
 * maintenance covers every place the scope stores to — its own bucket and prefix, each rule
 * set's (the tus and direct routes' among them) and each route's own.
 */
function scopeDecorator (scope: Scope, routeLocations: UploadLocation[]): S3ChunkDecorator {
  const { engine, config } = scope
  const client = engine.client
  const locations = (): UploadLocation[] => [
    { bucket: config.bucket, prefix: config.keyPrefix },
    ...Object.values(scope.rules).map((set) => ({ bucket: set.bucket, prefix: set.keyPrefix })),
    ...routeLocations
  ]
  engine.registrations.push(locations)
  return {
    client,
    bucket: config.bucket,
    stats: () => engine.stats(),
    abortStaleUploads: async ({ olderThan = 24 * 3600 * 1000 } = {}) => await abortStaleUploadsAt(client, locations(), olderThan, { spareFrom: engine.registrations.flatMap((of) => of()) }),
    ensureLifecycleRule: async ({ days = 1 } = {}) => await ensureLifecycleRulesAt(client, locations(), days),
    ensureCors: async ({ origins }) => await ensureCors(client, config.bucket, origins)
  }
}

/**
 * Fastify runs preClose hooks under its `pluginTimeout` (default 10 s), and
 * the grace is spent in one: a grace the timeout would cut fails `close()`
 * with "Plugin did not start in time" — said at boot instead. A second is
 * left for the app's own preClose hooks.
 */
function checkGracePeriod (fastify: FastifyInstance, grace: number): void {
  const timeout = (fastify.initialConfig as { pluginTimeout?: number }).pluginTimeout ?? 10_000
  if (grace > 0 && timeout !== 0 && timeout < grace + 1000) {
    throw new InvalidOptionError(`"closeGracePeriod": ${grace} ms does not fit in Fastify's pluginTimeout (${timeout} ms), which bounds the preClose hook the grace runs in: give Fastify a pluginTimeout of at least closeGracePeriod + 1000 ms (or 0)`)
  }
}

/** Only when the app asked for more: the default maxFileSize is S3's own ceiling. */
function warnOfCapacity (fastify: FastifyInstance, options: S3ChunkOptions, config: S3ChunkConfig): void {
  const capacity = scheduleCapacity({ ...config, maxPartSize: maxPartSize(config) })
  if (options.maxFileSize !== undefined && capacity < config.maxFileSize) {
    fastify.log.warn(`fastify-s3-chunk: ${config.maxParts} parts of at most ${maxPartSize(config)} bytes (a quarter of maxBufferedBytes) hold at most ${capacity} bytes; larger files fail with FST_S3CHUNK_PART_LIMIT (raise maxBufferedBytes or lower maxFileSize)`)
  }
}

export default fp(s3Chunk, { fastify: '5.x', name: 'fastify-s3-chunk' })
export { s3Chunk }

export * from './errors.js'
export type {
  AuthorizeFunction,
  ChecksumSetting,
  PayloadSigning,
  CredentialProvider,
  DirectKeyContext,
  DirectKeyFunction,
  DirectUser,
  FileContext,
  FileOverrides,
  KeyContext,
  KeyFunction,
  ObjectParams,
  ObjectParamsFunction,
  OnFileHook,
  ProgressHook,
  RouteRules,
  RuleOptions,
  S3ChunkConfig,
  S3ChunkOptions,
  UploadCompleteHook,
  UploadOptions,
  UploadProgress
} from './options.js'
export { MIN_PART_SIZE, MAX_PART_SIZE, MAX_OBJECT_SIZE } from './options.js'
export type { S3File, S3Fields, S3ChunkStats, S3ChunkDecorator } from './types.js'
export { sanitiseFilename } from './keys.js'
export { attachment } from './object-params.js'
export type { DirectConfig, EngineConfig, RetryPolicy, S3Settings, TusConfig } from './options.js'
export type { S3FailureInfo, StorageFailure } from './upload/s3-failure.js'
export type { BucketCallFailure, StaleObject, StaleUpload } from './maintenance.js'
