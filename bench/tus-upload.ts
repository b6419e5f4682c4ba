// The tus load client: tus-js-client (unchanged, Node build) sends a generated
// file to a tus endpoint — creation, then the whole file as one PATCH (its
// default chunkSize), the bytes made on demand by a file reader of our own so
// no file is ever held whole or read from disk (the scheme of
// generated-file.ts). No retries: a failure fails the run instead of being
// quietly resumed.
import { Readable } from 'node:stream'
import { Upload } from 'tus-js-client'
import { fileBytes } from './generated-file.ts'

const MiB = 1024 * 1024

/** Bytes [start, end) of generated file `seed` of `size` bytes, one MiB block at a time. */
function generated (seed: number, size: number, start: number, end: number): Readable {
  async function * blocks (): AsyncGenerator<Buffer> {
    let at = start
    while (at < end) {
      const block = Math.floor(at / MiB) * MiB
      // Whole blocks as fileBytes makes them, so any slice of the file reads the same bytes.
      const bytes = fileBytes(seed, block, Math.min(MiB, size - block))
      const stop = Math.min(end - block, bytes.length)
      yield bytes.subarray(at - block, stop)
      at = block + stop
    }
  }
  return Readable.from(blocks(), { objectMode: false })
}

/** A tus-js-client file reader whose "file" is the generated one: { seed, size }. */
const generatedFileReader = {
  async openFile (input: { seed: number, size: number }) {
    return {
      size: input.size,
      async slice (start: number, end: number) {
        const stop = Math.min(end, input.size)
        // Node's HTTP stack sets Content-Length from the body's `size`.
        const value = Object.assign(generated(input.seed, input.size, start, stop), { size: stop - start })
        return { value, done: stop >= input.size }
      },
      close () {}
    }
  }
}

/** Uploads one generated file; resolves with the upload URL once the server confirmed the last byte. */
export async function tusUpload (endpoint: string, seed: number, size: number, filename: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    const upload: Upload = new Upload({ seed, size } as unknown as Buffer, {
      endpoint,
      uploadSize: size,
      metadata: { filename, filetype: 'application/octet-stream' },
      fileReader: generatedFileReader as never,
      retryDelays: [],
      storeFingerprintForResuming: false,
      onError: reject,
      onSuccess: () => { resolve(upload.url ?? '') }
    })
    upload.start()
  })
}
