// Package resolverclient is the Go client of resolverd's ResolverService, for chat workers: it asks
// which model to call, at which provider, with which API key, and returns typed answers and typed
// errors.
//
//	c, err := resolverclient.Dial("dns:///resolverd.chat.svc.cluster.local:50051",
//		resolverclient.WithToken(token),                  // "authorization: Bearer <token>", TLS only
//		resolverclient.WithTLS(&tls.Config{RootCAs: ca}), // or WithInsecure() on loopback
//	)
//	if err != nil { ... }
//	defer c.Close()
//
//	res, err := c.Resolve(ctx, chatID, "", resolverclient.PurposeChat)
//	switch {
//	case errors.Is(err, resolverclient.ErrUserKeyRequired):
//		// ask the chat's owner to add their own key for this provider
//	case err != nil:
//		return err
//	}
//	client := openai.NewClient(option.WithAPIKey(res.Credential.APIKey.Reveal()))
//
// # Answers
//
// Resolve returns a *Resolution: the model config, its provider, one credential and the decision
// (fallback and why). Credential.APIKey is a secret.String, the type resolverd itself carries keys
// in: every way of printing, logging or marshalling it (and so any Resolution) shows [REDACTED].
// Call Reveal only where the key is handed to the provider's SDK. Log Credential.Fingerprint
// instead: it is what resolverd's audit trail records for the same key.
//
// # Errors
//
// Every error from Resolve is an *Error carrying the gRPC code and, when resolverd produced it, the
// reason of docs/CONTRACT.md §4 with its metadata, BadRequest field violations and RetryInfo delay. Test
// for a reason with errors.Is and the sentinels (ErrChatNotFound, ErrMissingScope, ...), read the
// details with errors.As. ErrUnavailable matches every UNAVAILABLE, whether resolverd said
// DATABASE_UNAVAILABLE or no replica could be reached. When the caller's context ends the error also
// satisfies errors.Is(err, context.Canceled) or errors.Is(err, context.DeadlineExceeded).
//
// # Retries and deadlines
//
// Only UNAVAILABLE is retried (WithRetry; default 4 attempts in all, waiting 100-200ms, 200-400ms
// and 400-800ms, random within each range and at most 2s, or the server's RetryInfo delay, at most
// MaxRetryAfter). When the caller's context ends during a retry, the error is Canceled or
// DeadlineExceeded and also matches (through Error.Previous) the outage it was retrying. Every other code
// is returned at once: FAILED_PRECONDITION, PERMISSION_DENIED or NOT_FOUND will not change by asking
// again, and RATE_LIMITED (RESOURCE_EXHAUSTED) is left to the caller with Error.RetryAfter. A call
// whose context has no deadline gets WithTimeout's (default 5s), which covers all the attempts.
// ResolveModel only reads, so a retry is safe; each attempt appears in resolverd's audit trail.
//
// # Authentication
//
// WithToken uses gRPC per-call credentials rather than an interceptor: gRPC then attaches the
// header to every call, and refuses to build a client that would send the token over a plaintext
// connection. Plaintext needs WithInsecure, said explicitly. Without WithTLS or WithInsecure the
// client uses TLS with the system's roots.
//
// Workload identities (docs/CONTRACT.md §3.1) need no rsv_ token: WithTokenFile sends the token in
// a file and follows the file as it is rewritten — a Kubernetes projected service-account token
// with audience resolverd, which resolverd verifies as a JWT (serve --jwt-issuer) — looking at it
// at most once a second and reading it only when it changed. WithClientCertificate (or
// WithClientCertificateFunc, asked at every handshake, for a rotating certificate) presents a
// client certificate; with resolverd's --tls-client-ca, a call without a token is authenticated by
// the certificate's SPIFFE ID or common name.
//
//	c, err := resolverclient.Dial(target, resolverclient.WithTLS(&tls.Config{RootCAs: ca}),
//		resolverclient.WithTokenFile("/var/run/secrets/resolverd/token"))
//
// # Load balancing
//
// gRPC keeps one long-lived HTTP/2 connection per backend, so a Kubernetes ClusterIP Service (which
// balances connections, not calls) would send all of a worker's calls to one pod. The client
// balances per call instead: it uses gRPC's DNS resolver and the round_robin policy, so with a
// headless Service (clusterIP: None, as in deploy/kubernetes/base/service.yaml) and the target
//
//	dns:///resolverd.<namespace>.svc.cluster.local:50051
//
// it connects to every ready pod the name resolves to and spreads calls over them. DNS is read again
// when a connection breaks; resolverd closes connections after 5 minutes (MaxConnectionAge), so
// pods added by scaling up receive calls within minutes. A plain "host:port" target also goes
// through DNS. Pass grpc.WithResolvers through WithDialOptions for another resolver.
package resolverclient
