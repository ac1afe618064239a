// Package admin holds the end-to-end suites of AdminService and of the authentication and
// authorization of every RPC, driven through the real gRPC front door, one file per feature.
//
// AdminService:
//   - create_test.go, update_test.go: what Create*, Put* and Update* store and answer;
//   - provider_keys_test.go, default_config_test.go, delete_provider_test.go, users_test.go: the
//     lifecycle of keys, the default model config, deleted providers and users;
//   - not_found_test.go, references_test.go, unique_names_test.go: the error reasons of writes on
//     missing rows, on missing or deleted references, and on duplicate names;
//   - validation_test.go: every bad field refused with INVALID_ARGUMENT, and the accepted side of
//     each limit;
//   - secrets_test.go, tokens_test.go: write-only secrets, fingerprints, sealed storage; tokens
//     shown once, listed without secrets, revoked;
//   - concurrency_test.go: concurrent default changes and key rotations;
//   - audit_trail_test.go: refused admin calls in the audit trail with their reasons, and each
//     change's fields before and after, secrets by fingerprint only.
//
// Authentication and authorization:
//   - authz_test.go: every registered RPC has a scope rule and needs exactly its scopes;
//   - authz_public_test.go: health and reflection answer without a token;
//   - authentication_test.go: the authorization header's shapes, revoked and expired tokens;
//   - token_grants_test.go: what a token:write holder may grant, revoke and mint;
//   - workload_identities_test.go: binding workload identities' subjects to scopes, paging, the
//     audit of each change, and what a token:write holder may bind, replace and delete;
//   - identity_jwt_test.go: JWTs (OIDC, Kubernetes service-account tokens) of a local issuer:
//     each algorithm, every refusal, key rotation, a binding deleted on another replica, the
//     issuer down at start;
//   - identity_mtls_test.go: client certificates (SPIFFE URI SAN, common name) without a token;
//   - key_scopes_test.go: the key-table scopes ResolveModel needs, never turned into a fallback;
//   - redirect_provider_test.go: creating a provider with a base_url, or changing its base_url, needs
//     the scopes that read its keys;
//   - egress_test.go: --allowed-provider-hosts keeps every provider's base_url inside the list.
//
// How the suites run: TestMain (main_test.go) calls pgtest.Main, so the package starts one private
// PostgreSQL cluster on first use; each test gets a fresh migrated database and a real resolverd
// server on loopback (internal/testenv), with authentication and scope checks on. Fixtures are
// made through AdminService (testenv.World); the pool only checks what was stored or acts as
// another writer. helpers_test.go holds the shared checks (prefixed ad): adRefused and adInvalid
// prove a refused call left every table as it was.
//
//	go test -race -count=1 ./internal/e2e/admin/
package admin
