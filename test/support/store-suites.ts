// Which test files run on which S3 store, declared here rather than skipped
// quietly. MinIO (the reference) runs everything. versitygw runs the
// integration suite (test/integration, test/security) minus the files below,
// each with the reason it cannot say anything there, and a few tests inside
// the files it does run skip for a feature the store lacks — with the reason
// declared here, the only skip reasons a strict run (CI) accepts.

/** A store the runner can start by name (`run-tests.ts --store <name>`, S3_SERVER=<name>). */
export type StoreName = 'minio' | 'versitygw'

export const STORES: readonly StoreName[] = ['minio', 'versitygw']

/** Features a store lacks, as test support checks for them (kmsKeyId(), testTlsS3()). */
export type Feature = 'kms' | 'tls'

export interface StoreSuite {
  /** Directories whose *.test.ts files form the store's suite (before exclusions). */
  dirs: string[]
  /** Test directories outside the store's suite, and why (printed by the runner). */
  outside: Record<string, string>
  /** Files of those directories the store does not run, and why (printed by the runner). */
  excluded: Record<string, string>
  /** Features the store lacks: tests that need one skip with this reason, which a strict run accepts. */
  lacks: Partial<Record<Feature, string>>
}

export const SUITES: Record<Exclude<StoreName, 'minio'>, StoreSuite> = {
  versitygw: {
    dirs: ['test/integration', 'test/security'],
    outside: {
      'test/unit': 'no store: the S3 client is mocked',
      'test/browser': 'the browser tests rely on MinIO answering every origin\'s CORS preflight; versitygw answers only a bucket\'s own CORS rule (403 without one)',
      'test/load': 'memory and fault-injection figures under load, measured once, on MinIO'
    },
    excluded: {
      // Measured with test/support/probe-s3.ts on versitygw v1.8.0 (posix), 2026-11-22.
      'test/integration/sse-c.test.ts': 'SSE-C: versitygw accepts the SSE-C headers and stores the object unencrypted (HeadObject without the key answers 200); the tests need the TLS MinIO',
      'test/integration/lost-answer-encrypted.test.ts': 'SSE-KMS and SSE-C with lost answers: versitygw has no KMS and ignores SSE-C',
      'test/integration/s3-test-bed.test.ts': 'tests the MinIO test bed itself (its KMS key, the TLS MinIO)',
      'test/security/direct-versioned-bucket.test.ts': 'bucket versioning: versitygw v1.8.0 (posix, as started here) answers PutBucketVersioning with "Versioning has not been configured for the gateway"; runs on MinIO',
      'test/integration/example-routes.test.ts': 'the example app\'s video route encrypts with SSE-KMS, which versitygw accepts and ignores (the object is stored unencrypted)',
      // Packaging and the demo: they store through the plugin like round-trip does, but
      // what they test is the package, not the store.
      'test/integration/commonjs-consumer.test.ts': 'packaging (npm pack, CommonJS consumers): nothing store-specific, runs on MinIO',
      'test/integration/bundled-app.test.ts': 'packaging (an esbuild bundle): nothing store-specific, runs on MinIO',
      'test/integration/demo-shutdown.test.ts': 'the demo with its own embedded S3, not the store under test',
      // Attacks on the plugin's memory budget and event loop: the store is only a sink there.
      'test/security/slow-clients.test.ts': 'the memory budget against slow clients: the store is only a sink, runs on MinIO',
      'test/security/five-tib-declaration.test.ts': 'the memory budget against a 5 TiB declaration: the store is only a sink, runs on MinIO',
      'test/security/max-listeners.test.ts': 'a Node warning count under concurrency: nothing store-specific, runs on MinIO',
      'test/security/direct-batch-cap.test.ts': 'signing throughput and event-loop latency: the store takes one part, runs on MinIO'
    },
    lacks: {
      kms: 'versitygw has no KMS: it accepts ServerSideEncryption aws:kms / AES256 and stores the object unencrypted (HeadObject reports no encryption)',
      tls: 'the versitygw suite runs without an S3 over TLS (SSE-C is not in it: versitygw ignores SSE-C)'
    }
  }
}

/** The store the test process runs against (S3_KIND, set by the runner; S3_SERVER for a file run on its own), when it has a declared suite. */
export function declaredSuite (kind = process.env.S3_KIND ?? process.env.S3_SERVER): StoreSuite | null {
  return kind === 'versitygw' ? SUITES.versitygw : null
}

/**
 * When the store under test lacks `feature` by declaration: the reason, for
 * the test to skip with (printed); else null — and then a strict run treats a
 * missing feature as an error, as before.
 */
export function declaredLack (feature: Feature): string | null {
  return declaredSuite()?.lacks[feature] ?? null
}

/** Every skip reason a strict run accepts on this store. */
export function acceptedSkipReasons (kind = process.env.S3_KIND ?? process.env.S3_SERVER): string[] {
  return Object.values(declaredSuite(kind)?.lacks ?? {})
}
