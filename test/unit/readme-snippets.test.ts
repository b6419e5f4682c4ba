// Every ```ts block of README.md type-checks under strict TypeScript against
// the built package (resolved by its name, as an app would). A block whose
// info string says `ts fragment` continues the Quick start: it is checked with
// `app` (a Fastify instance) and `s3Chunk` already in scope; every other block
// must compile on its own. Errors are reported at the README's line numbers.
import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const root = fileURLToPath(new URL('../..', import.meta.url))
const run = promisify(execFile)

const fragmentPrelude = [
  "import Fastify from 'fastify'",
  "import s3Chunk from 'fastify-s3-chunk'",
  'const app = Fastify()',
  'void s3Chunk'
]

interface Snippet { line: number, fragment: boolean, code: string }

function snippets (markdown: string): Snippet[] {
  const found: Snippet[] = []
  const lines = markdown.split('\n')
  for (let index = 0; index < lines.length; index++) {
    const open = /^```ts(?:\s+(.*))?$/.exec(lines[index] ?? '')
    if (open === null) continue
    const start = index + 1
    let end = start
    while (end < lines.length && lines[end] !== '```') end++
    found.push({ line: start + 1, fragment: (open[1] ?? '').split(/\s+/).includes('fragment'), code: lines.slice(start, end).join('\n') })
    index = end
  }
  return found
}

t.test('the README\'s TypeScript snippets compile (strict)', async (t) => {
  const blocks = snippets(readFileSync(join(root, 'README.md'), 'utf8'))
  t.ok(blocks.length >= 3, `${blocks.length} blocks found`)
  // Inside the package, so `fastify-s3-chunk` (self-reference) and `fastify` resolve.
  const dir = join(root, '.tap', `readme-snippets-${process.pid}`)
  mkdirSync(dir, { recursive: true })
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const files = blocks.map((block) => {
    const prelude = block.fragment ? fragmentPrelude : []
    const name = `readme-${block.line}.ts`
    // `export {}` makes each block a module of its own (top-level await, no shared globals).
    writeFileSync(join(dir, name), [...prelude, block.code, 'export {}', ''].join('\n'))
    return { name, block, offset: prelude.length }
  })
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      target: 'ES2022',
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      lib: ['ES2024', 'DOM'],
      types: ['node'],
      strict: true,
      noEmit: true,
      skipLibCheck: true
    },
    files: files.map((file) => file.name)
  }))
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  const output = await run(process.execPath, [tsc, '-p', dir, '--pretty', 'false'], { cwd: dir })
    .then(() => '', (error: { stdout?: string }) => error.stdout ?? String(error))
  // "readme-301.ts(5,57): error TS…" → "README.md:305: error TS…"
  const errors = output.split('\n').filter((line) => line.trim() !== '').map((line) => {
    const match = /^(readme-\d+\.ts)\((\d+),\d+\): (.*)$/.exec(line)
    const file = match === null ? undefined : files.find((candidate) => candidate.name === match[1])
    if (match === null || file === undefined) return line
    return `README.md:${file.block.line + Number(match[2]) - 1 - file.offset}: ${match[3] ?? ''}`
  })
  t.same(errors, [], 'no type error in any ```ts block')
})
