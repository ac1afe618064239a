package operations_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/resolverd/resolverd/internal/apitoken"
	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// TestChangesToWhatEntriesAreFoundBy: psql changes that alter what a cached entry is found by, or
// what a cached caller may do, apply within a second like any other change (docs/CONTRACT.md §5): a token's
// scopes, a token reissued in place (new hash, same row), a chat given a new id.
func TestChangesToWhatEntriesAreFoundBy(t *testing.T) {
	w := testenv.NewWorld(t, testenv.Options{})
	ctx := context.Background()
	p := w.Provider("found-by", "openai", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	w.CentralKey(p.Id, "sk-found-by")
	cfg := w.Config(p.Id, "found-by", true)
	chat := w.Chat(w.User("found-by-owner").Id, cfg.Id)
	psql := func(sql string, args ...any) {
		t.Helper()
		if _, err := w.Pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("psql %q: %v", sql, err)
		}
	}
	resolveAs := func(token, chatID string) error {
		_, err := w.Resolver.ResolveModel(w.As(token), &resolverv1.ResolveModelRequest{ChatId: chatID, Purpose: resolverv1.Purpose_PURPOSE_CHAT})
		return err
	}
	wantCode := func(token, chatID string, code codes.Code) func() error {
		return func() error {
			if got := status.Code(resolveAs(token, chatID)); got != code {
				return fmt.Errorf("got %s, want %s", got, code)
			}
			return nil
		}
	}

	t.Run("token scopes", func(t *testing.T) {
		tok := w.Token(t, "found-by-scopes", rbac.WorkerScopes...)
		for range 2 { // the second call is served from memory, caller included
			if err := resolveAs(tok, chat.Id); err != nil {
				t.Fatal(err)
			}
		}
		psql(`UPDATE api_tokens SET scopes = '{chat:read,model_config:read,ai_provider:read}' WHERE name = 'found-by-scopes'`)
		took := testenv.Within(t, time.Second, "the token's narrower scopes", wantCode(tok, chat.Id, codes.PermissionDenied))
		info := testenv.WantReason(t, resolveAs(tok, chat.Id), codes.PermissionDenied, "MISSING_SCOPE")
		if info.GetMetadata()["scope"] != string(rbac.AIProviderKeyRead) {
			t.Errorf("missing scope %q, want ai_provider_key:read", info.GetMetadata()["scope"])
		}
		t.Logf("scopes applied after %s", took)
	})

	t.Run("token reissued in place", func(t *testing.T) {
		old := w.Token(t, "found-by-reissue", rbac.WorkerScopes...)
		for range 2 {
			if err := resolveAs(old, chat.Id); err != nil {
				t.Fatal(err)
			}
		}
		fresh, hash := apitoken.New()
		psql(`UPDATE api_tokens SET token_hash = $1 WHERE name = 'found-by-reissue'`, hash)
		took := testenv.Within(t, time.Second, "the old secret refused", wantCode(old, chat.Id, codes.Unauthenticated))
		if err := resolveAs(fresh.Reveal(), chat.Id); err != nil {
			t.Fatalf("the reissued secret: %v", err)
		}
		t.Logf("old secret refused after %s", took)
	})

	t.Run("chat id", func(t *testing.T) {
		for range 2 {
			if _, err := w.Resolve(chat.Id, "", resolverv1.Purpose_PURPOSE_CHAT); err != nil {
				t.Fatal(err)
			}
		}
		moved := uuid.NewString()
		psql(`UPDATE chats SET id = $2 WHERE id = $1`, chat.Id, moved)
		took := testenv.Within(t, time.Second, "the old chat id gone", wantCode(w.WorkerToken, chat.Id, codes.NotFound))
		if _, err := w.Resolve(moved, "", resolverv1.Purpose_PURPOSE_CHAT); err != nil {
			t.Fatalf("the chat under its new id: %v", err)
		}
		t.Logf("old chat id gone after %s", took)
	})
}
