package service

import (
	"context"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/resolverd/resolverd/internal/errs"
)

// RequestIDHeader carries a request id in and out; a caller's id is kept when it is sane.
const RequestIDHeader = "x-request-id"

type requestIDKey struct{}

// RequestID returns the id of the request being served, "" outside one.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// withRequestID names the call: the caller's x-request-id when it sent a sane one (echoed back),
// else a new id, sent back only when the call fails (see unaryRequestID) — the id is what an
// operator needs to find a failure in the log.
func withRequestID(ctx context.Context) (context.Context, bool) {
	if v := metadata.ValueFromIncomingContext(ctx, RequestIDHeader); len(v) > 0 && saneRequestID(v[0]) {
		_ = grpc.SetHeader(ctx, metadata.Pairs(RequestIDHeader, v[0]))
		return context.WithValue(ctx, requestIDKey{}, v[0]), true
	}
	return context.WithValue(ctx, requestIDKey{}, newRequestID()), false
}

// requestIDPrefix makes this process's ids unique across replicas and restarts; a counter makes
// them unique within it, without a system call per request (uuid.New reads crypto/rand).
var (
	requestIDPrefix = strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
	requestIDSeq    atomic.Uint64
)

func newRequestID() string {
	return requestIDPrefix + "-" + strconv.FormatUint(requestIDSeq.Add(1), 36)
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

// Interceptors returns the chain in the order of STYLE.md: recovery (outermost) → request id →
// logging → authentication → handler.
func Interceptors(log *slog.Logger, auth *Authenticator) ([]grpc.UnaryServerInterceptor, []grpc.StreamServerInterceptor) {
	unary := []grpc.UnaryServerInterceptor{
		func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
			defer func() {
				if r := recover(); r != nil {
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
		auth.Unary,
	}
	stream := []grpc.StreamServerInterceptor{
		func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
			defer func() {
				if r := recover(); r != nil {
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
		auth.Stream,
	}
	return unary, stream
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
