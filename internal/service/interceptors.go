package service

import (
	"context"
	"log/slog"
	"runtime/debug"
	"strings"
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

func withRequestID(ctx context.Context) context.Context {
	id := ""
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(RequestIDHeader); len(v) > 0 && saneRequestID(v[0]) {
			id = v[0]
		}
	}
	if id == "" {
		id = uuid.NewString()
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs(RequestIDHeader, id))
	return context.WithValue(ctx, requestIDKey{}, id)
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
			return h(withRequestID(ctx), req)
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
			return h(srv, &contextStream{ServerStream: ss, ctx: withRequestID(ss.Context())})
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

// logCall logs one line per call; health checks only when they fail, so probes do not flood the log.
func logCall(ctx context.Context, log *slog.Logger, method string, start time.Time, err error) {
	st := status.Convert(err)
	if err == nil && strings.HasPrefix(method, "/grpc.health.v1.Health/") {
		return
	}
	level := slog.LevelInfo
	switch st.Code() {
	case codes.OK, codes.Canceled:
	case codes.Internal, codes.Unavailable, codes.Unknown, codes.DataLoss:
		level = slog.LevelError
	default:
		level = slog.LevelWarn
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
