// A TCP front for app instances, as a load balancer stands before them: the
// browser talks to one address while the test restarts the app behind it or
// moves the traffic to a second instance. It paces the bytes clients send (so
// an upload is still under way when the test acts), counts them (so a test can
// tell how much a resume sent again), holds traffic at a chosen byte count,
// and cuts every connection at once.
import { once } from 'node:events'
import { connect, createServer, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

export interface FrontProxy {
  /** `http://127.0.0.1:<port>`. */
  url: string
  /** Where new connections go from now on (connections already open stay where they are). */
  setTarget: (port: number) => void
  /** Bytes clients have sent through the proxy since the start (or the last resetCount). */
  forwardedBytes: () => number
  resetCount: () => void
  /**
   * Resolves once clients have sent `bytes` (counted as forwardedBytes); from
   * then on nothing more is read from any client until release().
   */
  holdAt: (bytes: number) => Promise<void>
  release: () => void
  /** Destroys every open connection, both sides: the clients see a reset, the apps an aborted request. */
  cut: () => void
  close: () => Promise<void>
}

export async function startFrontProxy (options: { target: number, bytesPerSecond?: number }): Promise<FrontProxy> {
  let target = options.target
  let forwarded = 0
  let hold: { at: number, reached: () => void } | null = null
  let held = false
  const waiting = new Set<() => void>()
  const pairs = new Set<{ client: Socket, upstream: Socket }>()

  const server = createServer((client) => {
    const upstream = connect(target, '127.0.0.1')
    const pair = { client, upstream }
    pairs.add(pair)
    const end = (): void => {
      client.destroy()
      upstream.destroy()
      pairs.delete(pair)
    }
    for (const socket of [client, upstream]) {
      socket.on('error', end)
      socket.on('close', end)
    }
    // Answers go back unpaced.
    upstream.pipe(client)
    client.on('data', (chunk: Buffer) => {
      forwarded += chunk.length
      const waits: Array<Promise<unknown>> = []
      if (!upstream.write(chunk)) waits.push(once(upstream, 'drain'))
      if (options.bytesPerSecond !== undefined) waits.push(sleep(chunk.length / options.bytesPerSecond * 1000))
      if (hold !== null && forwarded >= hold.at) {
        held = true
        hold.reached()
        hold = null
      }
      if (held) waits.push(new Promise<void>((resolve) => waiting.add(resolve)))
      if (waits.length === 0) return
      client.pause()
      Promise.all(waits).then(() => { if (!client.destroyed) client.resume() }, end)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0

  const release = (): void => {
    held = false
    for (const resolve of waiting) resolve()
    waiting.clear()
  }
  const cut = (): void => {
    for (const { client, upstream } of pairs) {
      client.resetAndDestroy()
      upstream.destroy()
    }
    pairs.clear()
  }
  return {
    url: `http://127.0.0.1:${port}`,
    setTarget: (port) => { target = port },
    forwardedBytes: () => forwarded,
    resetCount: () => { forwarded = 0 },
    holdAt: async (bytes) => await new Promise<void>((resolve) => {
      if (forwarded >= bytes) {
        held = true
        resolve()
        return
      }
      hold = { at: bytes, reached: resolve }
    }),
    release,
    cut,
    close: async () => {
      release()
      cut()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}
