package testenv

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// WantReason fails t unless err is a status with code and an ErrorInfo of reason in domain
// resolver.v1 (the error contract of docs/CONTRACT.md). It returns the ErrorInfo.
func WantReason(t testing.TB, err error, code codes.Code, reason string) *errdetails.ErrorInfo {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s/%s, got success", code, reason)
	}
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("want a status error, got %v", err)
	}
	info := ErrorInfo(st)
	if st.Code() != code || info == nil || info.GetReason() != reason {
		t.Fatalf("want %s/%s, got %s/%v: %s", code, reason, st.Code(), info.GetReason(), st.Message())
	}
	if info.GetDomain() != "resolver.v1" {
		t.Fatalf("ErrorInfo.domain = %q, want resolver.v1", info.GetDomain())
	}
	return info
}

// ErrorInfo returns the status's google.rpc.ErrorInfo detail, or nil.
func ErrorInfo(st *status.Status) *errdetails.ErrorInfo {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info
		}
	}
	return nil
}

// BadRequest returns the google.rpc.BadRequest detail of err's status, or nil.
func BadRequest(err error) *errdetails.BadRequest {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			return br
		}
	}
	return nil
}

// TablesSnapshot renders every row of every resolverd table (timestamps included) in a stable
// order, so a test can assert that a refused call changed nothing: compare two snapshots.
// audit_events is left out on purpose: a refused resolution is still recorded there.
func (e *Env) TablesSnapshot(t testing.TB) string {
	t.Helper()
	tables := []string{"users", "chat_model_configs", "chats", "ai_providers", "ai_provider_keys",
		"user_ai_provider_keys", "api_tokens", "resolver_settings", "encryption_keys", "workload_identities"}
	var b strings.Builder
	for _, table := range tables {
		rows, err := e.Pool.Query(context.Background(), "SELECT to_jsonb(x)::text FROM "+table+" x ORDER BY to_jsonb(x)::text")
		if err != nil {
			t.Fatalf("snapshot %s: %v", table, err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("snapshot %s: %v", table, err)
		}
		fmt.Fprintf(&b, "%s (%d rows)\n%s\n", table, len(lines), strings.Join(lines, "\n"))
	}
	return b.String()
}
