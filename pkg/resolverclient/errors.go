package resolverclient

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Domain is the google.rpc.ErrorInfo domain of resolverd's errors. A status whose ErrorInfo has
// another domain (or none) becomes an *Error with an empty Reason.
const Domain = "resolver.v1"

// FieldViolation names a request field the server refused and why (google.rpc.BadRequest).
type FieldViolation struct {
	Field       string
	Description string
}

// Error is every error Resolve returns: the gRPC code and, when resolverd produced it, the reason
// of docs/CONTRACT.md §4 with its metadata. Match reasons with errors.Is and the sentinels below
// (errors.Is(err, resolverclient.ErrUserKeyRequired)); read the details with errors.As.
//
// Messages and metadata come from the server, which never puts a secret in them; the client adds
// nothing secret either (not the token, not an API key).
type Error struct {
	// Code is the canonical gRPC code.
	Code codes.Code
	// Reason is ErrorInfo.reason (e.g. "CHAT_NOT_FOUND"); empty when the status did not come from
	// resolverd (a transport failure, a proxy, a cancelled call).
	Reason string
	// Message is the status message.
	Message string
	// Metadata is ErrorInfo.metadata: the ids and the field involved ("chat_id", "scope", ...).
	Metadata map[string]string
	// FieldViolations are the google.rpc.BadRequest violations of an INVALID_ARGUMENT.
	FieldViolations []FieldViolation
	// RetryAfter is google.rpc.RetryInfo's delay (RATE_LIMITED sets it); zero when absent.
	RetryAfter time.Duration
	// Attempts is how many calls Resolve made before giving up.
	Attempts int

	// Previous is the server's answer to the attempt before, when the caller's context ended
	// during a retry: errors.Is matches it too, so an outage that outlasted the deadline still
	// matches ErrUnavailable and ErrDatabaseUnavailable.
	Previous *Error

	// cause is the local context's error when the caller's context (or the default deadline)
	// ended the call, so that errors.Is(err, context.Canceled) holds.
	cause error
}

// Error renders one line: the reason (or the code when there is none), the message, the metadata
// sorted by key, the retry delay when the server gave one, and the attempts when there were several.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Reason != "" {
		b.WriteString(e.Reason)
	} else {
		b.WriteString(e.Code.String())
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(strings.Join(strings.Fields(e.Message), " "))
	}
	if len(e.Metadata) > 0 {
		keys := make([]string, 0, len(e.Metadata))
		for k := range e.Metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString(" (")
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s=%s", k, e.Metadata[k])
		}
		b.WriteString(")")
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (%d attempts)", e.Attempts)
	}
	return b.String()
}

// Unwrap returns the local context's error when the context ended the call, and the previous
// attempt's answer when that ended during a retry.
func (e *Error) Unwrap() []error {
	var out []error
	if e.cause != nil {
		out = append(out, e.cause)
	}
	if e.Previous != nil {
		out = append(out, e.Previous)
	}
	return out
}

// Is matches the sentinels of this package: a reason sentinel matches an error of that reason,
// ErrUnavailable matches every codes.Unavailable (DATABASE_UNAVAILABLE and transport failures
// alike). context.Canceled and context.DeadlineExceeded match (through Unwrap) only when the
// caller's own context ended the call — not a status with those codes from a server or proxy,
// nor a call on a closed client.
func (e *Error) Is(target error) bool {
	if t, ok := target.(*sentinel); ok {
		if t.reason == "" {
			return e.Code == t.code
		}
		return e.Reason == t.reason
	}
	return false
}

// Scope is the scope the caller's token lacks, for MISSING_SCOPE (metadata["scope"]).
func (e *Error) Scope() string { return e.Metadata["scope"] }

// Temporary reports whether trying again later may succeed: UNAVAILABLE (which Resolve already
// retried), RATE_LIMITED and CREDENTIALS_COOLING_DOWN (which it does not retry; wait RetryAfter).
// Other RESOURCE_EXHAUSTED errors (gRPC's own message-size limits) are not: the same call would
// fail again.
func (e *Error) Temporary() bool {
	return e.Code == codes.Unavailable || e.Is(ErrRateLimited) || e.Is(ErrCredentialsCoolingDown)
}

// sentinel is the type of the Err* values: compare with errors.Is, never with ==.
type sentinel struct {
	code   codes.Code
	reason string
}

func (s *sentinel) Error() string {
	if s.reason == "" {
		return s.code.String()
	}
	return s.reason
}

// Sentinels for errors.Is, one per reason of docs/CONTRACT.md §4 plus RATE_LIMITED, and ErrUnavailable
// for any UNAVAILABLE.
var (
	ErrInvalidArgument        error = &sentinel{codes.InvalidArgument, "INVALID_ARGUMENT"}
	ErrUnauthenticated        error = &sentinel{codes.Unauthenticated, "UNAUTHENTICATED"}
	ErrMissingScope           error = &sentinel{codes.PermissionDenied, "MISSING_SCOPE"}
	ErrChatNotFound           error = &sentinel{codes.NotFound, "CHAT_NOT_FOUND"}
	ErrUserNotFound           error = &sentinel{codes.NotFound, "USER_NOT_FOUND"}
	ErrModelConfigNotFound    error = &sentinel{codes.NotFound, "MODEL_CONFIG_NOT_FOUND"}
	ErrNotFound               error = &sentinel{codes.NotFound, "NOT_FOUND"}
	ErrModelConfigDisabled    error = &sentinel{codes.FailedPrecondition, "MODEL_CONFIG_DISABLED"}
	ErrProviderNotFound       error = &sentinel{codes.FailedPrecondition, "PROVIDER_NOT_FOUND"}
	ErrProviderDisabled       error = &sentinel{codes.FailedPrecondition, "PROVIDER_DISABLED"}
	ErrNoUsableModelConfig    error = &sentinel{codes.FailedPrecondition, "NO_USABLE_MODEL_CONFIG"}
	ErrUserKeyRequired        error = &sentinel{codes.FailedPrecondition, "USER_KEY_REQUIRED"}
	ErrNoCredentials          error = &sentinel{codes.FailedPrecondition, "NO_CREDENTIALS"}
	ErrAlreadyExists          error = &sentinel{codes.AlreadyExists, "ALREADY_EXISTS"}
	ErrDatabaseUnavailable    error = &sentinel{codes.Unavailable, "DATABASE_UNAVAILABLE"}
	ErrInternal               error = &sentinel{codes.Internal, "INTERNAL"}
	ErrRateLimited            error = &sentinel{codes.ResourceExhausted, "RATE_LIMITED"}
	ErrSecretUnreadable       error = &sentinel{codes.DataLoss, "SECRET_UNREADABLE"}
	ErrProviderHostNotAllowed error = &sentinel{codes.FailedPrecondition, "PROVIDER_HOST_NOT_ALLOWED"}
	ErrUnknownIdentity        error = &sentinel{codes.Unauthenticated, "UNKNOWN_IDENTITY"}
	ErrUserKeyInvalid         error = &sentinel{codes.FailedPrecondition, "USER_KEY_INVALID"}
	// ErrCredentialsCoolingDown: every central key of the provider is cooling down; RetryAfter
	// says when the first comes back.
	ErrCredentialsCoolingDown error = &sentinel{codes.ResourceExhausted, "CREDENTIALS_COOLING_DOWN"}

	// ErrUnavailable matches every UNAVAILABLE: DATABASE_UNAVAILABLE and transport failures.
	ErrUnavailable error = &sentinel{codes.Unavailable, ""}
)

// Sentinels lists every reason sentinel (not ErrUnavailable), for tables and documentation.
func Sentinels() []error {
	return []error{
		ErrInvalidArgument, ErrUnauthenticated, ErrMissingScope, ErrChatNotFound, ErrUserNotFound,
		ErrModelConfigNotFound, ErrNotFound, ErrModelConfigDisabled, ErrProviderNotFound,
		ErrProviderDisabled, ErrNoUsableModelConfig, ErrUserKeyRequired, ErrNoCredentials,
		ErrAlreadyExists, ErrDatabaseUnavailable, ErrInternal, ErrRateLimited, ErrSecretUnreadable,
		ErrProviderHostNotAllowed, ErrUnknownIdentity, ErrUserKeyInvalid, ErrCredentialsCoolingDown,
	}
}

// ownDeadlineSlack is how close to the caller's deadline a DEADLINE_EXCEEDED from the other side
// counts as that deadline (transit and timer skew), rather than a proxy's or server's own timeout.
const ownDeadlineSlack = 100 * time.Millisecond

// answeredByResolverd reports whether err is resolverd's own answer (a status with its
// ErrorInfo): that answer stands even if the caller's context ended as it arrived.
func answeredByResolverd(err error) bool {
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == Domain {
			return true
		}
	}
	return false
}

// fromStatus turns what a gRPC call returned into an *Error. ctx is the call's context: when it has
// ended, the error says so (Canceled or DeadlineExceeded) whatever the transport reported.
func fromStatus(ctx context.Context, err error) *Error {
	cerr := ctx.Err()
	if cerr == nil && status.Code(err) == codes.DeadlineExceeded && !answeredByResolverd(err) {
		// gRPC sends the caller's deadline along (grpc-timeout), so the server can end the call a
		// moment before the local timer fires: that is still the caller's own deadline.
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < ownDeadlineSlack {
			cerr = context.DeadlineExceeded
		}
	}
	if cerr != nil && !answeredByResolverd(err) {
		code := codes.Canceled
		if errors.Is(cerr, context.DeadlineExceeded) {
			code = codes.DeadlineExceeded
		}
		return &Error{Code: code, Message: cerr.Error(), cause: cerr}
	}
	st := status.Convert(err)
	e := &Error{Code: st.Code(), Message: st.Message()}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			if d.GetDomain() == Domain {
				e.Reason = d.GetReason()
				e.Metadata = d.GetMetadata()
			}
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				e.FieldViolations = append(e.FieldViolations, FieldViolation{Field: v.GetField(), Description: v.GetDescription()})
			}
		case *errdetails.RetryInfo:
			if d.GetRetryDelay() != nil {
				e.RetryAfter = d.GetRetryDelay().AsDuration()
			}
		}
	}
	return e
}
