// Package transport is what every call crosses before and after its handler: the interceptor chain
// (recovery → request id → logging → metrics → call deadline → authentication), the method → scope
// table that authentication enforces, and ToStatus, the one place an error becomes a gRPC status
// with a google.rpc.ErrorInfo. It knows nothing of resolutions or admin operations: the handlers in
// internal/service import it, never the other way round.
//
// The order of the chain, and why:
//   - recovery is outermost, so a panic anywhere below is a generic INTERNAL and a counted metric;
//   - the request id comes next, so every log line and error below can name the call;
//   - logging sees the final status of every call, refusals included;
//   - metrics count every RPC, refused ones too;
//   - the call deadline (--call-timeout) bounds the work of authenticated calls, token lookup
//     included, and turns a PostgreSQL that does not answer into DATABASE_UNAVAILABLE;
//   - authentication is last: it turns "authorization: Bearer <token>" — or a JWT, or the
//     connection's client certificate, a workload identity (identity.go) — into the caller
//     (rbac.Principal) the handler's store checks scopes against.
package transport
