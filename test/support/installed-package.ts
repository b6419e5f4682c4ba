// The package as a consumer gets it: `npm pack` of the built package (only what
// package.json's `files` ships) extracted into <temp>/node_modules/fastify-s3-chunk,
// as `npm install` would, with its dependencies and fastify linked from this
// checkout's node_modules. Removed at teardown.
import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

export const root = fileURLToPath(new URL('../..', import.meta.url))
const run = promisify(execFile)

/** Environment for child processes: without tap's/tsx's loaders, so they run as plain node would. */
export function plainEnv (extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...extra }
  delete env.NODE_OPTIONS
  return env
}

export interface InstalledPackage {
  /** The consumer's directory (holds node_modules). */
  dir: string
  /** Paths inside the tarball, as `npm pack` listed them. */
  files: string[]
}

export async function installPackedPackage (t: { teardown: (fn: () => unknown) => void }): Promise<InstalledPackage> {
  const dir = mkdtempSync(join(tmpdir(), 's3chunk-consumer-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: root, env: plainEnv() })
  const [packed] = JSON.parse(stdout) as Array<{ filename: string, files: Array<{ path: string }> }>
  if (packed === undefined) throw new Error('npm pack listed nothing')
  const target = join(dir, 'node_modules', 'fastify-s3-chunk')
  mkdirSync(target, { recursive: true })
  await run('tar', ['-xzf', join(dir, packed.filename), '-C', target, '--strip-components=1'])

  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }
  const modules = realpathSync(join(root, 'node_modules'))
  for (const name of [...Object.keys(manifest.dependencies), 'fastify', '@types/node']) {
    const link = join(dir, 'node_modules', name)
    mkdirSync(dirname(link), { recursive: true })
    symlinkSync(join(modules, name), link, 'dir')
  }
  return { dir, files: packed.files.map((file) => file.path) }
}
