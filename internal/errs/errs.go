// Package errs holds resolverd's domain errors: a reason from docs/CONTRACT.md §4, a message safe to show a
// caller, metadata naming the ids and field involved, and (kept out of the wire) the cause.
//
// Every package below the gRPC boundary returns these; internal/service turns them into a status with
// a google.rpc.ErrorInfo in one place. An error that is not an *Error reaches the caller as INTERNAL.
package errs

import (
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"time"
)

// Reason is an ErrorInfo.reason of docs/CONTRACT.md §4.
type Reason string

// The reasons of docs/CONTRACT.md §4.
const (
	InvalidArgument     Reason = "INVALID_ARGUMENT"
	Unauthenticated     Reason = "UNAUTHENTICATED"
	MissingScope        Reason = "MISSING_SCOPE"
	ChatNotFound        Reason = "CHAT_NOT_FOUND"
	UserNotFound        Reason = "USER_NOT_FOUND"
	ModelConfigNotFound Reason = "MODEL_CONFIG_NOT_FOUND"
	NotFound            Reason = "NOT_FOUND"
	ModelConfigDisabled Reason = "MODEL_CONFIG_DISABLED"
	ProviderNotFound    Reason = "PROVIDER_NOT_FOUND"
	ProviderDisabled    Reason = "PROVIDER_DISABLED"
	NoUsableModelConfig Reason = "NO_USABLE_MODEL_CONFIG"
	UserKeyRequired     Reason = "USER_KEY_REQUIRED"
	NoCredentials       Reason = "NO_CREDENTIALS"
	AlreadyExists       Reason = "ALREADY_EXISTS"
	DatabaseUnavailable Reason = "DATABASE_UNAVAILABLE"
	Internal            Reason = "INTERNAL"
	// RateLimited is not in docs/CONTRACT.md §4's table: a caller over its token's request rate gets
	// RESOURCE_EXHAUSTED with this reason and a google.rpc.RetryInfo.
	RateLimited Reason = "RATE_LIMITED"
	// SecretUnreadable: a stored secret does not open in its place (moved or edited with psql, or
	// sealed by an encryption key this replica was not given); DATA_LOSS, metadata key_id. It is
	// never served.
	SecretUnreadable Reason = "SECRET_UNREADABLE"
	// ProviderHostNotAllowed: the provider's base_url host is outside serve's
	// --allowed-provider-hosts; FAILED_PRECONDITION, an unusable-config reason like
	// PROVIDER_DISABLED, metadata provider_id and host.
	ProviderHostNotAllowed Reason = "PROVIDER_HOST_NOT_ALLOWED"
	// UnknownIdentity: the caller proved a workload identity (a verified JWT's sub, a client
	// certificate's URI SAN or common name) that no workload_identities row binds to scopes;
	// UNAUTHENTICATED, metadata subject.
	UnknownIdentity Reason = "UNKNOWN_IDENTITY"
	// UserKeyInvalid: the provider requires the chat owner's own key and a worker reported that key
	// UNAUTHORIZED (the owner has not put a new one since); FAILED_PRECONDITION, metadata
	// provider_id and key_id. A credential reason: soft overrides fall back.
	UserKeyInvalid Reason = "USER_KEY_INVALID"
	// CredentialsCoolingDown: every enabled central key of the provider is cooling down or
	// suspended, at least one cooling down; RESOURCE_EXHAUSTED with a RetryInfo of the earliest
	// cooldown's end, metadata provider_id. A credential reason: soft overrides fall back.
	CredentialsCoolingDown Reason = "CREDENTIALS_COOLING_DOWN"
)

// FieldViolation names a request field and what is wrong with it (google.rpc.BadRequest).
type FieldViolation struct {
	Field       string
	Description string
}

// Error is a domain error. Message and Metadata reach the caller, so they never hold a secret or SQL;
// the cause is only for logs.
type Error struct {
	Reason     Reason
	Message    string
	Metadata   map[string]string
	Violations []FieldViolation
	// RetryAfter, when set, tells the caller when to try again (google.rpc.RetryInfo).
	RetryAfter time.Duration
	cause      error
}

// New returns an error with the given reason and caller-facing message. kv are metadata pairs
// ("chat_id", id, ...).
func New(reason Reason, message string, kv ...string) *Error {
	e := &Error{Reason: reason, Message: message}
	if len(kv)%2 != 0 {
		panic("errs.New: odd number of metadata arguments")
	}
	for i := 0; i < len(kv); i += 2 {
		if e.Metadata == nil {
			e.Metadata = make(map[string]string, len(kv)/2)
		}
		e.Metadata[kv[i]] = kv[i+1]
	}
	return e
}

// Wrap is New with a cause kept for the log and for errors.Is/As.
func Wrap(cause error, reason Reason, message string, kv ...string) *Error {
	e := New(reason, message, kv...)
	e.cause = cause
	return e
}

// Error renders reason, message and metadata; the cause is appended so that logs carry it.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(string(e.Reason))
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
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
	if e.cause != nil {
		b.WriteString(": ")
		b.WriteString(e.cause.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.cause }

// With returns a copy of e with more metadata.
func (e *Error) With(kv ...string) *Error {
	c := *e
	c.Metadata = maps.Clone(e.Metadata)
	if c.Metadata == nil {
		c.Metadata = map[string]string{}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		c.Metadata[kv[i]] = kv[i+1]
	}
	return &c
}

// WithCause returns a copy of e that keeps cause for the log and for errors.Is/As.
func (e *Error) WithCause(cause error) *Error {
	c := *e
	c.cause = cause
	return &c
}

// Invalid returns an INVALID_ARGUMENT error with one violation per field.
func Invalid(violations ...FieldViolation) *Error {
	msg := "invalid request"
	if len(violations) > 0 {
		parts := make([]string, len(violations))
		for i, v := range violations {
			parts[i] = v.Field + ": " + v.Description
		}
		msg = "invalid request: " + strings.Join(parts, "; ")
	}
	e := New(InvalidArgument, msg)
	e.Violations = violations
	if len(violations) > 0 {
		e.Metadata = map[string]string{"field": violations[0].Field}
	}
	return e
}

// ReasonOf returns the reason of the first *Error in err's chain, or "" when there is none.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// Is reports whether err carries the given reason.
func Is(err error, reason Reason) bool { return err != nil && ReasonOf(err) == reason }
