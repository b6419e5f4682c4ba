// Debian's headless Chromium driven by playwright-core, for tests that need a
// real browser. Nothing is downloaded: the browser must already be installed.
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext } from 'playwright-core'

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

// Quiet and offline: no QUIC, no update checks, no sync, nothing but the test's own traffic.
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync'
]

export interface TestBrowser {
  context: BrowserContext
  close: () => Promise<void>
}

/** Skip reason when no Chromium is installed here, else false. */
export function needsChromium (): false | string {
  if (existsSync(CHROMIUM_PATH)) return false
  if (process.env.CI === 'true') throw new Error(`CI needs Chromium at ${CHROMIUM_PATH}`)
  const reason = `needs Chromium at ${CHROMIUM_PATH} (apt-get install chromium)`
  console.log(`# skip: ${reason}`)
  return reason
}

/**
 * Launches Chromium with a fresh profile directory of its own; close() ends the
 * browser and removes the profile. Playwright takes the profile as an argument
 * of launchPersistentContext and passes it as --user-data-dir itself.
 */
export async function launchChromium (): Promise<TestBrowser> {
  const userDataDir = mkdtempSync(join(tmpdir(), 'fastify-s3-chunk-chromium-'))
  let context: BrowserContext
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: ARGS,
      timeout: 60_000
    })
  } catch (error) {
    rmSync(userDataDir, { recursive: true, force: true })
    throw error
  }
  let closed = false
  return {
    context,
    close: async () => {
      if (closed) return
      closed = true
      try {
        await context.close()
      } finally {
        rmSync(userDataDir, { recursive: true, force: true })
      }
    }
  }
}
