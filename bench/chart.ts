// A hand-made SVG bar chart of throughput per scenario and contender (median
// bar, min–max whisker), small enough to read as text and to embed in the README.
import { contenders } from './contenders.ts'
import type { Machine } from './machine.ts'
import type { Meta } from './report.ts'
import type { Scenario } from './scenarios.ts'
import type { Cell } from './summary.ts'

const COLORS: Record<string, string> = { a: '#2f6fb3', b: '#7fb2e5', c: '#e07b39', d: '#8a8f98', e: '#2a9d6f', f: '#b5533c', s: '#6b8e23' }
const WIDTH = 1000
const HEIGHT = 460
const MARGIN = { top: 84, right: 20, bottom: 110, left: 64 }

function escape (text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

/** A round axis maximum at or above `value`, and its gridline step. */
function axis (value: number): { max: number, step: number } {
  const raw = Math.max(value, 1) / 5
  const magnitude = 10 ** Math.floor(Math.log10(raw))
  const step = ([1, 2, 2.5, 5, 10].find((factor) => factor * magnitude >= raw) ?? 10) * magnitude
  return { max: Math.ceil(Math.max(value, 1) / step) * step, step }
}

export function throughputChart (cells: Cell[], scenarios: Scenario[], machine: Machine, meta: Meta): string {
  // Only the contenders that ran (one may be skipped, or run some scenarios only).
  const shown = contenders.filter((contender) => cells.some((cell) => cell.contender === contender.id))
  const ids = shown.map((contender) => contender.id)
  const top = Math.max(...cells.map((cell) => cell.mibPerSecond?.max ?? 0))
  const { max, step } = axis(top)
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom
  const y = (value: number): number => MARGIN.top + plotHeight - value / max * plotHeight
  const groupWidth = plotWidth / Math.max(1, scenarios.length)
  const inScenario = (scenario: Scenario): string[] => ids.filter((id) => cells.some((cell) => cell.scenario === scenario.id && cell.contender === id))
  const barWidth = Math.min(44, groupWidth * 0.8 / Math.max(1, ...scenarios.map((scenario) => inScenario(scenario).length)))
  const out: string[] = []

  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="12">`)
  out.push(`<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`)
  out.push(`<text x="${MARGIN.left}" y="26" font-size="16" font-weight="600">Upload throughput, MiB/s (higher is better)${meta.quick ? ' — QUICK MODE' : ''}</text>`)
  out.push(`<text x="${MARGIN.left}" y="46" fill="#555">${escape(`${meta.date} · ${machine.cores} cores (${machine.cpuModel}) · Node ${machine.node} · ${machine.s3}`)}</text>`)
  out.push(`<text x="${MARGIN.left}" y="62" fill="#555">${escape(`${meta.quick ? '1 run' : `median of ${meta.repetitions} runs, whisker min–max`} · ${meta.partSizeMiB} MiB parts, ${meta.partConcurrency} in flight per file`)}</text>`)

  for (let value = 0; value <= max + step / 2; value += step) {
    const at = y(value).toFixed(1)
    out.push(`<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${at}" y2="${at}" stroke="${value === 0 ? '#333' : '#e3e3e3'}"/>`)
    out.push(`<text x="${MARGIN.left - 8}" y="${at}" dy="4" text-anchor="end" fill="#555">${value}</text>`)
  }

  for (const [group, scenario] of scenarios.entries()) {
    const groupIds = inScenario(scenario)
    const left = MARGIN.left + group * groupWidth + (groupWidth - barWidth * groupIds.length) / 2
    for (const [slot, id] of groupIds.entries()) {
      const speed = cells.find((cell) => cell.scenario === scenario.id && cell.contender === id)?.mibPerSecond
      if (speed === undefined || speed === null) continue
      const x = left + slot * barWidth
      const middle = (x + barWidth / 2).toFixed(1)
      out.push(`<rect x="${(x + 2).toFixed(1)}" y="${y(speed.median).toFixed(1)}" width="${(barWidth - 4).toFixed(1)}" height="${(y(0) - y(speed.median)).toFixed(1)}" fill="${COLORS[id] ?? '#999'}"><title>${escape(`(${id}) ${scenario.title}: ${speed.median.toFixed(0)} MiB/s`)}</title></rect>`)
      if (speed.max > speed.min) out.push(`<line x1="${middle}" x2="${middle}" y1="${y(speed.max).toFixed(1)}" y2="${y(speed.min).toFixed(1)}" stroke="#222" stroke-width="1"/>`)
      out.push(`<text x="${middle}" y="${(y(speed.max) - 5).toFixed(1)}" text-anchor="middle" font-size="11">${speed.median.toFixed(0)}</text>`)
    }
    const center = (MARGIN.left + group * groupWidth + groupWidth / 2).toFixed(1)
    out.push(`<text x="${center}" y="${HEIGHT - MARGIN.bottom + 20}" text-anchor="middle" font-weight="600">${escape(scenario.title)}</text>`)
    out.push(`<text x="${center}" y="${HEIGHT - MARGIN.bottom + 36}" text-anchor="middle" fill="#555">${escape(scenario.purpose)}</text>`)
  }

  // Two rows of two: hand-made SVG has no text metrics to pack the labels on one line.
  const legendRows = Math.ceil(shown.length / 2)
  for (const [slot, contender] of shown.entries()) {
    const x = MARGIN.left + (slot % 2) * 380
    const legendY = HEIGHT - 18 - (legendRows - 1) * 20 + Math.floor(slot / 2) * 20
    out.push(`<rect x="${x}" y="${legendY - 10}" width="12" height="12" fill="${COLORS[contender.id] ?? '#999'}"/>`)
    out.push(`<text x="${x + 18}" y="${legendY}">${escape(`(${contender.id}) ${contender.label}`)}</text>`)
  }
  out.push('</svg>')
  return out.join('\n') + '\n'
}
