// The README's Errors table is the public contract of codes and statuses: every error the
// package exports is in it with its code and status, and nothing else is (a new-user review
// found the two had drifted apart by one: helper-36).
import t from 'tap'
import { readFileSync } from 'node:fs'
import * as errors from '../../lib/errors.ts'

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
const rows = new Map([...readme.matchAll(/^\| `(\w+Error)` \| `(FST_S3CHUNK_\w+)` \| (\d{3}) \|/gm)].map((row) => [row[1] as string, { code: row[2], status: Number(row[3]) }]))

t.test('every exported error is in the README table with its code and status', async (t) => {
  const exported = Object.entries(errors).filter(([name]) => name.endsWith('Error'))
  t.ok(exported.length > 30, `${exported.length} errors exported`)
  for (const [name, Make] of exported) {
    const made = new (Make as new (...args: string[]) => { code: string, statusCode: number })('x', 'y')
    t.same(rows.get(name), { code: made.code, status: made.statusCode }, name)
  }
  t.same([...rows.keys()].filter((name) => !(name in errors)), [], 'and the table names no error the package lacks')
})
