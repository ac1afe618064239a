package transport

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/resolverd/resolverd/internal/errs"
)

// Domain is the ErrorInfo.domain of every resolverd error.
const Domain = "resolver.v1"

// codeOf is the reason → code table of docs/CONTRACT.md §4.
var codeOf = map[errs.Reason]codes.Code{
	errs.InvalidArgument:        codes.InvalidArgument,
	errs.Unauthenticated:        codes.Unauthenticated,
	errs.MissingScope:           codes.PermissionDenied,
	errs.ChatNotFound:           codes.NotFound,
	errs.UserNotFound:           codes.NotFound,
	errs.ModelConfigNotFound:    codes.NotFound,
	errs.NotFound:               codes.NotFound,
	errs.ModelConfigDisabled:    codes.FailedPrecondition,
	errs.ProviderNotFound:       codes.FailedPrecondition,
	errs.ProviderDisabled:       codes.FailedPrecondition,
	errs.NoUsableModelConfig:    codes.FailedPrecondition,
	errs.UserKeyRequired:        codes.FailedPrecondition,
	errs.NoCredentials:          codes.FailedPrecondition,
	errs.AlreadyExists:          codes.AlreadyExists,
	errs.DatabaseUnavailable:    codes.Unavailable,
	errs.Internal:               codes.Internal,
	errs.RateLimited:            codes.ResourceExhausted,
	errs.SecretUnreadable:       codes.DataLoss,
	errs.ProviderHostNotAllowed: codes.FailedPrecondition,
	errs.UnknownIdentity:        codes.Unauthenticated,
	errs.UserKeyInvalid:         codes.FailedPrecondition,
	errs.CredentialsCoolingDown: codes.ResourceExhausted,
}

// CodeOf returns the gRPC code of a reason (Internal for an unknown one).
func CodeOf(r errs.Reason) codes.Code {
	if c, ok := codeOf[r]; ok {
		return c
	}
	return codes.Internal
}

// ToStatus is the one place where an error becomes what the caller sees: a canonical code, the
// error's caller-safe message, and an ErrorInfo (plus BadRequest field violations for invalid
// arguments). Causes never reach the wire; an unexpected error is logged with the request id and
// answered with a generic INTERNAL.
func ToStatus(ctx context.Context, log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && !hasDomainError(err) {
		return err // already a status (from an interceptor or grpc itself)
	}
	var e *errs.Error
	switch {
	case errors.As(err, &e):
		if e.Reason == errs.Internal || e.Reason == errs.DatabaseUnavailable {
			// With the request id: the caller was told the cause is in the log (docs/CONTRACT.md §14).
			log.ErrorContext(ctx, "request failed", "request_id", RequestID(ctx), "reason", string(e.Reason), "error", err)
		}
		return statusOf(e)
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "the call was cancelled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "the call's deadline passed")
	}
	log.ErrorContext(ctx, "internal error", "request_id", RequestID(ctx), "error", err)
	md := map[string]string{}
	if id := RequestID(ctx); id != "" {
		md["request_id"] = id
	}
	return statusOf(&errs.Error{Reason: errs.Internal, Message: "internal error; the server log has the details", Metadata: md})
}

func hasDomainError(err error) bool {
	var e *errs.Error
	return errors.As(err, &e)
}

func statusOf(e *errs.Error) error {
	st := status.New(CodeOf(e.Reason), e.Message)
	details := []protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: string(e.Reason), Domain: Domain, Metadata: e.Metadata}}
	if len(e.Violations) > 0 {
		br := &errdetails.BadRequest{}
		for _, v := range e.Violations {
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: v.Field, Description: v.Description})
		}
		details = append(details, br)
	}
	if e.RetryAfter > 0 {
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(e.RetryAfter)})
	}
	withDetails, err := st.WithDetails(details...)
	if err != nil {
		return st.Err()
	}
	return withDetails.Err()
}
