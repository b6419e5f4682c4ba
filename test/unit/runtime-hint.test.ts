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

t.test('registering the plugin logs it once per app, at info, exactly when this process needs it', async (t) => {
  const expected = youngGenerationHint(process.versions.node, process.execArgv, process.env.NODE_OPTIONS)
  const hints = await hintsLogged(t)
  if (expected === null) {
    t.equal(hints.length, 0, `Node ${process.versions.node} here: no hint`)
    return
  }
  t.equal(hints.length, 1, `Node ${process.versions.node} here: one hint`)
  t.equal(hints[0]?.level, 30, 'at info')
  t.equal(hints[0]?.msg, expected)

  // The same process told it has the flag (NODE_OPTIONS is read at registration): no hint.
  const before = process.env.NODE_OPTIONS
  process.env.NODE_OPTIONS = `${before ?? ''} --max-semi-space-size=2`
  t.teardown(() => { if (before === undefined) delete process.env.NODE_OPTIONS; else process.env.NODE_OPTIONS = before })
  t.equal((await hintsLogged(t)).length, 0, 'not with the flag in NODE_OPTIONS')
})
