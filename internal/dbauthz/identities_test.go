package dbauthz_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/dbauthz"
	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/rbac"
)

func (r *recorder) PutWorkloadIdentity(_ context.Context, _ string, scopes []string, _ string, allowed func([]string) error) (db.WorkloadIdentity, bool, error) {
	if r.previous != nil {
		if err := allowed(r.previous); err != nil {
			return db.WorkloadIdentity{}, false, err
		}
	}
	r.note("PutWorkloadIdentity")
	r.scopes = scopes
	return db.WorkloadIdentity{}, r.previous == nil, nil
}

func (r *recorder) DeleteWorkloadIdentity(_ context.Context, _ string, allowed func([]string) error) error {
	if r.previous != nil {
		if err := allowed(r.previous); err != nil {
			return err
		}
	}
	r.note("DeleteWorkloadIdentity")
	return nil
}

func (r *recorder) ListWorkloadIdentities(context.Context, db.Page[db.WorkloadIdentityPos]) ([]db.WorkloadIdentity, error) {
	r.note("ListWorkloadIdentities")
	return nil, nil
}

func (r *recorder) WorkloadIdentity(context.Context, string) (db.WorkloadIdentity, bool, error) {
	r.note("WorkloadIdentity")
	return db.WorkloadIdentity{}, false, nil
}

// TestWorkloadIdentityGrants: binding a subject needs token:write and every scope it grants; when
// the subject is bound already, replacing or deleting the binding also needs every scope it
// carries (docs/CONTRACT.md §3.4, as for tokens).
func TestWorkloadIdentityGrants(t *testing.T) {
	s := func(scopes ...rbac.Scope) []rbac.Scope { return scopes }
	cases := []struct {
		holds, grants []rbac.Scope
		previous      []string   // the stored binding's scopes; nil: none
		missing       rbac.Scope // "" when the call must reach the database
	}{
		{s(rbac.TokenWrite), s(rbac.TokenWrite), nil, ""},
		{s(rbac.TokenWrite), s(rbac.ChatRead), nil, rbac.ChatRead},
		{s(rbac.TokenWrite), s(rbac.All), nil, rbac.All},
		{s(rbac.TokenWrite, rbac.ChatRead), s(rbac.ChatRead), []string{"chat:read"}, ""},
		{s(rbac.TokenWrite, rbac.ChatRead), s(rbac.ChatRead), []string{"chat:read", "ai_provider_key:read"}, rbac.AIProviderKeyRead},
		{s(rbac.TokenWrite, rbac.ChatRead), s(rbac.ChatRead), []string{"*"}, rbac.All},
		{s(rbac.All), rbac.WorkerScopes, []string{"*"}, ""},
		{s(rbac.ChatRead), s(rbac.ChatRead), nil, rbac.TokenWrite},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%v grants %v over %v", tc.holds, tc.grants, tc.previous), func(t *testing.T) {
			rec := &recorder{previous: tc.previous}
			_, _, err := dbauthz.New(rec).PutWorkloadIdentity(as(tc.holds...), "cn:worker", tc.grants, "")
			if tc.missing != "" {
				wantMissingScope(t, err, tc.missing)
				if len(rec.calls) != 0 {
					t.Fatalf("the change went through: %v", rec.calls)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := make([]string, len(tc.grants))
			for i, sc := range tc.grants {
				want[i] = string(sc)
			}
			if !slices.Equal(rec.calls, []string{"PutWorkloadIdentity"}) || !slices.Equal(rec.scopes, want) {
				t.Errorf("Querier got calls %v scopes %v, want PutWorkloadIdentity with %v", rec.calls, rec.scopes, want)
			}
		})
	}
	for _, tc := range []struct {
		holds    []rbac.Scope
		previous []string
		missing  rbac.Scope
	}{
		{s(rbac.TokenWrite), []string{"chat:read"}, rbac.ChatRead},
		{s(rbac.TokenWrite, rbac.ChatRead), []string{"chat:read"}, ""},
		{s(rbac.TokenWrite, rbac.ChatRead), []string{"*"}, rbac.All},
	} {
		rec := &recorder{previous: tc.previous}
		err := dbauthz.New(rec).DeleteWorkloadIdentity(as(tc.holds...), "cn:worker")
		if tc.missing != "" {
			wantMissingScope(t, err, tc.missing)
			continue
		}
		if err != nil || !slices.Equal(rec.calls, []string{"DeleteWorkloadIdentity"}) {
			t.Errorf("%v deleting a binding of %v: %v (calls %v)", tc.holds, tc.previous, err, rec.calls)
		}
	}
}

// TestAnExpiringCallerCannotBind: a binding never expires, so a caller whose credential does (a
// token with a TTL, a JWT or a certificate, which carry their expiry) can neither make nor change
// one — through a second identity it controls it would keep its scopes past its own expiry — but
// may still delete one (that outlives nothing).
func TestAnExpiringCallerCannotBind(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	ctx := rbac.WithPrincipal(context.Background(), rbac.Principal{TokenID: uuid.New(), Name: "expiring", Scopes: []rbac.Scope{rbac.All}, ExpiresAt: &exp})
	for _, previous := range [][]string{nil, {"chat:read"}} {
		rec := &recorder{previous: previous}
		_, _, err := dbauthz.New(rec).PutWorkloadIdentity(ctx, "system:serviceaccount:x:y", []rbac.Scope{rbac.ChatRead}, "")
		if !errs.Is(err, errs.InvalidArgument) {
			t.Fatalf("an expiring caller binding a subject (previous %v): %v, want INVALID_ARGUMENT", previous, err)
		}
		if len(rec.calls) != 0 {
			t.Fatalf("the change went through: %v", rec.calls)
		}
	}
	rec := &recorder{previous: []string{"chat:read"}}
	if err := dbauthz.New(rec).DeleteWorkloadIdentity(ctx, "system:serviceaccount:x:y"); err != nil || !slices.Equal(rec.calls, []string{"DeleteWorkloadIdentity"}) {
		t.Fatalf("an expiring caller deleting a binding: %v (calls %v)", err, rec.calls)
	}
}
