package dbauthz_test

import (
	"context"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/dbauthz"
	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/resolve"
)

// storedProvider is a Querier whose UpdateProvider applies the mutation to a stored row, as the
// database does inside its transaction, so the scope check that depends on the change runs.
type storedProvider struct {
	recorder
	row db.Provider
}

func (s *storedProvider) UpdateProvider(_ context.Context, _ uuid.UUID, mutate func(*db.Provider) error) (db.Provider, error) {
	s.note("UpdateProvider")
	p := s.row
	if err := mutate(&p); err != nil {
		return db.Provider{}, err
	}
	return p, nil
}

// TestProviderBaseURLNeedsKeyScopes: docs/CONTRACT.md §3.3 — base_url decides where workers send a
// provider's keys (and, for bedrock, their ambient credentials), so creating a provider with one,
// or changing it, needs ai_provider_key:read and user_ai_provider_key:read besides
// ai_provider:write; the empty base_url (the SDK's default) and changes that keep it need
// ai_provider:write alone.
func TestProviderBaseURLNeedsKeyScopes(t *testing.T) {
	const stored, other = "https://api.openai.com/v1", "https://collector.example.net/v1"
	writer := []rbac.Scope{rbac.AIProviderWrite}
	keyReader := []rbac.Scope{rbac.AIProviderWrite, rbac.AIProviderKeyRead, rbac.UserAIProviderKeyRead}
	cases := []struct {
		name    string
		holds   []rbac.Scope
		create  bool   // CreateProvider, else UpdateProvider of a row whose base_url is stored
		baseURL string // the new base_url
		missing rbac.Scope
	}{
		{"create without base_url", writer, true, "", ""},
		{"create with base_url, writer", writer, true, other, rbac.AIProviderKeyRead},
		{"create with base_url, central key reader", []rbac.Scope{rbac.AIProviderWrite, rbac.AIProviderKeyRead}, true, other, rbac.UserAIProviderKeyRead},
		{"create with base_url, user key reader", []rbac.Scope{rbac.AIProviderWrite, rbac.UserAIProviderKeyRead}, true, other, rbac.AIProviderKeyRead},
		{"create with base_url, key reader", keyReader, true, other, ""},
		{"create with base_url, star", []rbac.Scope{rbac.All}, true, other, ""},
		{"create with base_url, key reads without write", []rbac.Scope{rbac.AIProviderKeyRead, rbac.UserAIProviderKeyRead}, true, other, rbac.AIProviderWrite},
		{"update keeping base_url, writer", writer, false, stored, ""},
		{"update to another base_url, writer", writer, false, other, rbac.AIProviderKeyRead},
		{"update to the empty base_url, writer", writer, false, "", rbac.AIProviderKeyRead},
		{"update to another base_url, key reader", keyReader, false, other, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := &storedProvider{row: db.Provider{Provider: resolve.Provider{ID: uuid.New(), Type: "bedrock", Name: "b", BaseURL: stored, Enabled: true}}}
			s := dbauthz.New(q)
			ctx := as(tc.holds...)
			var err error
			if tc.create {
				_, err = s.CreateProvider(ctx, resolve.Provider{ID: uuid.New(), Type: "bedrock", Name: "b", BaseURL: tc.baseURL, Enabled: true})
			} else {
				_, err = s.UpdateProvider(ctx, q.row.ID, func(p *db.Provider) error { p.BaseURL = tc.baseURL; return nil })
			}
			if tc.missing != "" {
				wantMissingScope(t, err, tc.missing)
				if tc.create && len(q.calls) != 0 {
					t.Errorf("a refused create reached the database: %v", q.calls)
				}
				return
			}
			if err != nil {
				t.Fatalf("with %v: %v", tc.holds, err)
			}
			want := "UpdateProvider"
			if tc.create {
				want = "CreateProvider"
			}
			if !slices.Equal(q.calls, []string{want}) {
				t.Errorf("Querier calls = %v, want [%s]", q.calls, want)
			}
		})
	}
}
