// the plugin's own worker, with a probe: each PutObject task reports the bytes of the
// copied (not shared) task bodies this thread holds at once while it runs.
import { BroadcastChannel } from 'node:worker_threads'
import * as real from '../../dist/workers/upload-part.js'

const channel = new BroadcastChannel('put-copies-worker-probe')
channel.unref()
let live = 0

export default real.default

export async function putObject (task) {
  const shared = task.body instanceof SharedArrayBuffer
  const bytes = task.body.byteLength
  if (!shared) live += bytes
  channel.postMessage({ shared, bytes, live })
  try {
    return await real.putObject(task)
  } finally {
    if (!shared) live -= bytes
  }
}
