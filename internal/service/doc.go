// Package service holds the gRPC handlers of ResolverService and AdminService: each validates its
// request (reporting every bad field at once), calls the decision rules (internal/resolve) or the
// scope-checked store (internal/dbauthz), and renders the answer or the error. Authentication,
// request ids, deadlines and the error → status mapping are internal/transport's; the handlers only
// ever see calls that passed it.
package service
