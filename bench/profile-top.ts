// Prints where a server spent its CPU: the functions with the most self time in
// each .cpuprofile under a directory (one per thread: main and workers), as
// written by `npm run bench -- --cpu-prof`. Usage: npx tsx bench/profile-top.ts DIR [N]
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'

interface ProfileNode {
  id: number
  callFrame: { functionName: string, url: string, lineNumber: number }
  hitCount?: number
}

interface Profile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples?: number[]
  timeDeltas?: number[]
}

const MAX_FILES = 500

function profiles (dir: string): string[] {
  const found: string[] = []
  const walk = (at: string, depth: number): void => {
    if (depth > 6) return
    for (const name of readdirSync(at)) {
      if (found.length >= MAX_FILES) return
      const path = join(at, name)
      if (statSync(path).isDirectory()) walk(path, depth + 1)
      else if (name.endsWith('.cpuprofile')) found.push(path)
    }
  }
  walk(dir, 0)
  return found.sort()
}

function frameName (node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame
  const file = url === '' ? '' : ` ${url.replace(/^file:\/\//, '').replace(/^.*\/node_modules\//, '~/').replace(/^.*\/(dist|test|bench)\//, '$1/')}:${lineNumber + 1}`
  return `${functionName === '' ? '(anonymous)' : functionName}${file}`
}

function top (path: string, count: number): string {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as Profile
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const selfMicros = new Map<string, number>()
  const samples = profile.samples ?? []
  const deltas = profile.timeDeltas ?? []
  // Each sample's time is the delta that follows it.
  for (let index = 0; index < samples.length; index++) {
    const node = byId.get(samples[index] as number)
    if (node === undefined) continue
    const name = frameName(node)
    selfMicros.set(name, (selfMicros.get(name) ?? 0) + (deltas[index + 1] ?? 0))
  }
  const total = [...selfMicros.values()].reduce((sum, value) => sum + value, 0)
  const busy = [...selfMicros.entries()].filter(([name]) => !name.startsWith('(idle)')).reduce((sum, [, value]) => sum + value, 0)
  const lines = [...selfMicros.entries()].sort((x, y) => y[1] - x[1]).slice(0, count)
    .map(([name, micros]) => `  ${(micros / 1000).toFixed(0).padStart(7)} ms  ${(micros / Math.max(1, busy) * 100).toFixed(1).padStart(5)} %  ${name}`)
  return [`${path}: ${(total / 1e6).toFixed(1)} s profiled, ${(busy / 1e6).toFixed(1)} s not idle (% below: of not idle)`, ...lines].join('\n')
}

const dir = process.argv[2]
if (dir === undefined) {
  console.error('usage: npx tsx bench/profile-top.ts DIR [N]')
  process.exit(2)
}
const count = Number(process.argv[3] ?? 25)
const files = profiles(dir)
if (files.length === 0) console.error(`no .cpuprofile under ${dir}`)
for (const file of files) console.log(`${top(file, count)}\n`.replace(dir, relative(process.cwd(), dir) || '.'))
