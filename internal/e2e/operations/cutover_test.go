package operations_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/internal/testenv"
	"github.com/resolverd/resolverd/pkg/secret"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// TestResolveOnACutOverLegacyDatabase: a deployment on the legacy layout runs `migrate up`, then the
// server resolves every chat with the provider and key the legacy layout implied.
func TestResolveOnACutOverLegacyDatabase(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewEmptyDatabase(t)
	pool := pgtest.Connect(t, url)
	m, err := db.NewMigrator(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.UpTo(ctx, 1); err != nil {
		t.Fatal(err)
	}
	sealed, keyID, err := pgtest.Keyring.SealUnbound(secret.New("sk-legacy-openai-sealed"))
	if err != nil {
		t.Fatal(err)
	}
	aliceKey, aliceKeyID, err := pgtest.Keyring.SealUnbound(secret.New("sk-legacy-alice-anthropic"))
	if err != nil {
		t.Fatal(err)
	}
	const (
		openai, anthropic, google, compat = "a0000000-0000-4000-8000-000000000001", "a0000000-0000-4000-8000-000000000002", "a0000000-0000-4000-8000-000000000003", "a0000000-0000-4000-8000-000000000004"
		gpt, claude, gemini, local        = "b0000000-0000-4000-8000-000000000001", "b0000000-0000-4000-8000-000000000002", "b0000000-0000-4000-8000-000000000003", "b0000000-0000-4000-8000-000000000004"
		alice, bob                        = "c0000000-0000-4000-8000-000000000001", "c0000000-0000-4000-8000-000000000002"
		chatGPT, chatClaudeAlice          = "d0000000-0000-4000-8000-000000000001", "d0000000-0000-4000-8000-000000000002"
		chatClaudeBob, chatGemini         = "d0000000-0000-4000-8000-000000000003", "d0000000-0000-4000-8000-000000000004"
		chatLocal                         = "d0000000-0000-4000-8000-000000000005"
	)
	for _, q := range []struct {
		sql  string
		args []any
	}{
		// openai: central key only (sealed). anthropic: user keys required, no central key.
		// google: a plain legacy key (NULL key id). openai-compat: user key or central fallback.
		{`INSERT INTO chat_providers (id, provider, api_key, api_key_key_id, allow_user_api_key) VALUES ($1, 'openai', $2, $3, false)`, []any{openai, sealed, keyID}},
		{`INSERT INTO chat_providers (id, provider, central_api_key_enabled, allow_user_api_key) VALUES ($1, 'anthropic', false, true)`, []any{anthropic}},
		{`INSERT INTO chat_providers (id, provider, api_key) VALUES ($1, 'google', 'sk-legacy-google-plain')`, []any{google}},
		{`INSERT INTO chat_providers (id, provider, api_key, allow_user_api_key, allow_central_api_key_fallback) VALUES ($1, 'openai-compat', 'sk-legacy-compat', true, true)`, []any{compat}},
		{`INSERT INTO users (id, username) VALUES ($1, 'alice'), ($2, 'bob')`, []any{alice, bob}},
		{`INSERT INTO user_chat_provider_keys (id, user_id, chat_provider_id, api_key, api_key_key_id) VALUES (gen_random_uuid(), $1, $2, $3, $4)`, []any{alice, anthropic, aliceKey, aliceKeyID}},
		{`INSERT INTO chat_model_configs (id, provider, model, is_default) VALUES ($1, 'openai', 'gpt-4o', true), ($2, 'anthropic', 'claude', false), ($3, 'google', 'gemini', false), ($4, 'openai-compat', 'local', false)`, []any{gpt, claude, gemini, local}},
		{`INSERT INTO chats (id, owner_id, last_model_config_id) VALUES ($1, $2, $3), ($4, $2, $5), ($6, $7, $5), ($8, $7, $9), ($10, $7, $11)`,
			[]any{chatGPT, alice, gpt, chatClaudeAlice, claude, chatClaudeBob, bob, chatGemini, gemini, chatLocal, local}},
	} {
		if _, err := pool.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	if _, err := m.UpTo(ctx, 0); err != nil {
		t.Fatalf("migrate up: %v", err)
	}

	w := &testenv.World{T: t, Env: testenv.New(t, testenv.Options{DatabaseURL: url})}
	cases := []struct {
		name, chat, config string
		purpose            resolverv1.Purpose
		provider, key      string
		source             resolverv1.CredentialSource
	}{
		{"central key sealed by the legacy system", chatGPT, "", resolverv1.Purpose_PURPOSE_CHAT, openai, "sk-legacy-openai-sealed", resolverv1.CredentialSource_CREDENTIAL_SOURCE_CENTRAL},
		{"BYOK-required provider with the owner's moved key", chatClaudeAlice, "", resolverv1.Purpose_PURPOSE_CHAT, anthropic, "sk-legacy-alice-anthropic", resolverv1.CredentialSource_CREDENTIAL_SOURCE_USER},
		{"title override reads the override's provider", chatGPT, claude, resolverv1.Purpose_PURPOSE_TITLE, anthropic, "sk-legacy-alice-anthropic", resolverv1.CredentialSource_CREDENTIAL_SOURCE_USER},
		{"legacy plain key (NULL key id)", chatGemini, "", resolverv1.Purpose_PURPOSE_CHAT, google, "sk-legacy-google-plain", resolverv1.CredentialSource_CREDENTIAL_SOURCE_CENTRAL},
		{"optional BYOK falls back to the central key", chatLocal, "", resolverv1.Purpose_PURPOSE_CHAT, compat, "sk-legacy-compat", resolverv1.CredentialSource_CREDENTIAL_SOURCE_CENTRAL},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := w.Resolve(c.chat, c.config, c.purpose)
			if err != nil {
				t.Fatal(err)
			}
			if res.GetProvider().GetId() != c.provider || res.GetCredential().GetApiKey() != c.key || res.GetCredential().GetSource() != c.source {
				t.Fatalf("got provider %s, key %q, source %v", res.GetProvider().GetId(), res.GetCredential().GetApiKey(), res.GetCredential().GetSource())
			}
			if res.GetProvider().GetName() == "" || res.GetDecision().GetFallback() {
				t.Fatalf("provider name %q, fallback %v", res.GetProvider().GetName(), res.GetDecision().GetFallback())
			}
		})
	}
	t.Run("BYOK-required provider and an owner without a key", func(t *testing.T) {
		_, err := w.Resolve(chatClaudeBob, "", resolverv1.Purpose_PURPOSE_CHAT)
		testenv.WantReason(t, err, codes.FailedPrecondition, "USER_KEY_REQUIRED")
	})
}
