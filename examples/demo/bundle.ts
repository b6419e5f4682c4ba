// The page's script and styles, bundled in memory when the demo starts: a
// user runs `npm start`, never a build step of their own.
import { build } from 'esbuild'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)

export interface PageAssets { html: string, script: string, css: string }

export async function bundlePage (): Promise<PageAssets> {
  const result = await build({
    entryPoints: [fileURLToPath(new URL('./page/app.ts', import.meta.url))],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'es2020',
    minify: true,
    legalComments: 'none',
    logLevel: 'silent'
  })
  const styles = await Promise.all([
    readFile(require.resolve('@uppy/core/css/style.min.css'), 'utf8'),
    readFile(require.resolve('@uppy/dashboard/css/style.min.css'), 'utf8'),
    readFile(fileURLToPath(new URL('./page/style.css', import.meta.url)), 'utf8')
  ])
  return {
    html: await readFile(fileURLToPath(new URL('./page/index.html', import.meta.url)), 'utf8'),
    script: result.outputFiles[0]?.text ?? '',
    css: styles.join('\n')
  }
}
