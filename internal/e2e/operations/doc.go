// Package operations holds the end-to-end suites of what an operator relies on besides the API's
// answers, driven through the real gRPC server, one file per feature:
//
//   - cache_test.go, cache_keys_test.go: the cache stays fresh: a change made through another
//     replica or by another writer shows within a second, a lost or silent change listener stops
//     serving from memory, and changes to what an entry is found by apply too;
//   - key_pools_test.go: key pools on three replicas of one database: a report on one replica makes
//     every replica serve the next key within a second and the key comes back after retry_after;
//     a suspension lasts until an admin enables the key again or rotates; round robin spreads
//     evenly over the keys; the report and unavailable-key metrics;
//   - cutover_test.go: a legacy database migrated up resolves every chat as before;
//   - call_timeout_test.go: --call-timeout bounds a call waiting on the database;
//   - outage_test.go: PostgreSQL stopped under load and started again (its own cluster);
//   - audit_test.go: the audit trail of resolutions and changes, refused resolutions, retention,
//     unauthenticated calls counted and not recorded (`resolverd audit verify` is tested with the
//     commands, in cmd/resolverd/audit_test.go);
//   - secret_leaks_test.go: no plaintext secret in any table, log line or error;
//   - secret_format_test.go: values sealed in the format before schema version 10 still resolve,
//     and keys rotate binds them to their rows and validates the CHECKs against plain secrets;
//   - metrics_test.go, rate_limit_test.go, tracing_test.go: Prometheus series, per-token rate
//     limits, OpenTelemetry spans;
//   - tls_test.go: TLS and mutual TLS;
//   - message_size_test.go: oversized requests never reach a handler;
//   - health_test.go: health follows the schema, NOT_SERVING while it is behind the binary;
//   - bench_test.go: a warm ResolveModel and a health check over loopback, for profiling.
//
// How the suites run: TestMain (main_test.go) calls pgtest.Main, so the package starts one private
// PostgreSQL cluster on first use; each test gets a fresh migrated database and a real resolverd
// server on loopback (internal/testenv), configured as the suite needs (testenv.Options.Configure).
// outage_test.go starts a cluster of its own, since it stops it. helpers_test.go holds seedChat and
// eventually.
//
//	go test -race -count=1 ./internal/e2e/operations/
package operations
