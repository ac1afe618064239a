package transport

import (
	"context"
	"errors"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/resolverd/resolverd/internal/errs"
)

// RequestIDHeader carries a request id in and out; a caller's id is kept when it is sane.
const RequestIDHeader = "x-request-id"

type requestIDKey struct{}

// requestIDContext carries a call's request id. It answers for requestIDKey with itself, a
// pointer, so that naming a call costs the id and this context (context.WithValue would box the
// string on the heap besides).
type requestIDContext struct {
	context.Context
	id string
}

func (c *requestIDContext) Value(key any) any {
	if _, ok := key.(requestIDKey); ok {
		return c
	}
	return c.Context.Value(key)
}

// RequestID returns the id of the request being served, "" outside one.
func RequestID(ctx context.Context) string {
	if c, ok := ctx.Value(requestIDKey{}).(*requestIDContext); ok {
		return c.id
	}
	return ""
}

// withRequestID names the call: the caller's x-request-id when it sent a sane one (echoed back),
// else a new id, sent back only when the call fails (see unaryRequestID) — the id is what an
// operator needs to find a failure in the log.
func withRequestID(ctx context.Context) (context.Context, bool) {
	if v := metadata.ValueFromIncomingContext(ctx, RequestIDHeader); len(v) > 0 && saneRequestID(v[0]) {
		_ = grpc.SetHeader(ctx, metadata.Pairs(RequestIDHeader, v[0]))
		return &requestIDContext{Context: ctx, id: v[0]}, true
	}
	return &requestIDContext{Context: ctx, id: newRequestID()}, false
}

// requestIDPrefix makes this process's ids unique across replicas and restarts; a counter makes
// them unique within it, without a system call per request (uuid.New reads crypto/rand).
var (
	requestIDPrefix = strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
	requestIDSeq    atomic.Uint64
)

// newRequestID is requestIDPrefix, "-" and the next number in base 36, made in one allocation.
func newRequestID() string {
	var buf [len("0123456789ab-") + 13]byte // 13 base-36 digits hold any uint64
	b := append(append(buf[:0], requestIDPrefix...), '-')
	return string(strconv.AppendUint(b, requestIDSeq.Add(1), 36))
}

func saneRequestID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if r < 0x21 || r > 0x7e {
			return false
		}
	}
	return true
}

// Observer hears of panics and of calls over the rate limit, for metrics. Its methods must be cheap
// and never block.
type Observer interface {
	Panicked()
	Limited()
}

type nopObserver struct{}

func (nopObserver) Panicked() {}
func (nopObserver) Limited()  {}

// ChainOptions configures the interceptor chain.
type ChainOptions struct {
	Log  *slog.Logger
	Auth *Authenticator
	// Metrics, when set, counts and times every RPC (go-grpc-middleware's Prometheus provider).
	Metrics *grpcprom.ServerMetrics
	// Observer receives panics; nil observes nothing.
	Observer Observer
	// CallTimeout bounds a call's work on the server (0: no bound beyond the caller's deadline).
	// A call that runs out of it waiting on PostgreSQL fails with DATABASE_UNAVAILABLE instead of
	// hanging: see timeoutError.
	CallTimeout time.Duration
}

// Interceptors returns the chain in the order the package comment explains: recovery (outermost) → request id →
// logging → metrics → deadline → authentication → handler.
func Interceptors(o ChainOptions) ([]grpc.UnaryServerInterceptor, []grpc.StreamServerInterceptor) {
	log, obs := o.Log, o.Observer
	if obs == nil {
		obs = nopObserver{}
	}
	unary := []grpc.UnaryServerInterceptor{
		func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
			defer func() {
				if r := recover(); r != nil {
					obs.Panicked()
					log.ErrorContext(ctx, "panic in handler", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
					err = ToStatus(ctx, log, errs.New(errs.Internal, "panic"))
				}
			}()
			return h(ctx, req)
		},
		func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			ctx, echoed := withRequestID(ctx)
			resp, err := h(ctx, req)
			if err != nil && !echoed {
				_ = grpc.SetHeader(ctx, metadata.Pairs(RequestIDHeader, RequestID(ctx)))
			}
			return resp, err
		},
		func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			start := time.Now()
			resp, err := h(ctx, req)
			logCall(ctx, log, info.FullMethod, start, err)
			return resp, err
		},
	}
	stream := []grpc.StreamServerInterceptor{
		func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
			defer func() {
				if r := recover(); r != nil {
					obs.Panicked()
					log.ErrorContext(ss.Context(), "panic in handler", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
					err = status.Error(codes.Internal, "internal error")
				}
			}()
			return h(srv, ss)
		},
		func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			ctx, _ := withRequestID(ss.Context())
			return h(srv, &contextStream{ServerStream: ss, ctx: ctx})
		},
		func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			start := time.Now()
			err := h(srv, ss)
			logCall(ss.Context(), log, info.FullMethod, start, err)
			return err
		},
	}
	if o.Metrics != nil {
		unary = append(unary, o.Metrics.UnaryServerInterceptor())
		stream = append(stream, o.Metrics.StreamServerInterceptor())
	}
	if o.CallTimeout > 0 {
		unary = append(unary, func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if public(info.FullMethod) {
				return h(ctx, req)
			}
			tctx := withCallDeadline(ctx, o.CallTimeout)
			defer tctx.release()
			resp, err := h(tctx, req)
			return resp, timeoutError(ctx, tctx, log, err)
		})
	}
	unary = append(unary, o.Auth.Unary)
	stream = append(stream, o.Auth.Stream)
	return unary, stream
}

// timeoutError turns a call that ran out of the server's own time bound (not the caller's) into
// DATABASE_UNAVAILABLE: the only thing a warm or cold resolution waits on is PostgreSQL.
func timeoutError(caller, bounded context.Context, log *slog.Logger, err error) error {
	if err == nil || caller.Err() != nil || !errors.Is(bounded.Err(), context.DeadlineExceeded) {
		return err
	}
	if c := status.Code(err); c != codes.DeadlineExceeded && c != codes.Unavailable && c != codes.Canceled {
		return err
	}
	return ToStatus(caller, log, errs.Wrap(err, errs.DatabaseUnavailable, "the database did not answer in time; try again"))
}

// logCall logs one line per call: failures at warn or error, successes at debug; health checks
// only when they fail, so probes do not flood the log.
func logCall(ctx context.Context, log *slog.Logger, method string, start time.Time, err error) {
	if err == nil && (strings.HasPrefix(method, "/grpc.health.v1.Health/") || !log.Enabled(ctx, slog.LevelDebug)) {
		return
	}
	st := status.Convert(err)
	// Successful calls are the audit trail's to record; the log keeps what needs attention.
	level := slog.LevelDebug
	switch st.Code() {
	case codes.OK:
	case codes.Canceled:
		level = slog.LevelInfo
	case codes.Internal, codes.Unavailable, codes.Unknown, codes.DataLoss:
		level = slog.LevelError
	default:
		level = slog.LevelWarn
	}
	if !log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("request_id", RequestID(ctx)),
		slog.String("method", method),
		slog.String("code", st.Code().String()),
		slog.Duration("duration", time.Since(start)),
	}
	if err != nil {
		attrs = append(attrs, slog.String("message", st.Message()))
		for _, d := range st.Details() {
			if info, ok := d.(interface{ GetReason() string }); ok {
				attrs = append(attrs, slog.String("reason", info.GetReason()))
			}
		}
	}
	log.LogAttrs(ctx, level, "call", attrs...)
}

type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextStream) Context() context.Context { return s.ctx }
