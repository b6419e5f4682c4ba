// The boot-time hint for Node 24: said when the young generation is left at
// V8's default, never when the process was started with a semi-space size.
import t from 'tap'
import { Writable } from 'node:stream'
import Fastify from 'fastify'
import s3Chunk from '../../lib/index.ts'
import { youngGenerationHint } from '../../lib/runtime-hint.ts'

const s3 = { region: 'us-east-1', endpoint: 'http://127.0.0.1:9', forcePathStyle: true, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } }

t.test('only on Node 24 and later, and only without a semi-space size', async (t) => {
  for (const version of ['20.20.2', '22.23.5', 'v22.0.0']) t.equal(youngGenerationHint(version, [], undefined), null, version)
  for (const version of ['24.0.0', '24.22.3', 'v26.1.0']) t.match(youngGenerationHint(version, [], undefined), /--max-semi-space-size=2/, version)
  t.match(youngGenerationHint('24.22.3', ['--enable-source-maps'], '--max-old-space-size=4096'), /NODE_OPTIONS=--max-semi-space-size=2/, 'other flags are not it')
  for (const [execArgv, nodeOptions] of [
    [['--max-semi-space-size=2'], undefined],
    [['--max-semi-space-size', '4'], undefined],
    [['--max_semi_space_size=8'], undefined],
    [[], '--max-semi-space-size=2'],
    [[], '--enable-source-maps  --max-semi-space-size=16']
  ] as Array<[string[], string | undefined]>) {
    t.equal(youngGenerationHint('24.22.3', execArgv, nodeOptions), null, `${execArgv.join(' ')} | ${nodeOptions ?? ''}`)
  }
})

/** The hints an app logs while the plugin is registered (twice: the second registration shares the engine). */
async function hintsLogged (t: { teardown: (fn: () => unknown) => void }): Promise<Array<{ level: number, msg: string }>> {
  const lines: Array<{ level: number, msg: string }> = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(JSON.parse(String(chunk))); done() } })
  const app = Fastify({ logger: { level: 'info', stream } })
  t.teardown(async () => { await app.close() })
  await app.register(s3Chunk, { bucket: 'uploads', s3, mode: 'inline' })
  await app.register(async (child) => { await child.register(s3Chunk, { keyPrefix: 'other/' }) })
  await app.ready()
  return lines.filter((line) => line.msg.includes('max-semi-space-size'))
}

/** Runs `fn` as if this process were Node `version` started with NODE_OPTIONS `nodeOptions`. */
async function asIf (t: { teardown: (fn: () => unknown) => void }, version: string, nodeOptions: string | undefined, fn: () => Promise<void>): Promise<void> {
  const realVersion = Object.getOwnPropertyDescriptor(process.versions, 'node') as PropertyDescriptor
  const realOptions = process.env.NODE_OPTIONS
  const restore = (): void => {
    Object.defineProperty(process.versions, 'node', realVersion)
    if (realOptions === undefined) delete process.env.NODE_OPTIONS
    else process.env.NODE_OPTIONS = realOptions
  }
  t.teardown(restore)
  Object.defineProperty(process.versions, 'node', { ...realVersion, value: version })
  if (nodeOptions === undefined) delete process.env.NODE_OPTIONS
  else process.env.NODE_OPTIONS = nodeOptions
  try { await fn() } finally { restore() }
}

t.test('registering the plugin logs it once per app, at info, on Node 24 without the flag', async (t) => {
  const expected = youngGenerationHint('24.0.0', process.execArgv, '--enable-source-maps')
  t.not(expected, null, 'this test process was not started with a semi-space size (else the check below is empty)')
  await asIf(t, '24.0.0', '--enable-source-maps', async () => {
    const hints = await hintsLogged(t)
    t.equal(hints.length, 1, 'one hint for two registrations')
    t.equal(hints[0]?.level, 30, 'at info')
    t.equal(hints[0]?.msg, expected)
  })
  await asIf(t, '24.0.0', '--enable-source-maps --max-semi-space-size=2', async () => {
    t.equal((await hintsLogged(t)).length, 0, 'none with the flag in NODE_OPTIONS')
  })
  await asIf(t, '22.12.0', undefined, async () => {
    t.equal((await hintsLogged(t)).length, 0, 'none on Node 22')
  })
})
