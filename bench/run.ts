// `npm run bench [-- --quick]`: starts S3 (MinIO, or S3_ENDPOINT) and, for the
// HTTPS scenarios, a MinIO over TLS (or S3_TLS_ENDPOINT); runs every scenario
// against every contender, interleaved (a b c d s a b c d s …), prints
// the table and writes latest.json / latest.md / latest.svg. Exits non-zero
// when any upload failed; stops everything it started at the end and on Ctrl-C.
import { S3Client } from '@aws-sdk/client-s3'
import { readFileSync } from 'node:fs'
import { Agent } from 'node:https'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { startS3, startTlsS3, type S3Server } from '../test/support/s3-server.ts'
import { createBucket, deleteBucket } from './buckets.ts'
import { throughputChart } from './chart.ts'
import { cleanUp, cleanUpOnSignals, isStopping, onCleanup } from './cleanup.ts'
import { contenders, PART_CONCURRENCY, PART_SIZE, type ContenderId, type S3Access } from './contenders.ts'
import { describeMachine } from './machine.ts'
import { consoleReport, markdownReport, type Meta } from './report.ts'
import { runOnce, type RunResult } from './run-once.ts'
import { runsScenario, scenarios as allScenarios } from './scenarios.ts'
import { ratios, summarize } from './summary.ts'

const USAGE = `npm run bench [-- options]
  --quick             small sizes, 1 repetition (CI smoke test, < 3 min); writes to bench/results/tmp/
  --repetitions N     runs of each scenario and contender (default 3; 1 with --quick)
  --scenarios a,b     only these scenario ids (one-large, concurrent, small-files, memory, https-one-large, https-concurrent, https-small-files, tus-one-large, tus-concurrent)
  --contenders a,b    only these contenders (a, b, c, d, r = the receive floor, s = the seed: Django + s3chunkuploader, needs python3; e, f for the tus scenarios)
  --out DIR           where latest.json/.md/.svg go (default bench/results, or bench/results/tmp with --quick)
  --cpu-prof          run the servers with node --cpu-prof; profiles go to bench/results/tmp/profiles/
                      (summarise them with: npx tsx bench/profile-top.ts DIR). Profiling slows the servers:
                      figures from such a run are not comparable.`

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    repetitions: { type: 'string' },
    scenarios: { type: 'string' },
    contenders: { type: 'string' },
    out: { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false }
  }
})
if (values.help === true) {
  console.log(USAGE)
  process.exit(0)
}
const quick = values.quick === true
const repetitions = Number(values.repetitions ?? (quick ? 1 : 3))
if (!Number.isInteger(repetitions) || repetitions < 1 || repetitions > 20) {
  console.error(`--repetitions must be a whole number from 1 to 20\n\n${USAGE}`)
  process.exit(2)
}
const wanted = (list: string | undefined): Set<string> | null => list === undefined ? null : new Set(list.split(',').map((item) => item.trim()))
const wantedScenarios = wanted(values.scenarios)
const wantedContenders = wanted(values.contenders)
const scenarios = allScenarios(quick).filter((scenario) => wantedScenarios?.has(scenario.id) ?? true)
const chosen = contenders.filter((contender) => wantedContenders?.has(contender.id) ?? true)
if (scenarios.length === 0 || chosen.length === 0) {
  console.error(`nothing to run\n\n${USAGE}`)
  process.exit(2)
}
const outDir = values.out ?? fileURLToPath(new URL(quick ? './results/tmp/' : './results/', import.meta.url))
const profileDir = values['cpu-prof'] === true ? fileURLToPath(new URL(`./results/tmp/profiles/${Date.now().toString(36)}/`, import.meta.url)) : undefined

// The SDK's Node 20 end-of-support notice says nothing about the figures.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true'
cleanUpOnSignals()
const startedAt = Date.now()
const results: RunResult[] = []
let exitCode = 0

try {
  const server = await startS3({ quiet: true, log: (line) => console.error(line) })
  onCleanup(async () => { await server.stop() })
  console.error(`bench: S3 is ${server.description}${quick ? ' — QUICK MODE' : ''}`)
  if (!server.strict) console.error('bench: warning: not MinIO or AWS; the figures measure the embedded s3rver, not the contenders')
  // The HTTPS scenarios' S3: a MinIO over TLS with a certificate made for this bench run.
  let tlsServer: S3Server | null = null
  if (scenarios.some((scenario) => scenario.tls === true)) {
    const started = await startTlsS3({ quiet: true, log: (line) => console.error(line) })
    if (started.server === null) throw new Error(`the HTTPS scenarios need S3 over TLS: ${started.reason} (leave them out with --scenarios)`)
    const tls = started.server
    tlsServer = tls
    onCleanup(async () => { await tls.stop() })
    console.error(`bench: S3 over TLS is ${tls.description}`)
  }
  const machine = describeMachine(server)

  // Contenders that cannot run here (the seed without Python) are left out with the reason printed.
  const skipped: Array<{ id: string, reason: string }> = []
  const runnable = chosen.filter((contender) => {
    const reason = contender.unavailable?.((line) => console.error(line)) ?? null
    if (reason !== null) {
      skipped.push({ id: contender.id, reason })
      console.error(`bench: skipping (${contender.id}) ${contender.label}: ${reason}`)
    }
    return reason === null
  })

  const suffix = `${Date.now().toString(36)}-${process.pid}`
  /** Per S3 server: how contenders reach it, the bench's own client, a bucket per contender. */
  const targets = new Map<'http' | 'https', { s3: S3Access, client: S3Client, buckets: Map<ContenderId, string> }>()
  for (const [kind, target] of [['http', server], ['https', tlsServer]] as const) {
    if (target === null) continue
    const s3: S3Access = { region: target.region, endpoint: target.endpoint, credentials: { accessKeyId: target.accessKeyId, secretAccessKey: target.secretAccessKey }, ...(target.caFile === undefined ? {} : { caFile: target.caFile }) }
    // This process started before the certificate existed (Node reads NODE_EXTRA_CA_CERTS at start): its client trusts it through an agent.
    const requestHandler = target.caFile === undefined ? undefined : { httpsAgent: new Agent({ keepAlive: true, ca: readFileSync(target.caFile) }) }
    // A copy of the credentials: the SDK tags the object it is given ($source), which the plugin's options would then refuse.
    const client = new S3Client({ region: s3.region, endpoint: s3.endpoint, credentials: { ...s3.credentials }, forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED', ...(requestHandler === undefined ? {} : { requestHandler }) })
    const buckets = new Map<ContenderId, string>()
    for (const contender of runnable) {
      const bucket = `bench-${contender.id}-${kind}-${suffix}`
      await createBucket(client, bucket)
      onCleanup(async () => { await deleteBucket(client, bucket) })
      buckets.set(contender.id, bucket)
    }
    targets.set(kind, { s3, client, buckets })
  }

  const plan = scenarios.flatMap((scenario) => Array.from({ length: repetitions }, (_, repetition) =>
    runnable.filter((contender) => runsScenario(scenario, contender)).map((contender) => ({ scenario, repetition, contender }))).flat())
  for (const [index, { scenario, repetition, contender }] of plan.entries()) {
    if (isStopping()) break
    const prefix = `[${index + 1}/${plan.length}] ${scenario.title} · (${contender.id}) ${contender.label} · run ${repetition + 1}/${repetitions}`
    const target = targets.get(scenario.tls === true ? 'https' : 'http')
    if (target === undefined) throw new Error(`no S3 for scenario ${scenario.id}`)
    const result = await runOnce(contender, scenario, repetition, { client: target.client, bucket: target.buckets.get(contender.id) as string, s3: target.s3, ...(profileDir === undefined ? {} : { profileDir }) })
    results.push(result)
    console.error(`${prefix}: ${describeRun(result)}`)
  }
  if (isStopping()) throw new Error('stopped by a signal')

  const scenarioIds = scenarios.map((scenario) => scenario.id)
  const cells = summarize(results, scenarioIds, runnable.map((contender) => contender.id))
  const ratioList = ratios(cells, scenarioIds)
  const meta: Meta = {
    date: new Date(startedAt).toISOString().replace(/\.\d+Z$/, 'Z'),
    quick,
    repetitions,
    partSizeMiB: PART_SIZE / 1024 / 1024,
    partConcurrency: PART_CONCURRENCY,
    durationSeconds: (Date.now() - startedAt) / 1000,
    skipped
  }
  console.log(`\n${consoleReport(cells, ratioList, scenarios, machine, meta)}`)
  mkdirSync(outDir, { recursive: true })
  writeFileSync(join(outDir, 'latest.json'), JSON.stringify({ meta, machine, scenarios, contenders: runnable.map(({ id, label }) => ({ id, label })), summary: cells, ratios: ratioList, runs: results }, null, 2) + '\n')
  writeFileSync(join(outDir, 'latest.md'), markdownReport(cells, ratioList, scenarios, machine, meta))
  writeFileSync(join(outDir, 'latest.svg'), throughputChart(cells, scenarios, machine, meta))
  console.log(`\nwrote ${join(outDir, 'latest.json')}, latest.md, latest.svg`)
  if (profileDir !== undefined) console.log(`CPU profiles in ${profileDir} (npx tsx bench/profile-top.ts <dir>)`)

  const failed = results.filter((result) => !result.ok)
  if (failed.length > 0) {
    exitCode = 1
    console.error(`\nbench: ${failed.length} run(s) failed:`)
    for (const result of failed) console.error(`  ${result.scenario} (${result.contender}) run ${result.repetition + 1}: ${result.error ?? 'unknown error'}`)
  }
} catch (error) {
  exitCode = 1
  if (!isStopping()) console.error(`bench: ${error instanceof Error ? error.stack ?? error.message : String(error)}`)
} finally {
  await cleanUp()
}
process.exit(exitCode)

function describeRun (result: RunResult): string {
  if (!result.ok) return `FAILED — ${result.error ?? 'unknown error'}`
  const parts = [`${result.mibPerSecond.toFixed(0)} MiB/s in ${result.seconds.toFixed(1)} s`]
  if (result.peakRssMiB !== null) parts.push(`peak RSS ${result.peakRssMiB.toFixed(0)} MiB`)
  if (result.cpuSecondsPerGiB !== null) parts.push(`CPU ${result.cpuSecondsPerGiB.toFixed(2)} s/GiB${result.mainThreadCpuSecondsPerGiB === null ? '' : ` (main thread ${result.mainThreadCpuSecondsPerGiB.toFixed(2)})`}`)
  if (result.diskWriteMiB !== null) parts.push(`disk written ${result.diskWriteMiB.toFixed(0)} MiB`)
  if (result.eventLoopMs !== null) parts.push(`event loop p99 ${result.eventLoopMs.p99.toFixed(1)} / max ${result.eventLoopMs.max.toFixed(1)} ms`)
  if (result.gcPerGiB !== null) parts.push(`main-thread GCs per GiB ${result.gcPerGiB.minor.toFixed(0)} minor / ${result.gcPerGiB.major.toFixed(1)} major (${result.gcPerGiB.majorMs.toFixed(0)} ms)`)
  if (result.mainThreadWaitShare !== null) parts.push(`main thread waiting for a CPU ${(result.mainThreadWaitShare * 100).toFixed(0)} % of the run`)
  if (result.healthMs !== null) parts.push(`health p99 ${result.healthMs.p99.toFixed(1)} ms`)
  if (result.hostBusy !== null) parts.push(`host CPU ${(result.hostBusy * 100).toFixed(0)} %`)
  return parts.join(', ')
}
