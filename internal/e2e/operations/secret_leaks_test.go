package operations_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// TestNoSecretAtRestInLogsOrErrors drives the whole server with known secrets, error paths
// included (an oversized key, a key with a line break), then reads every row of every table as
// psql would and every log line, and fails on any plaintext secret.
func TestNoSecretAtRestInLogsOrErrors(t *testing.T) {
	w := testenv.NewWorld(t, testenv.Options{})
	ctx := w.AsAdmin()
	secrets := []string{"sk-leak-central-one-7f3a", "sk-leak-central-two-9b1c", "sk-leak-user-alice-2d4e", "sk-leak-rotated-5c6d"}

	p := w.Provider("leaky", "openai", resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL)
	w.CentralKey(p.Id, secrets[0])
	w.CentralKey(p.Id, secrets[1])
	cfg := w.Config(p.Id, "gpt-leak", true)
	alice, bob := w.User("leak-alice"), w.User("leak-bob")
	w.UserKey(alice.Id, p.Id, secrets[2])
	aliceChat, bobChat := w.Chat(alice.Id, cfg.Id), w.Chat(bob.Id, cfg.Id)
	if _, err := w.Admin.RotateProviderKey(ctx, &resolverv1.RotateProviderKeyRequest{ProviderId: p.Id, ApiKey: secrets[3]}); err != nil {
		t.Fatal(err)
	}

	// Refused writes carrying secrets: they must not echo them.
	oversized := "sk-leak-oversized-" + strings.Repeat("x", 10*1024)
	broken := "sk-leak-broken-line\nsecond-half-3e8f"
	var refusals []error
	for _, k := range []string{oversized, broken} {
		_, err := w.Admin.AddProviderKey(ctx, &resolverv1.AddProviderKeyRequest{ProviderId: p.Id, ApiKey: k})
		refusals = append(refusals, err)
		_, err = w.Admin.PutUserProviderKey(ctx, &resolverv1.PutUserProviderKeyRequest{UserId: bob.Id, AiProviderId: p.Id, ApiKey: k})
		refusals = append(refusals, err)
		_, err = w.Admin.RotateProviderKey(ctx, &resolverv1.RotateProviderKeyRequest{ProviderId: p.Id, ApiKey: k})
		refusals = append(refusals, err)
	}
	_, err := w.Admin.PutUserProviderKey(ctx, &resolverv1.PutUserProviderKeyRequest{UserId: alice.Id, AiProviderId: "not-a-uuid", ApiKey: secrets[2]})
	refusals = append(refusals, err)
	for i, err := range refusals {
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("refusal %d: %v", i, err)
		}
	}
	secrets = append(secrets, oversized[:40], "second-half-3e8f")

	// Resolutions that hand secrets out, and ones that fail.
	for _, chat := range []string{aliceChat.Id, bobChat.Id} {
		if _, err := w.Resolve(chat, "", resolverv1.Purpose_PURPOSE_CHAT); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = w.Resolve(aliceChat.Id, "00000000-0000-4000-8000-000000000000", resolverv1.Purpose_PURPOSE_TITLE)
	_, _ = w.Resolver.ResolveModel(w.As("rsv_"+strings.Repeat("A", 43)), &resolverv1.ResolveModelRequest{ChatId: aliceChat.Id, Purpose: resolverv1.Purpose_PURPOSE_CHAT})
	auditEvents(t, w, &resolverv1.ListAuditEventsRequest{Action: "ResolveModel"}, 3)

	// Every error message and detail.
	for _, err := range refusals {
		for _, s := range secrets {
			if strings.Contains(status.Convert(err).String(), s) || strings.Contains(err.Error(), s) {
				t.Errorf("an error carries a secret: %v", err)
			}
		}
	}
	// Every row of every table, as psql shows it.
	rows, err := w.Pool.Query(context.Background(), `SELECT tablename FROM pg_tables WHERE schemaname = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) < 10 {
		t.Fatalf("only %d tables: %v", len(tables), tables)
	}
	for _, table := range tables {
		var dump string
		if err := w.Pool.QueryRow(context.Background(), `SELECT coalesce(string_agg(to_jsonb(x)::text, E'\n'), '') FROM `+pgx.Identifier{table}.Sanitize()+` x`).Scan(&dump); err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if strings.Contains(dump, s) {
				t.Errorf("table %s holds the plaintext %q", table, s)
			}
		}
	}
	// Every log line (after the shutdown flush is not needed: the writer logs no records).
	time.Sleep(50 * time.Millisecond)
	logs := w.Logs.String()
	if !strings.Contains(logs, "ResolveModel") || !strings.Contains(logs, "AddProviderKey") {
		t.Fatal("the server logged no calls: the check below would prove nothing")
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the log holds %q", s)
		}
	}
}
