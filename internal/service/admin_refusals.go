package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/transport"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// Every AdminService call by an authenticated caller that fails is recorded in the audit trail
// (docs/CONTRACT.md §7.4), with the caller's token, the method and the reason as its outcome:
// refusals for a missing scope — by the authenticator (RecordRefusal) or by the store, such as a
// token:write token granting `*` — invalid arguments, missing or existing rows, failed
// preconditions, and failures of the database itself. Successful changes are recorded by the
// change's own transaction (internal/db); successful reads are not recorded.
//
// A failed call has no transaction that commits, so its record goes through the batching audit
// writer, like a resolution's: it is chained like every record, costs no transaction of its own
// (a flood of refused calls cannot turn into a flood of transactions), and fails closed — when the
// writer cannot take the record, the caller gets DATABASE_UNAVAILABLE instead of the refusal, so
// no answer, not even a NOT_FOUND, leaves without its record. Calls without a valid token are not
// recorded (anyone could fill the trail with them; resolverd_unauthenticated_calls_total counts
// them), nor calls over the rate limit (their volume is the problem; resolverd_rate_limited_total).

// maxRecordedValue bounds each request value a refusal's record keeps, in characters.
const maxRecordedValue = 256

// RecordFailures is a unary interceptor, the innermost (after authentication), that records the
// AdminService calls whose handler failed.
func (s *Admin) RecordFailures(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := h(ctx, req)
	if err == nil || s.audit == nil || !isAdminMethod(info.FullMethod) {
		return resp, err
	}
	st := status.Convert(err)
	outcome, md, fields := outcomeOfStatus(st)
	if rerr := s.recordFailure(ctx, info.FullMethod, req, outcome, md, fields); rerr != nil {
		s.log.WarnContext(ctx, "audit: a failed admin call could not be recorded; answering DATABASE_UNAVAILABLE instead",
			"request_id", transport.RequestID(ctx), "method", info.FullMethod, "outcome", outcome, "error", rerr)
		return nil, transport.ToStatus(ctx, s.log, rerr)
	}
	return resp, err
}

// RecordRefusal records an AdminService call the authenticator refused once it knew the caller
// (a token without the method's scope). The refusal stands whether or not it could be recorded.
func (s *Admin) RecordRefusal(ctx context.Context, method string, req any, err error) {
	if s.audit == nil || !isAdminMethod(method) || errs.ReasonOf(err) == errs.RateLimited {
		return
	}
	if _, ok := rbac.FromContext(ctx); !ok {
		return
	}
	var md map[string]string
	var fields []string
	var e *errs.Error
	if errors.As(err, &e) {
		md = e.Metadata
		for _, v := range e.Violations {
			fields = append(fields, v.Field)
		}
	}
	if rerr := s.recordFailure(ctx, method, req, outcomeOf(err), md, fields); rerr != nil {
		s.log.WarnContext(ctx, "audit: a refused call could not be recorded", "request_id", transport.RequestID(ctx), "method", method, "error", rerr)
	}
}

func isAdminMethod(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, "/"+resolverv1.AdminService_ServiceDesc.ServiceName+"/")
}

// outcomeOfStatus is the reason of a failed call's status (its ErrorInfo), its metadata and the
// fields its BadRequest names.
func outcomeOfStatus(st *status.Status) (string, map[string]string, []string) {
	outcome := ""
	var md map[string]string
	var fields []string
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			outcome, md = d.GetReason(), d.GetMetadata()
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	if outcome == "" {
		switch st.Code() {
		case codes.Canceled:
			outcome = "CANCELLED"
		case codes.DeadlineExceeded:
			outcome = "DEADLINE_EXCEEDED"
		default:
			outcome = string(errs.Internal)
		}
	}
	return outcome, md, fields
}

// recordFailure hands the record of a failed call to the audit writer.
func (s *Admin) recordFailure(ctx context.Context, fullMethod string, req any, outcome string, md map[string]string, fields []string) error {
	d := map[string]string{"request_id": transport.RequestID(ctx)}
	for k, v := range md {
		d[clean(k)] = clean(v)
	}
	if len(fields) > 0 {
		d["invalid_fields"] = clean(strings.Join(fields, " "))
	}
	requestFields(d, req)
	e := db.AuditEvent{OccurredAt: time.Now(), Action: fullMethod[strings.LastIndex(fullMethod, "/")+1:], Outcome: outcome, Details: d}
	if p, ok := rbac.FromContext(ctx); ok {
		e.TokenID, e.Subject = p.TokenID, p.Subject
	}
	return s.audit.Record(e)
}

// requestFields adds the request's fields to d as "request.<field>", except the secrets (fields
// marked debug_redact, such as api_key), page tokens, and the credentials a refused base_url
// carried (withoutCredentials): what the caller tried, never a secret.
func requestFields(d map[string]string, req any) {
	m, ok := req.(proto.Message)
	if !ok || m == nil {
		return
	}
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if opts, ok := fd.Options().(*descriptorpb.FieldOptions); (ok && opts.GetDebugRedact()) || fd.Name() == "page_token" {
			return true
		}
		value := render(fd, v)
		if fd.Name() == "base_url" {
			value = withoutCredentials(value)
		}
		d["request."+string(fd.Name())] = clean(value)
		return true
	})
}

// withoutCredentials drops from a URL the parts that carry credentials when someone pastes them
// there — the user info of its authority, its query (Azure's ?api-key=) and its fragment — keeping
// the rest. base_url refuses all three (docs/CONTRACT.md §3.6), so a record of the refused call
// keeps what was tried, not the key. It works on the text, not a parse: the value was refused and
// may not parse. When in doubt it keeps less: a value that is not an http(s) URL at all (a key
// pasted into the wrong field is the likeliest) is not recorded; user info ends at the last @
// before any ? or #, wherever a / falls (a password may hold one: base64, AWS secret keys); and an
// @ after a ? or # (user info holding one of them, or a query holding an @: the text cannot tell)
// leaves nothing of the address but its scheme.
func withoutCredentials(u string) string {
	u = strings.TrimSpace(u)
	if lower := strings.ToLower(u); !strings.HasPrefix(lower, "http://") && !strings.HasPrefix(lower, "https://") {
		return "(redacted: not an http(s) URL)"
	}
	i := strings.Index(u, "//") + 2
	prefix, rest := u[:i], u[i:]
	head, tail := rest, ""
	if j := strings.IndexAny(rest, "?#"); j >= 0 {
		head, tail = rest[:j], "?(redacted)"
	}
	switch {
	case strings.Contains(head, "@"):
		head = "(redacted)@" + head[strings.LastIndexByte(head, '@')+1:]
	case strings.Contains(rest[len(head):], "@"):
		head = "(redacted)"
	}
	return prefix + head + tail
}

func render(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch {
	case fd.IsList():
		l := v.List()
		parts := make([]string, l.Len())
		for i := range parts {
			parts[i] = renderOne(fd, l.Get(i))
		}
		return strings.Join(parts, " ")
	case fd.IsMap():
		return "(a map)"
	}
	return renderOne(fd, v)
}

func renderOne(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch fd.Kind() {
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
		return fmt.Sprint(v.Enum())
	case protoreflect.MessageKind, protoreflect.GroupKind:
		b, err := protojson.Marshal(v.Message().Interface())
		if err != nil {
			return "(unreadable)"
		}
		return string(b)
	case protoreflect.BytesKind:
		return fmt.Sprintf("(%d bytes)", len(v.Bytes()))
	}
	return v.String()
}

// clean makes s storable and bounded: valid UTF-8 without NUL (which jsonb refuses), at most
// maxRecordedValue characters.
func clean(s string) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
	if utf8.RuneCountInString(s) > maxRecordedValue {
		r := []rune(s)
		s = string(r[:maxRecordedValue]) + "…"
	}
	return s
}
