// Package resolution holds the end-to-end suites of ResolverService/ResolveModel: the decision
// rules of docs/CONTRACT.md driven through the real gRPC front door, one file per feature.
//
//   - purposes_test.go: what each purpose resolves (the chat's own model, overrides, fallbacks to
//     the default, the title override's keys);
//   - overrides_test.go: every way a requested config can be broken, with every purpose;
//   - credentials_test.go: which credential answers (central, the owner's own key, ambient), with
//     --allow-byok on and off, key rotation and fingerprints;
//   - scopes_test.go: the scopes ResolveModel needs, checked where rows are read;
//   - egress_test.go: --allowed-provider-hosts: a provider outside the list is unusable
//     (PROVIDER_HOST_NOT_ALLOWED) on every purpose, including when psql moved it there;
//   - input_test.go and authentication_test.go: refused requests and tokens, which change nothing;
//   - secrets_test.go: no seeded key in any error or log line;
//   - sealed_secrets_test.go: a key moved to another row, edited, or sealed by an unknown
//     encryption key is never served (SECRET_UNREADABLE), fails nothing else, comes after the
//     scope checks, and is counted and logged by row;
//   - key_reports_test.go: workers' reports on keys (ReportCredentialOutcome): every central key
//     cooling down (CREDENTIALS_COOLING_DOWN with a RetryInfo, soft overrides falling back), all
//     suspended (NO_CREDENTIALS), OK ending a cooldown, a user's key reported UNAUTHORIZED
//     (the central key with user_key_skipped_reason, or USER_KEY_INVALID), the scope, unknown
//     keys, validation, one key per report, the audit trail and the per-caller report rate;
//   - smoke_test.go: the shortest path, a chat resolved with its provider's central key.
//
// How the suites run: TestMain (main_test.go) calls pgtest.Main, so the package starts one private
// PostgreSQL cluster on first use; each test gets a fresh migrated database and a real resolverd
// server on loopback (internal/testenv), with authentication and scope checks on. Fixtures are made
// through AdminService (helpers_test.go: reWorld remembers every key it seeds, and its cleanup fails
// the test if the server log holds one); the pool acts only as another writer (psql).
//
//	go test -race -count=1 ./internal/e2e/resolution/
package resolution
