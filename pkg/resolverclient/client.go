package resolverclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/resolverd/resolverd/pkg/secret"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// Defaults of the options.
const (
	DefaultTimeout     = 5 * time.Second
	DefaultMaxAttempts = 4
	DefaultBackoffBase = 100 * time.Millisecond
	DefaultBackoffMax  = 2 * time.Second
	// MaxRetryAfter bounds a server's (or a proxy's) RetryInfo delay that Resolve will wait.
	MaxRetryAfter = 10 * time.Second
)

// serviceConfig balances calls, not connections: with a target that resolves to several addresses
// (dns:/// of a headless Service), each call goes to the next ready backend.
const serviceConfig = `{"loadBalancingConfig":[{"round_robin":{}}]}`

// Option configures Dial.
type Option func(*options)

type options struct {
	token       string
	tokenGiven  bool
	tlsConfig   *tls.Config
	insecure    bool
	timeout     time.Duration
	maxAttempts int
	base, max   time.Duration
	dialOptions []grpc.DialOption
	tokenFile   string                           // WithTokenFile (identity.go)
	clientCert  func() (*tls.Certificate, error) // WithClientCertificate (identity.go)
}

// WithToken sends "authorization: Bearer <token>" on every call. The token travels only over TLS,
// unless WithInsecure is given too.
func WithToken(token string) Option {
	return func(o *options) { o.token, o.tokenGiven = strings.TrimSpace(token), true }
}

// WithTLS sets the TLS configuration (the CA to trust, a client certificate for mutual TLS). Without
// it, and without WithInsecure, Dial uses TLS with the system's roots.
func WithTLS(cfg *tls.Config) Option { return func(o *options) { o.tlsConfig = cfg } }

// WithInsecure talks plaintext, token included: for loopback (resolverd dev) and tests only.
func WithInsecure() Option { return func(o *options) { o.insecure = true } }

// WithTimeout is the deadline of a Resolve whose context has none, covering every attempt
// (default 5s). Zero means no default deadline.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithRetry sets how UNAVAILABLE is retried: at most maxAttempts calls in all (1 disables
// retries), waiting between base and an exponentially growing bound capped at max, with full
// jitter in between (defaults 3, 50ms, 1s).
func WithRetry(maxAttempts int, base, max time.Duration) Option {
	return func(o *options) { o.maxAttempts, o.base, o.max = maxAttempts, base, max }
}

// WithDialOptions adds gRPC dial options, applied after the client's own (so they can override
// them): interceptors, keepalive (resolverd accepts pings every 10 s or more; more often, and it
// closes the connection), a custom resolver, tracing.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOptions = append(o.dialOptions, opts...) }
}

// Client calls resolverd's ResolverService. It is safe for concurrent use; make one per process and
// Close it on shutdown.
type Client struct {
	conn *grpc.ClientConn
	rpc  resolverv1.ResolverServiceClient
	// Only what calls need: the token lives in the connection's per-call credentials, as a
	// secret.String, so that printing a Client cannot show it.
	timeout     time.Duration
	maxAttempts int
	base, max   time.Duration
}

// Dial prepares a client for target, a gRPC target such as "127.0.0.1:50051" or
// "dns:///resolverd.ns.svc.cluster.local:50051". It does not connect: the first call does, and
// calls are spread round-robin over every address the target resolves to.
func Dial(target string, opts ...Option) (*Client, error) {
	o := options{timeout: DefaultTimeout, maxAttempts: DefaultMaxAttempts, base: DefaultBackoffBase, max: DefaultBackoffMax}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case strings.TrimSpace(target) == "":
		return nil, errors.New("resolverclient: the target address is empty")
	case o.insecure && o.tlsConfig != nil:
		return nil, errors.New("resolverclient: WithTLS and WithInsecure exclude each other")
	case o.timeout < 0:
		return nil, errors.New("resolverclient: WithTimeout must not be negative")
	case o.maxAttempts < 1:
		return nil, errors.New("resolverclient: WithRetry needs at least 1 attempt")
	case o.base <= 0 || o.max < o.base:
		return nil, errors.New("resolverclient: WithRetry needs 0 < base <= max")
	case o.tokenGiven && o.token == "":
		// An empty token file or variable: say so now, not as UNAUTHENTICATED on every call.
		return nil, errors.New("resolverclient: WithToken was given an empty token")
	case strings.ContainsFunc(o.token, func(r rune) bool { return r <= ' ' || r > '~' }):
		// Never show the token itself.
		return nil, errors.New("resolverclient: the token holds spaces, control or non-ASCII characters")
	case o.tokenGiven && o.tokenFile != "":
		return nil, errors.New("resolverclient: WithToken and WithTokenFile exclude each other")
	case o.insecure && o.clientCert != nil:
		return nil, errors.New("resolverclient: WithClientCertificate needs TLS, not WithInsecure")
	}
	var creds credentials.TransportCredentials
	if o.insecure {
		creds = insecure.NewCredentials()
	} else {
		cfg := o.tlsConfig
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		cfg, err := o.clientTLS(cfg)
		if err != nil {
			return nil, err
		}
		creds = credentials.NewTLS(cfg)
	}
	dopts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultServiceConfig(serviceConfig),
		grpc.WithUserAgent("resolverclient"),
	}
	if o.token != "" {
		dopts = append(dopts, grpc.WithPerRPCCredentials(bearer{token: secret.New(o.token), requireTLS: !o.insecure}))
	}
	if o.tokenFile != "" {
		f, err := newFileToken(o.tokenFile, !o.insecure)
		if err != nil {
			return nil, err
		}
		dopts = append(dopts, grpc.WithPerRPCCredentials(f))
	}
	conn, err := grpc.NewClient(target, append(dopts, o.dialOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("resolverclient: %w", err)
	}
	return &Client{conn: conn, rpc: resolverv1.NewResolverServiceClient(conn),
		timeout: o.timeout, maxAttempts: o.maxAttempts, base: o.base, max: o.max}, nil
}

// Close closes the connections. Calls in flight fail with CANCELED.
func (c *Client) Close() error { return c.conn.Close() }

// bearer is the token as gRPC per-call credentials: gRPC adds it to every call's metadata and, while
// requireTLS holds, refuses to build a client that would send it over plaintext.
type bearer struct {
	token      secret.String
	requireTLS bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token.Reveal()}, nil
}

func (b bearer) RequireTransportSecurity() bool { return b.requireTLS }

// Resolve asks which model, provider and credential to use for a chat. modelConfigID may be empty
// for the chat's own model. Every error is an *Error; see the Err* sentinels.
//
// UNAVAILABLE (a replica restarting, DATABASE_UNAVAILABLE) is retried with backoff, honouring the
// server's RetryInfo; nothing else is: a FAILED_PRECONDITION or PERMISSION_DENIED will not change
// by asking again, and RATE_LIMITED says in RetryAfter when to come back. The context (or, when it
// has no deadline, the default timeout) bounds all attempts together.
func (c *Client) Resolve(ctx context.Context, chatID, modelConfigID string, purpose Purpose) (*Resolution, error) {
	req := &resolverv1.ResolveModelRequest{ChatId: chatID, ModelConfigId: modelConfigID, Purpose: purpose.proto()}
	resp, err := call(ctx, c, func(ctx context.Context) (*resolverv1.ResolveModelResponse, error) {
		return c.rpc.ResolveModel(ctx, req)
	})
	if err != nil {
		return nil, err
	}
	return resolutionOf(resp), nil
}

// call makes one RPC with Resolve's rules: the default deadline when ctx has none, UNAVAILABLE
// retried with backoff (honouring RetryInfo), every error an *Error. A nil error is returned as a
// nil error interface, never as a typed nil *Error.
func call[R any](ctx context.Context, c *Client, rpc func(context.Context) (R, error)) (R, error) {
	var zero R
	if _, ok := ctx.Deadline(); !ok && c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	var last *Error
	for attempt := 1; ; attempt++ {
		resp, err := rpc(ctx)
		if err == nil {
			return resp, nil
		}
		e := fromStatus(ctx, err)
		e.Attempts = attempt
		if e.cause != nil && last != nil {
			// The caller's time ran out during a retry: say so, and keep the outage it retried
			// (errors.Is still matches ErrUnavailable, ErrDatabaseUnavailable).
			e.Message += "; the previous attempt failed with " + last.Error()
			e.Previous = last
		}
		if e.Code != codes.Unavailable || attempt >= c.maxAttempts {
			return zero, e
		}
		delay := c.backoff(attempt)
		if e.RetryAfter > 0 {
			delay = min(e.RetryAfter, MaxRetryAfter)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= delay {
			// The wait would outlast the deadline: this error says more than DEADLINE_EXCEEDED would.
			return zero, e
		}
		last = e
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			ce := fromStatus(ctx, ctx.Err())
			ce.Attempts = attempt
			ce.Message += "; the previous attempt failed with " + last.Error()
			ce.Previous = last
			return zero, ce
		case <-t.C:
		}
	}
}

// backoff is the wait after the given attempt: lo = min(max, base·2^(attempt-1)), then a random
// wait between lo and 2·lo (at most max). Never less than base, never more than max, and jittered
// from the first retry, so that workers failed by the same outage do not retry in step.
func (c *Client) backoff(attempt int) time.Duration {
	lo := c.max
	if attempt-1 < 30 {
		if b := c.base << (attempt - 1); b > 0 && b < lo {
			lo = b
		}
	}
	hi := min(2*lo, c.max)
	if hi <= lo {
		return lo
	}
	return lo + rand.N(hi-lo+1)
}
