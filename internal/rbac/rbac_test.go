package rbac_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/rbac"
)

// TestKnownIsSpec: the scope names are fixed by docs/CONTRACT.md §3.
func TestKnownIsSpec(t *testing.T) {
	spec := []string{"chat:read", "chat:write", "model_config:read", "model_config:write", "ai_provider:read",
		"ai_provider:write", "ai_provider_key:read", "ai_provider_key:write", "user_ai_provider_key:read",
		"user_ai_provider_key:write", "user:write", "token:write", "audit:read", "credential:report", "*"}
	var known []string
	for _, s := range rbac.Known {
		known = append(known, string(s))
	}
	slices.Sort(spec)
	slices.Sort(known)
	if !slices.Equal(known, spec) {
		t.Errorf("Known = %v, docs/CONTRACT.md §3 = %v", known, spec)
	}
}

// TestWorkerScopes: docs/CONTRACT.md §8's worker.token holds exactly the five read scopes ResolveModel
// needs and credential:report (section 3.2).
func TestWorkerScopes(t *testing.T) {
	want := []rbac.Scope{rbac.AIProviderRead, rbac.AIProviderKeyRead, rbac.ChatRead, rbac.CredentialReport, rbac.ModelConfigRead, rbac.UserAIProviderKeyRead}
	got := slices.Clone(rbac.WorkerScopes)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("WorkerScopes = %v, want %v", got, want)
	}
}

func TestParseScopes(t *testing.T) {
	cases := []struct {
		name    string
		in      []string
		want    []rbac.Scope
		wantErr bool
	}{
		{"none", nil, []rbac.Scope{}, false},
		{"one", []string{"chat:read"}, []rbac.Scope{rbac.ChatRead}, false},
		{"star", []string{"*"}, []rbac.Scope{rbac.All}, false},
		{"sorted", []string{"token:write", "chat:read", "ai_provider:read"}, []rbac.Scope{rbac.AIProviderRead, rbac.ChatRead, rbac.TokenWrite}, false},
		{"duplicates", []string{"chat:read", "audit:read", "chat:read", "audit:read"}, []rbac.Scope{rbac.AuditRead, rbac.ChatRead}, false},
		{"every known", []string{"*", "user:write", "audit:read", "token:write", "chat:write", "chat:read", "model_config:read",
			"model_config:write", "ai_provider:read", "ai_provider:write", "ai_provider_key:read", "ai_provider_key:write",
			"user_ai_provider_key:read", "user_ai_provider_key:write", "credential:report"},
			[]rbac.Scope{rbac.All, rbac.AIProviderRead, rbac.AIProviderWrite, rbac.AIProviderKeyRead, rbac.AIProviderKeyWrite,
				rbac.AuditRead, rbac.ChatRead, rbac.ChatWrite, rbac.CredentialReport, rbac.ModelConfigRead, rbac.ModelConfigWrite, rbac.TokenWrite,
				rbac.UserWrite, rbac.UserAIProviderKeyRead, rbac.UserAIProviderKeyWrite}, false},
		{"unknown", []string{"chat:admin"}, nil, true},
		{"known and unknown", []string{"chat:read", "nope"}, nil, true},
		{"empty name", []string{""}, nil, true},
		{"upper case", []string{"CHAT:READ"}, nil, true},
		{"padded", []string{" chat:read"}, nil, true},
		{"prefix wildcard", []string{"chat:*"}, nil, true},
		{"token:read does not exist", []string{"token:read"}, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := rbac.ParseScopes(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseScopes(%q) = %v, want an error", tc.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseScopes(%q): %v", tc.in, err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("ParseScopes(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestHas(t *testing.T) {
	cases := []struct {
		name   string
		scopes []rbac.Scope
		s      rbac.Scope
		want   bool
	}{
		{"none", nil, rbac.ChatRead, false},
		{"held", []rbac.Scope{rbac.ChatRead}, rbac.ChatRead, true},
		{"read is not write", []rbac.Scope{rbac.ChatRead}, rbac.ChatWrite, false},
		{"write is not read", []rbac.Scope{rbac.ChatWrite}, rbac.ChatRead, false},
		{"key scope is not user key scope", []rbac.Scope{rbac.AIProviderKeyRead}, rbac.UserAIProviderKeyRead, false},
		{"provider scope is not key scope", []rbac.Scope{rbac.AIProviderRead}, rbac.AIProviderKeyRead, false},
		{"star holds any scope", []rbac.Scope{rbac.All}, rbac.UserAIProviderKeyWrite, true},
		{"star holds star", []rbac.Scope{rbac.All}, rbac.All, true},
		{"star among others", []rbac.Scope{rbac.ChatRead, rbac.All}, rbac.TokenWrite, true},
		{"every named scope is not star", allNamed(), rbac.All, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := (rbac.Principal{Scopes: tc.scopes}).Has(tc.s); got != tc.want {
				t.Errorf("%v Has(%s) = %v, want %v", tc.scopes, tc.s, got, tc.want)
			}
		})
	}
}

func allNamed() []rbac.Scope {
	var out []rbac.Scope
	for _, s := range rbac.Known {
		if s != rbac.All {
			out = append(out, s)
		}
	}
	return out
}

func TestPrincipalContext(t *testing.T) {
	if _, ok := rbac.FromContext(context.Background()); ok {
		t.Error("a bare context carries a principal")
	}
	p := rbac.Principal{TokenID: uuid.New(), Name: "worker", Scopes: []rbac.Scope{rbac.ChatRead}}
	got, ok := rbac.FromContext(rbac.WithPrincipal(context.Background(), p))
	if !ok || got.TokenID != p.TokenID || got.Name != p.Name || !slices.Equal(got.Scopes, p.Scopes) {
		t.Errorf("FromContext = %+v, %v; want %+v", got, ok, p)
	}
	// WithPrincipal keeps a copy: changing p afterwards changes no context.
	ctx := rbac.WithPrincipal(context.Background(), p)
	p.Name = "changed"
	if got, _ := rbac.FromContext(ctx); got.Name != "worker" {
		t.Errorf("the context's principal followed a change to the caller's copy: %+v", got)
	}
	// WithShared carries the principal itself; FromContext hands out copies, so a handler changing
	// its copy changes nothing for the calls that share it.
	shared := &rbac.Principal{TokenID: uuid.New(), Name: "shared", Scopes: []rbac.Scope{rbac.ChatRead}}
	a, b := rbac.WithShared(context.Background(), shared), rbac.WithShared(context.Background(), shared)
	mine, _ := rbac.FromContext(a)
	mine.Name = "mine"
	if other, ok := rbac.FromContext(b); !ok || other.Name != "shared" || other.TokenID != shared.TokenID || rbac.Require(b, rbac.ChatRead) != nil {
		t.Errorf("FromContext of a shared principal = %+v, %v", other, ok)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("WithShared(nil) did not panic")
			}
		}()
		rbac.WithShared(context.Background(), nil)
	}()
}

func TestRequire(t *testing.T) {
	with := func(scopes ...rbac.Scope) context.Context {
		return rbac.WithPrincipal(context.Background(), rbac.Principal{Name: "t", Scopes: scopes})
	}
	cases := []struct {
		name    string
		ctx     context.Context
		require []rbac.Scope
		reason  errs.Reason // "" for success
		scope   string      // metadata["scope"] on MISSING_SCOPE
	}{
		{"no caller", context.Background(), []rbac.Scope{rbac.ChatRead}, errs.Unauthenticated, ""},
		{"no caller, nothing required", context.Background(), nil, errs.Unauthenticated, ""},
		{"nothing required", with(), nil, "", ""},
		{"held", with(rbac.ChatRead), []rbac.Scope{rbac.ChatRead}, "", ""},
		{"missing", with(), []rbac.Scope{rbac.ChatRead}, errs.MissingScope, "chat:read"},
		{"first missing is named", with(rbac.ChatRead), []rbac.Scope{rbac.ChatRead, rbac.ModelConfigRead, rbac.AIProviderRead}, errs.MissingScope, "model_config:read"},
		{"all held", with(rbac.AIProviderRead, rbac.ModelConfigRead, rbac.ChatRead), []rbac.Scope{rbac.ChatRead, rbac.ModelConfigRead, rbac.AIProviderRead}, "", ""},
		{"star", with(rbac.All), []rbac.Scope{rbac.ChatRead, rbac.TokenWrite, rbac.All}, "", ""},
		{"star required, named held", with(allNamed()...), []rbac.Scope{rbac.All}, errs.MissingScope, "*"},
		{"write does not give read", with(rbac.ChatWrite), []rbac.Scope{rbac.ChatRead}, errs.MissingScope, "chat:read"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := rbac.Require(tc.ctx, tc.require...)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("Require(%v) = %v, want nil", tc.require, err)
				}
				return
			}
			var e *errs.Error
			if !errors.As(err, &e) {
				t.Fatalf("Require(%v) = %v, want an *errs.Error", tc.require, err)
			}
			if e.Reason != tc.reason {
				t.Fatalf("reason %s, want %s (%v)", e.Reason, tc.reason, err)
			}
			if tc.reason == errs.MissingScope && e.Metadata["scope"] != tc.scope {
				t.Errorf("metadata[scope] = %q, want %q", e.Metadata["scope"], tc.scope)
			}
		})
	}
}

func TestCanGrant(t *testing.T) {
	cases := []struct {
		name    string
		holds   []rbac.Scope
		grants  []rbac.Scope
		missing string // "" when allowed
	}{
		{"nothing", []rbac.Scope{rbac.TokenWrite}, nil, ""},
		{"its own", []rbac.Scope{rbac.TokenWrite}, []rbac.Scope{rbac.TokenWrite}, ""},
		{"a subset", []rbac.Scope{rbac.TokenWrite, rbac.ChatRead, rbac.AuditRead}, []rbac.Scope{rbac.AuditRead}, ""},
		{"star", []rbac.Scope{rbac.TokenWrite}, []rbac.Scope{rbac.All}, "*"},
		{"another scope", []rbac.Scope{rbac.TokenWrite}, []rbac.Scope{rbac.AIProviderWrite}, "ai_provider:write"},
		{"one too many", []rbac.Scope{rbac.TokenWrite, rbac.ChatRead}, []rbac.Scope{rbac.ChatRead, rbac.ChatWrite}, "chat:write"},
		{"every named scope cannot grant star", allNamed(), []rbac.Scope{rbac.All}, "*"},
		{"star grants star", []rbac.Scope{rbac.All}, []rbac.Scope{rbac.All}, ""},
		{"star grants every named scope", []rbac.Scope{rbac.All}, allNamed(), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := rbac.WithPrincipal(context.Background(), rbac.Principal{Scopes: tc.holds})
			err := rbac.CanGrant(ctx, tc.grants)
			if tc.missing == "" {
				if err != nil {
					t.Fatalf("CanGrant(%v) by %v = %v, want nil", tc.grants, tc.holds, err)
				}
				return
			}
			var e *errs.Error
			if !errors.As(err, &e) || e.Reason != errs.MissingScope {
				t.Fatalf("CanGrant(%v) by %v = %v, want MISSING_SCOPE", tc.grants, tc.holds, err)
			}
			if e.Metadata["scope"] != tc.missing {
				t.Errorf("metadata[scope] = %q, want %q", e.Metadata["scope"], tc.missing)
			}
		})
	}
	if err := rbac.CanGrant(context.Background(), []rbac.Scope{rbac.ChatRead}); errs.ReasonOf(err) != errs.Unauthenticated {
		t.Errorf("CanGrant without a caller = %v, want UNAUTHENTICATED", err)
	}
}

// TestSystemScopes: the system actors' scopes cannot be put on a token, are not part of `*`, and
// are held only by a System principal — not by a token whose row was given one with psql.
func TestSystemScopes(t *testing.T) {
	system := []rbac.Scope{rbac.TokenAuthenticate, rbac.IdentityAuthenticate, rbac.AuditAppend, rbac.AuditExpire, rbac.FingerprintKeyRead, rbac.KeyHealthRead}
	for _, s := range system {
		if !s.IsSystem() {
			t.Errorf("%s is not a system scope", s)
		}
		if _, err := rbac.ParseScopes([]string{string(s)}); err == nil {
			t.Errorf("ParseScopes accepts %s: a token could carry it", s)
		}
		if slices.Contains(rbac.Known, s) {
			t.Errorf("%s is in Known", s)
		}
		star := rbac.Principal{TokenID: uuid.New(), Scopes: []rbac.Scope{rbac.All}}
		if star.Has(s) {
			t.Errorf("`*` holds %s", s)
		}
		forged := rbac.Principal{TokenID: uuid.New(), Scopes: []rbac.Scope{s}}
		if forged.Has(s) {
			t.Errorf("a token's caller holds %s", s)
		}
		if !rbac.System("test", s).Has(s) {
			t.Errorf("a system actor given %s does not hold it", s)
		}
		if rbac.System("test", rbac.All).Has(s) {
			t.Errorf("a system actor with `*` holds %s without being given it", s)
		}
	}
	for _, s := range rbac.Known {
		if s.IsSystem() {
			t.Errorf("token scope %s counts as a system scope", s)
		}
	}
	if p := rbac.System("retention", rbac.AuditExpire); p.System != "retention" || p.Name != "system:retention" || p.TokenID != uuid.Nil {
		t.Errorf("System(...) = %+v", p)
	}
}
