// The results as text: a table for the console and the same in markdown.
// Columns are a list (COLUMNS): a new figure is one entry there.
import { contenders, RATIOS, seedDescription } from './contenders.ts'
import type { Machine } from './machine.ts'
import type { Scenario } from './scenarios.ts'
import type { Cell, Ratio } from './summary.ts'

export interface Meta {
  date: string
  quick: boolean
  repetitions: number
  partSizeMiB: number
  partConcurrency: number
  durationSeconds: number
  /** Contenders left out on this machine, and why (printed with the results). */
  skipped?: Array<{ id: string, reason: string }>
}

function fixed (value: number | null, digits = 0): string {
  return value === null ? '—' : value.toFixed(digits)
}

/** Exactly 0 stays "0" (nothing written); a few KiB show as such rather than rounding to 0. */
function diskMiB (value: number | null): string {
  if (value === null || value === 0) return fixed(value)
  return value < 1 ? value.toFixed(2) : value < 10 ? value.toFixed(1) : value.toFixed(0)
}

function ratio (value: number | null): string {
  return value === null ? '—' : `${value.toFixed(2)}×`
}

function label (id: string): string {
  return `(${id}) ${contenders.find((contender) => contender.id === id)?.label ?? id}`
}

function title (id: string, scenarios: Scenario[]): string {
  return scenarios.find((scenario) => scenario.id === id)?.title ?? id
}

interface Column { header: string, value: (cell: Cell) => string }

const COLUMNS: Column[] = [
  {
    header: 'MiB/s (min–max)',
    value: (cell) => cell.mibPerSecond === null ? 'failed' : `${fixed(cell.mibPerSecond.median)} (${fixed(cell.mibPerSecond.min)}–${fixed(cell.mibPerSecond.max)})`
  },
  { header: 'peak RSS MiB', value: (cell) => fixed(cell.peakRssMiB) },
  { header: 'CPU s/GiB, all threads', value: (cell) => fixed(cell.cpuSecondsPerGiB, 2) },
  { header: 'main thread s/GiB', value: (cell) => fixed(cell.mainThreadCpuSecondsPerGiB, 2) },
  { header: 'disk written MiB', value: (cell) => diskMiB(cell.diskWriteMiB) },
  { header: 'event loop p99 / max ms', value: (cell) => cell.eventLoopP99Ms === null ? '—' : `${fixed(cell.eventLoopP99Ms, 1)} / ${fixed(cell.eventLoopMaxMs, 1)}` },
  { header: 'main thread waiting for a CPU', value: (cell) => cell.mainThreadWaitPercent === null ? '—' : `${fixed(cell.mainThreadWaitPercent)} %` },
  { header: 'health p99 ms', value: (cell) => fixed(cell.healthP99Ms, 1) },
  { header: 'major GCs per GiB', value: (cell) => fixed(cell.majorGcPerGiB, 1) },
  { header: 'runs', value: (cell) => cell.failed > 0 ? `${cell.runs} (${cell.failed} failed)` : String(cell.runs) }
]

const HEADERS = ['scenario', 'contender', ...COLUMNS.map((column) => column.header)]

function rows (cells: Cell[], scenarios: Scenario[]): string[][] {
  return cells.filter((cell) => !isTus(cell.scenario, scenarios)).map((cell) => [title(cell.scenario, scenarios), label(cell.contender), ...COLUMNS.map((column) => column.value(cell))])
}

/** The ratios that have a figure in this run (a contender left out leaves its column out). */
function ratioKeys (list: Ratio[]): string[] {
  // e/f has the tus table's own column.
  return RATIOS.map(([x, y]) => `${x}/${y}`).filter((key) => key !== 'e/f' && list.some((entry) => entry.values[key] !== null && entry.values[key] !== undefined))
}

function ratioRows (list: Ratio[], scenarios: Scenario[]): string[][] {
  const keys = ratioKeys(list)
  return list.filter((entry) => !isTus(entry.scenario, scenarios)).map((entry) => [title(entry.scenario, scenarios), ...keys.map((key) => ratio(entry.values[key] ?? null))])
}

/**
 * The main thread's CPU per GiB bounds one process: it cannot pass 1 / x GiB/s
 * however many cores the host has. A projection, not a measurement.
 */
function ceilingRows (cells: Cell[], scenarios: Scenario[]): string[][] {
  const main = (scenario: string, id: string): number | null => cells.find((cell) => cell.scenario === scenario && cell.contender === id)?.mainThreadCpuSecondsPerGiB ?? null
  const out: string[][] = []
  for (const scenario of scenarios) {
    const figures = ['a', 'b', 'c', 'r'].map((id) => main(scenario.id, id))
    if (figures.every((value) => value === null)) continue
    out.push([scenario.title, ...figures.map((value) => value === null || value <= 0 ? '—' : `${value.toFixed(2)} s → ${(1 / value).toFixed(1)} GiB/s`)])
  }
  return out
}

const CEILING_HEADERS = ['scenario', '(a) workers: main thread → ceiling', '(b) inline', '(c) lib-storage', '(r) receive floor']

// The tus scenarios have a table of their own: other contenders, a disk column, their own ratio.
function isTus (scenarioId: string, scenarios: Scenario[]): boolean {
  return scenarios.find((scenario) => scenario.id === scenarioId)?.protocol === 'tus'
}

const TUS_HEADERS = ['scenario', 'contender', 'MiB/s (min–max)', 'CPU s/GiB', 'peak RSS MiB', 'disk written MiB', 'event loop p99 / max ms', 'major GCs per GiB', 'e/f', 'runs']

function tusRows (cells: Cell[], list: Ratio[], scenarios: Scenario[]): string[][] {
  return cells.filter((cell) => isTus(cell.scenario, scenarios)).map((cell) => {
    const speed = cell.mibPerSecond
    const left = cell.tempFilesLeft === null || cell.tempFilesLeft === 0 ? '' : ` (${cell.tempFilesLeft} temp files left)`
    return [
      scenarios.find((scenario) => scenario.id === cell.scenario)?.title ?? cell.scenario,
      label(cell.contender),
      speed === null ? 'failed' : `${fixed(speed.median)} (${fixed(speed.min)}–${fixed(speed.max)})`,
      fixed(cell.cpuSecondsPerGiB, 2),
      fixed(cell.peakRssMiB),
      `${fixed(cell.diskWriteMiB)}${left}`,
      cell.eventLoopP99Ms === null ? '—' : `${fixed(cell.eventLoopP99Ms, 1)} / ${fixed(cell.eventLoopMaxMs, 1)}`,
      fixed(cell.majorGcPerGiB, 1),
      cell.contender === 'e' ? ratio(list.find((entry) => entry.scenario === cell.scenario)?.values['e/f'] ?? null) : '',
      cell.failed > 0 ? `${cell.runs} (${cell.failed} failed)` : String(cell.runs)
    ]
  })
}

const TUS_NOTE = 'tus: tus-js-client sends each file as one upload (creation, then the whole file in one PATCH). ' +
  'Disk written is the server process\'s write_bytes from /proc/<pid>/io during the run (@tus/s3-store writes every part to a temporary file before sending it). ' +
  'e/f: throughput of (e) over (f).'

function machineLine (machine: Machine): string {
  return `${machine.cores} cores (${machine.cpuModel}), ${machine.memoryGiB} GiB, ${machine.os}; Node ${machine.node}; ${machine.s3}; fastify-s3-chunk at ${machine.revision}`
}

function settingsLine (meta: Meta): string {
  return `${meta.quick ? 'QUICK MODE (small sizes, 1 repetition: a smoke test, not figures to quote)' : (meta.repetitions === 1 ? '1 repetition (no medians: one run each)' : `medians of ${meta.repetitions} repetitions`)}, ` +
    `runs interleaved (${contenders.map((contender) => contender.id).join(' ')} …), parts of ${meta.partSizeMiB} MiB, ${meta.partConcurrency} parts in flight per file, a fresh server process per run`
}

function skippedLines (meta: Meta): string[] {
  return (meta.skipped ?? []).map((entry) => `skipped ${label(entry.id)}: ${entry.reason}`)
}

function textTable (headers: string[], body: string[][]): string {
  const widths = headers.map((header, column) => Math.max(header.length, ...body.map((row) => (row[column] ?? '').length)))
  const line = (row: string[]): string => row.map((value, column) => value.padEnd(widths[column] ?? 0)).join('  ').trimEnd()
  return [line(headers), widths.map((width) => '-'.repeat(width)).join('  '), ...body.map(line)].join('\n')
}

function markdownTable (headers: string[], body: string[][]): string {
  const line = (row: string[]): string => `| ${row.join(' | ')} |`
  return [line(headers), line(headers.map(() => '---')), ...body.map(line)].join('\n')
}

const NOTES = [
  'Peak RSS, CPU, disk and event loop are the server\'s, from /proc: its whole process tree (the seed: gunicorn\'s master and workers, RSS summed from samples every 200 ms, ' +
  'which counts pages the processes share once per process; one Node process: its VmHWM), CPU counted during the measured uploads only, exited threads and reaped processes included. ' +
  '"Main thread" is the server process\'s first thread — a Node server\'s event loop; "—" for the seed, which has one per gunicorn worker. ' +
  'Disk written is write_bytes of /proc/<pid>/io (bytes sent, or to be sent, to storage) over the tree during the run. ' +
  'Event-loop delay is what lies beyond monitorEventLoopDelay\'s 10 ms sampling interval (Node records the whole interval: an idle loop reads ~10.1 ms, here ~0.1), ' +
  'over the server\'s life after it started listening (the warm-up of two small uploads included); health p99 is a GET /health sent every 50 ms during the run. ' +
  'Major GCs per GiB: the Node servers\' main-thread mark-compacts (perf_hooks \'gc\' entries, delivered a moment late: ±1 or so per read) during the measured uploads, per GiB uploaded. ' +
  '(d) has no server: only its throughput applies. (r) sends nothing to S3 (its throughput is the load client\'s against a server that only reads): it is there for its main-thread CPU, the floor under (a)\'s. HTTPS scenarios talk to a second MinIO over TLS with a certificate the bench makes (openssl) and every contender trusts.',
  `(s) is ${seedDescription()}, with the uploader's defaults (parts of just over 5 MiB, its 10-thread pool per file, boto3's default checksums and payload signing).`,
  'Ceiling: one process cannot upload faster than 1 / (its main thread\'s CPU s/GiB) GiB/s, however many cores it has — a projection from this machine\'s per-GiB figure, not a measurement.'
]

export function consoleReport (cells: Cell[], list: Ratio[], scenarios: Scenario[], machine: Machine, meta: Meta): string {
  const ceilings = ceilingRows(cells, scenarios)
  return [
    `fastify-s3-chunk bench — ${meta.date}${meta.quick ? ' — QUICK MODE' : ''}`,
    machineLine(machine),
    settingsLine(meta),
    ...skippedLines(meta),
    '',
    textTable(HEADERS, rows(cells, scenarios)),
    '',
    ...(ratioKeys(list).length === 0 ? [] : [textTable(['scenario', ...ratioKeys(list)], ratioRows(list, scenarios))]),
    ...(ceilings.length === 0 ? [] : ['', 'Main-thread CPU per GiB and the per-process ceiling it implies (a projection):', textTable(CEILING_HEADERS, ceilings)]),
    ...tusSection(cells, list, scenarios, (body) => textTable(TUS_HEADERS, body)),
    '',
    `took ${(meta.durationSeconds / 60).toFixed(1)} min; 1-min load average at start ${machine.loadAverageAtStart.toFixed(2)}`
  ].join('\n')
}

export function markdownReport (cells: Cell[], list: Ratio[], scenarios: Scenario[], machine: Machine, meta: Meta): string {
  const ceilings = ceilingRows(cells, scenarios)
  return [
    `**${meta.date}** — ${machineLine(machine)}.`,
    `${settingsLine(meta)[0]?.toUpperCase() ?? ''}${settingsLine(meta).slice(1)}; took ${(meta.durationSeconds / 60).toFixed(1)} min (1-min load average at start ${machine.loadAverageAtStart.toFixed(2)}).`,
    ...skippedLines(meta).map((line) => `${line[0]?.toUpperCase() ?? ''}${line.slice(1)}.`),
    '',
    markdownTable(HEADERS, rows(cells, scenarios)),
    '',
    ...(ratioKeys(list).length === 0 ? [] : ['Throughput ratios (medians):', '', markdownTable(['scenario', ...ratioKeys(list)], ratioRows(list, scenarios))]),
    ...(ceilings.length === 0 ? [] : ['', 'Main-thread CPU per GiB and the per-process ceiling it implies (a projection, see below):', '', markdownTable(CEILING_HEADERS, ceilings)]),
    ...tusSection(cells, list, scenarios, (body) => markdownTable(TUS_HEADERS, body)),
    '',
    ...NOTES.flatMap((note) => [note, ''])
  ].join('\n')
}

/** The tus table and its note, or nothing when no tus scenario ran. */
function tusSection (cells: Cell[], list: Ratio[], scenarios: Scenario[], table: (body: string[][]) => string): string[] {
  const body = tusRows(cells, list, scenarios)
  return body.length === 0 ? [] : ['', 'Resumable uploads (tus):', '', table(body), '', TUS_NOTE]
}
