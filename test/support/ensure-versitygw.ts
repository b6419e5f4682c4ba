// Builds versitygw into the cache directory if it is not there yet (CI, and new machines).
import { buildVersitygw, versitygwBinary } from './s3-server.ts'

if (!buildVersitygw()) {
  console.error(`could not build versitygw into ${versitygwBinary()}: is Go installed and the Go module proxy reachable?`)
  process.exit(1)
}
console.log(`versitygw: ${versitygwBinary()}`)
