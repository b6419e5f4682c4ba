// Builds MinIO into the cache directory if it is not there yet (CI, and new machines).
import { buildMinio, minioBinary } from './s3-server.ts'

if (!buildMinio()) {
  console.error(`could not build MinIO into ${minioBinary()}: is Go installed and the Go module proxy reachable?`)
  process.exit(1)
}
console.log(`MinIO: ${minioBinary()}`)
