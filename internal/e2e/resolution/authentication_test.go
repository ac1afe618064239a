package resolution_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/resolverd/resolverd/internal/apitoken"
	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// TestResolveE2EAuthentication: missing, malformed, unknown, revoked and expired tokens are
// UNAUTHENTICATED, and a refused call changes nothing.
func TestResolveE2EAuthentication(t *testing.T) {
	t.Parallel()
	w := reNew(t, testenv.Options{})
	s := w.reSetup("openai", reDisabled)
	k := w.central(s.p.Id)
	worker := make([]string, len(rbac.WorkerScopes))
	for i, sc := range rbac.WorkerScopes {
		worker[i] = string(sc)
	}
	mint := func(name string, ttl int64) *resolverv1.CreateTokenResponse {
		t.Helper()
		tok, err := w.Admin.CreateToken(w.AsAdmin(), &resolverv1.CreateTokenRequest{Name: name, Scopes: worker, TtlSeconds: ttl})
		if err != nil {
			t.Fatal(err)
		}
		w.keys.mu.Lock() // a token is a secret too: it must not reach an error or the log
		w.keys.list = append(w.keys.list, tok.GetToken())
		w.keys.mu.Unlock()
		res, err := w.call(w.As(tok.GetToken()), s.chat.Id, "", reChat)
		reOK(t, res, err, reWant{config: s.cfg, provider: s.p, cred: k, requested: s.cfg.Id})
		return tok
	}
	short := mint("re-short-lived", 4) // long enough for its first call on a slow machine
	revoked := mint("re-revoked", 0)
	expired := mint("re-expired-by-psql", 0)
	if _, err := w.Admin.RevokeToken(w.AsAdmin(), &resolverv1.RevokeTokenRequest{Id: revoked.GetId()}); err != nil {
		t.Fatal(err)
	}
	w.psql(`UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = $1`, expired.GetId())
	unknown, _ := apitoken.New()
	time.Sleep(time.Until(short.GetExpiresAt().AsTime().Add(200 * time.Millisecond)))
	before := w.TablesSnapshot(t)

	with := func(value string) context.Context {
		return metadata.AppendToOutgoingContext(context.Background(), "authorization", value)
	}
	cases := []struct {
		name string
		ctx  context.Context
	}{
		{"no token", context.Background()},
		{"empty bearer", with("Bearer ")},
		{"garbage token", with("Bearer garbage")},
		{"another scheme", with("Basic " + w.WorkerToken)},
		{"the token without a scheme", with(w.WorkerToken)},
		{"a well-formed unknown token", with("Bearer " + unknown.Reveal())},
		{"a truncated token", with("Bearer " + w.WorkerToken[:len(w.WorkerToken)-1])},
		{"revoked", w.As(revoked.GetToken())},
		{"expired (ttl_seconds 2)", w.As(short.GetToken())},
		{"expired (by psql)", w.As(expired.GetToken())},
		{"two tokens", metadata.AppendToOutgoingContext(w.AsWorker(), "authorization", "Bearer "+w.WorkerToken)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := w.in(t)
			for _, p := range rePurposes {
				_, err := w.call(c.ctx, s.chat.Id, "", p)
				testenv.WantReason(t, err, codes.Unauthenticated, "UNAUTHENTICATED")
			}
		})
	}
	if after := w.TablesSnapshot(t); after != before {
		t.Errorf("refused calls changed the database:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// The worker's own token still works.
	res, err := w.res(s.chat.Id, "", reChat)
	reOK(t, res, err, reWant{config: s.cfg, provider: s.p, cred: k, requested: s.cfg.Id})
}
