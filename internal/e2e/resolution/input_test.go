package resolution_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/resolverd/resolverd/internal/apitoken"
	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// TestResolveE2EBadInput: invalid requests are INVALID_ARGUMENT naming every bad field, an unknown
// chat is CHAT_NOT_FOUND, and neither changes anything.
func TestResolveE2EBadInput(t *testing.T) {
	t.Parallel()
	w := reNew(t, testenv.Options{})
	s := w.reSetup("openai", reOptional)
	w.central(s.p.Id)
	w.own(s.owner.Id, s.p.Id)
	leaked := w.newKey("pasted") // a worker pasting a key into the wrong field
	before := w.TablesSnapshot(t)

	cases := []struct {
		name    string
		chat    string
		config  string
		purpose resolverv1.Purpose
		fields  []string
	}{
		{"chat_id not a UUID", "not-a-uuid", "", reChat, []string{"chat_id"}},
		{"chat_id empty", "", s.cfg.Id, reTitle, []string{"chat_id"}},
		{"chat_id a UUID with a suffix", s.chat.Id + "0", "", reChat, []string{"chat_id"}},
		{"chat_id an API key", leaked, "", reChat, []string{"chat_id"}},
		{"model_config_id not a UUID", s.chat.Id, "gpt-4o", reSubagent, []string{"model_config_id"}},
		{"model_config_id truncated", s.chat.Id, s.cfg.Id[:30], reTitle, []string{"model_config_id"}},
		{"model_config_id an API key", s.chat.Id, leaked, reCompact, []string{"model_config_id"}},
		{"purpose unspecified", s.chat.Id, "", resolverv1.Purpose_PURPOSE_UNSPECIFIED, []string{"purpose"}},
		{"purpose out of range", s.chat.Id, s.cfg.Id, resolverv1.Purpose(42), []string{"purpose"}},
		{"purpose negative", s.chat.Id, "", resolverv1.Purpose(-1), []string{"purpose"}},
		{"every field bad at once", "x", "y", resolverv1.Purpose(42), []string{"chat_id", "model_config_id", "purpose"}},
		{"chat_id missing and purpose unspecified", "", "", resolverv1.Purpose_PURPOSE_UNSPECIFIED, []string{"chat_id", "purpose"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := w.in(t)
			_, err := w.res(c.chat, c.config, c.purpose)
			testenv.WantReason(t, err, codes.InvalidArgument, "INVALID_ARGUMENT")
			br := testenv.BadRequest(err)
			if br == nil {
				t.Fatalf("no google.rpc.BadRequest in %v", err)
			}
			var fields []string
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
				if v.GetDescription() == "" {
					t.Errorf("violation of %s has no description", v.GetField())
				}
			}
			slices.Sort(fields)
			if !slices.Equal(fields, c.fields) {
				t.Errorf("field violations name %v, want %v", fields, c.fields)
			}
		})
	}

	t.Run("unknown chat", func(t *testing.T) {
		w := w.in(t)
		unknown := uuid.NewString()
		for _, id := range []string{"", s.cfg.Id, uuid.NewString()} {
			for _, p := range rePurposes {
				_, err := w.res(unknown, id, p)
				reFail(t, err, codes.NotFound, "CHAT_NOT_FOUND", map[string]string{"chat_id": unknown})
			}
		}
	})

	if after := w.TablesSnapshot(t); after != before {
		t.Errorf("refused calls changed the database:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

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
	short := mint("re-short-lived", 2)
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

// TestResolveE2ENoSecretInErrorsOrLogs provokes every kind of refusal next to seeded keys; w.call
// checks each error and reNew's cleanup the whole log, and here the log is also checked to be the one
// the calls went to.
func TestResolveE2ENoSecretInErrorsOrLogs(t *testing.T) {
	t.Parallel()
	w := reNew(t, testenv.Options{})
	req := w.reSetup("anthropic", reRequired)
	w.central(req.p.Id)
	w.own(w.person().Id, req.p.Id)
	off := w.reSetup("openai", reDisabled)
	w.setKeyEnabled(w.central(off.p.Id).keyID, false)
	opt := w.reSetup("google", reOptional)
	mine := w.own(opt.owner.Id, opt.p.Id)
	central := w.central(opt.p.Id)

	req.fail(w, "USER_KEY_REQUIRED")
	off.fail(w, "NO_CREDENTIALS")
	opt.ok(w, mine)
	_, err := w.call(w.reWithout(rbac.UserAIProviderKeyRead), opt.chat.Id, "", reTitle)
	reDenied(t, err, rbac.UserAIProviderKeyRead)
	_, err = w.call(w.reWithout(rbac.AIProviderKeyRead), off.chat.Id, "", reChat)
	reDenied(t, err, rbac.AIProviderKeyRead)
	_, err = w.res(opt.chat.Id, mine.apiKey, reSubagent)
	testenv.WantReason(t, err, codes.InvalidArgument, "INVALID_ARGUMENT")
	_, err = w.res(central.apiKey, "", reChat)
	testenv.WantReason(t, err, codes.InvalidArgument, "INVALID_ARGUMENT")
	_, err = w.call(w.As(central.apiKey), opt.chat.Id, "", reChat)
	testenv.WantReason(t, err, codes.Unauthenticated, "UNAUTHENTICATED")
	_, err = w.call(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+mine.apiKey), opt.chat.Id, "", reChat)
	testenv.WantReason(t, err, codes.Unauthenticated, "UNAUTHENTICATED")

	logs := w.Logs.String()
	if n := strings.Count(logs, resolverv1.ResolverService_ResolveModel_FullMethodName); n < 9 {
		t.Fatalf("the server log has %d ResolveModel lines, want at least 9 (one per call above):\n%s", n, logs)
	}
	w.noKeyIn(t, "the server log", logs)
}
