// The results as text: a table for the console and the same in markdown.
import { contenders } from './contenders.ts'
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
}

const HEADERS = ['scenario', 'contender', 'MiB/s (min–max)', 'peak RSS MiB', 'CPU s/GiB', 'event loop p99 / max ms', 'health p99 ms', 'runs']

function fixed (value: number | null, digits = 0): string {
  return value === null ? '—' : value.toFixed(digits)
}

function ratio (value: number | null): string {
  return value === null ? '—' : `${value.toFixed(2)}×`
}

function label (id: string): string {
  return `(${id}) ${contenders.find((contender) => contender.id === id)?.label ?? id}`
}

function rows (cells: Cell[], scenarios: Scenario[]): string[][] {
  return cells.filter((cell) => !isTus(cell.scenario, scenarios)).map((cell) => {
    const speed = cell.mibPerSecond
    return [
      scenarios.find((scenario) => scenario.id === cell.scenario)?.title ?? cell.scenario,
      label(cell.contender),
      speed === null ? 'failed' : `${fixed(speed.median)} (${fixed(speed.min)}–${fixed(speed.max)})`,
      fixed(cell.peakRssMiB),
      fixed(cell.cpuSecondsPerGiB, 2),
      cell.eventLoopP99Ms === null ? '—' : `${fixed(cell.eventLoopP99Ms, 1)} / ${fixed(cell.eventLoopMaxMs, 1)}`,
      fixed(cell.healthP99Ms, 1),
      cell.failed > 0 ? `${cell.runs} (${cell.failed} failed)` : String(cell.runs)
    ]
  })
}

function ratioRows (list: Ratio[], scenarios: Scenario[]): string[][] {
  return list.filter((entry) => !isTus(entry.scenario, scenarios))
    .map((entry) => [scenarios.find((scenario) => scenario.id === entry.scenario)?.title ?? entry.scenario, ratio(entry.aOverC), ratio(entry.aOverD), ratio(entry.bOverC)])
}

// The tus scenarios have a table of their own: other contenders, a disk column, their own ratio.
function isTus (scenarioId: string, scenarios: Scenario[]): boolean {
  return scenarios.find((scenario) => scenario.id === scenarioId)?.protocol === 'tus'
}

const TUS_HEADERS = ['scenario', 'contender', 'MiB/s (min–max)', 'CPU s/GiB', 'peak RSS MiB', 'disk written MiB', 'event loop p99 / max ms', 'e/f', 'runs']

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
      cell.contender === 'e' ? ratio(list.find((entry) => entry.scenario === cell.scenario)?.eOverF ?? null) : '',
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
  return `${meta.quick ? 'QUICK MODE (small sizes, 1 repetition: a smoke test, not figures to quote)' : `medians of ${meta.repetitions} repetitions`}, ` +
    `runs interleaved (a b c d a b c d …), parts of ${meta.partSizeMiB} MiB, ${meta.partConcurrency} parts in flight per file, a fresh server process per run`
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

export function consoleReport (cells: Cell[], list: Ratio[], scenarios: Scenario[], machine: Machine, meta: Meta): string {
  return [
    `fastify-s3-chunk bench — ${meta.date}${meta.quick ? ' — QUICK MODE' : ''}`,
    machineLine(machine),
    settingsLine(meta),
    ...mainSection(cells, list, scenarios, textTable),
    ...tusSection(cells, list, scenarios, (body) => textTable(TUS_HEADERS, body)),
    '',
    `took ${(meta.durationSeconds / 60).toFixed(1)} min; 1-min load average at start ${machine.loadAverageAtStart.toFixed(2)}`
  ].join('\n')
}

export function markdownReport (cells: Cell[], list: Ratio[], scenarios: Scenario[], machine: Machine, meta: Meta): string {
  return [
    `**${meta.date}** — ${machineLine(machine)}.`,
    `${settingsLine(meta)[0]?.toUpperCase() ?? ''}${settingsLine(meta).slice(1)}; took ${(meta.durationSeconds / 60).toFixed(1)} min (1-min load average at start ${machine.loadAverageAtStart.toFixed(2)}).`,
    ...mainSection(cells, list, scenarios, markdownTable, 'Throughput ratios (medians):'),
    ...tusSection(cells, list, scenarios, (body) => markdownTable(TUS_HEADERS, body)),
    '',
    'Peak RSS, CPU and event loop are the server process\'s (all threads; CPU from /proc, counted during the run only); ' +
    'event-loop delay is what lies beyond monitorEventLoopDelay\'s 10 ms sampling interval (Node records the whole interval: an idle loop reads ~10.1 ms, here ~0.1), ' +
    'over the server\'s life after it started listening (the warm-up of two small uploads included); ' +
    'health p99 is a GET /health sent every 50 ms during the run. (d) has no server: only its throughput applies.',
    ''
  ].join('\n')
}

/** The tus table and its note, or nothing when no tus scenario ran. */
function tusSection (cells: Cell[], list: Ratio[], scenarios: Scenario[], table: (body: string[][]) => string): string[] {
  const body = tusRows(cells, list, scenarios)
  return body.length === 0 ? [] : ['', 'Resumable uploads (tus):', '', table(body), '', TUS_NOTE]
}

/** The multipart scenarios' table and ratios, or nothing when only tus scenarios ran. */
function mainSection (cells: Cell[], list: Ratio[], scenarios: Scenario[], table: (headers: string[], body: string[][]) => string, ratioTitle?: string): string[] {
  const body = rows(cells, scenarios)
  if (body.length === 0) return []
  return ['', table(HEADERS, body), '', ...(ratioTitle === undefined ? [] : [ratioTitle, '']), table(['scenario', 'a/c', 'a/d', 'b/c'], ratioRows(list, scenarios))]
}
