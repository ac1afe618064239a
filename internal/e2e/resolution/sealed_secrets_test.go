package resolution_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"

	"github.com/resolverd/resolverd/internal/keyring"
	"github.com/resolverd/resolverd/internal/metrics"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/server"
	"github.com/resolverd/resolverd/internal/testenv"
	"github.com/resolverd/resolverd/pkg/secret"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// reUnreadable wants DATA_LOSS/SECRET_UNREADABLE naming the key row and its encryption key.
func reUnreadable(t *testing.T, res *resolverv1.ResolveModelResponse, err error, keyID, encryptionKeyID string) {
	t.Helper()
	if res != nil {
		t.Fatalf("an unreadable key answered: credential %s", res.GetCredential().GetKeyId())
	}
	reFail(t, err, codes.DataLoss, "SECRET_UNREADABLE", map[string]string{"key_id": keyID, "encryption_key_id": encryptionKeyID})
}

// storedKey reads a key row's stored value as psql would.
func (w *reWorld) storedKey(table, id string) (sealed, keyID string) {
	w.T.Helper()
	if err := w.Pool.QueryRow(context.Background(), `SELECT api_key, api_key_key_id FROM `+table+` WHERE id = $1`, id).Scan(&sealed, &keyID); err != nil {
		w.T.Fatal(err)
	}
	return sealed, keyID
}

// TestSealedSecretsOpenOnlyInTheirPlace: docs/CONTRACT.md §7.1 with psql as the attacker. A value
// moved to another row, edited, or sealed by an encryption key the server lacks is never served: the
// resolutions that would answer with it fail with SECRET_UNREADABLE, every other resolution still
// answers, a denied scope is still MISSING_SCOPE, and each failure is counted and logged by row.
func TestSealedSecretsOpenOnlyInTheirPlace(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	w := reNew(t, testenv.Options{Configure: func(c *server.Config) { c.Metrics = m }})
	sealedBy := pgtest.Keyring.IDs()[0]
	openai := w.reSetup("openai", reDisabled)
	central := w.central(openai.p.Id)
	anthropic := w.reSetup("anthropic", reRequired)
	alice := w.own(anthropic.owner.Id, anthropic.p.Id)
	google := w.reSetup("google", reDisabled)
	gkey := w.central(google.p.Id)
	// Warm: every entry is in the cache before the attack.
	openai.ok(w, central)
	anthropic.ok(w, alice)
	google.ok(w, gkey)

	failed := 0                    // resolutions refused with SECRET_UNREADABLE
	damaged := map[string]string{} // key row id → what was done to it
	aliceSealed, _ := w.storedKey("user_ai_provider_keys", alice.keyID)

	t.Run("a user's key copied into the central-key row of another provider", func(t *testing.T) {
		w := w.in(t)
		w.psql(`UPDATE ai_provider_keys k SET api_key = u.api_key, api_key_key_id = u.api_key_key_id
			FROM user_ai_provider_keys u WHERE k.id = $1 AND u.id = $2`, central.keyID, alice.keyID)
		damaged[central.keyID] = "moved"
		res, err := w.res(openai.chat.Id, "", reChat)
		reUnreadable(t, res, err, central.keyID, sealedBy)
		failed++
		// The row the value came from, and every other provider and chat, still answer.
		anthropic.ok(w, alice)
		google.ok(w, gkey)
		// An override onto the broken provider fails too, whatever the purpose: never a fallback.
		for _, p := range append([]resolverv1.Purpose{reTitle}, reSoft...) {
			res, err := w.res(google.chat.Id, openai.cfg.Id, p)
			reUnreadable(t, res, err, central.keyID, sealedBy)
			failed++
		}
		// The operator still finds the row: listed, without a fingerprint.
		keys, err := w.Admin.ListProviderKeys(w.AsAdmin(), &resolverv1.ListProviderKeysRequest{ProviderId: openai.p.Id})
		if err != nil || len(keys.GetKeys()) != 1 || keys.GetKeys()[0].GetId() != central.keyID || keys.GetKeys()[0].GetFingerprint() != "" {
			t.Fatalf("listing the provider's keys: %v %v", keys, err)
		}
	})

	t.Run("one flipped byte, and a denied scope first", func(t *testing.T) {
		w := w.in(t)
		opt := w.reSetup("openrouter", reOptional)
		k := w.central(opt.p.Id)
		sealed, _ := w.storedKey("ai_provider_keys", k.keyID)
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sealed, keyring.BoundPrefix))
		if err != nil || !strings.HasPrefix(sealed, keyring.BoundPrefix) {
			t.Fatalf("stored value %q is not in the bound format (%v)", sealed, err)
		}
		raw[len(raw)/2] ^= 0x01
		w.psql(`UPDATE ai_provider_keys SET api_key = $2 WHERE id = $1`, k.keyID, keyring.BoundPrefix+base64.StdEncoding.EncodeToString(raw))
		damaged[k.keyID] = "edited"
		// A cold chat, and a token without the owner's-key scope: the rules ask for the owner's key
		// first, so the call is refused for that scope before the damaged central key is opened.
		_, err = w.call(w.reWithout(rbac.UserAIProviderKeyRead), opt.chat.Id, "", reChat)
		reDenied(t, err, rbac.UserAIProviderKeyRead)
		_, err = w.call(w.reWithout(rbac.AIProviderKeyRead), opt.chat.Id, "", reChat)
		reDenied(t, err, rbac.AIProviderKeyRead)
		_, err = w.call(w.reWithout(rbac.AIProviderKeyRead), openai.chat.Id, "", reChat)
		reDenied(t, err, rbac.AIProviderKeyRead)
		// With every scope, the edited value is refused.
		res, err := w.res(opt.chat.Id, "", reChat)
		reUnreadable(t, res, err, k.keyID, sealedBy)
		failed++
		google.ok(w, gkey)
	})

	t.Run("a row sealed by an encryption key the server lacks, written at run time", func(t *testing.T) {
		w := w.in(t)
		other, err := keyring.Parse(keyring.Generate())
		if err != nil {
			t.Fatal(err)
		}
		v := w.reSetup("vercel", reDisabled)
		id := uuid.New()
		sealed, kid, err := other.Seal(secret.New(w.newKey("foreign")), keyring.Place{Table: "ai_provider_keys", RowID: id, ProviderID: uuid.MustParse(v.p.Id)})
		if err != nil {
			t.Fatal(err)
		}
		w.psql(`INSERT INTO encryption_keys (id) VALUES ($1)`, kid)
		w.psql(`INSERT INTO ai_provider_keys (id, provider_id, api_key, api_key_key_id) VALUES ($1, $2, $3, $4)`, id, v.p.Id, sealed, kid)
		damaged[id.String()] = "foreign"
		res, err := w.res(v.chat.Id, "", reChat)
		reUnreadable(t, res, err, id.String(), kid)
		failed++
		anthropic.ok(w, alice)
		google.ok(w, gkey)
	})

	t.Run("counted and logged by table and row, never with a value", func(t *testing.T) {
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		body, _ := io.ReadAll(rec.Body)
		text := string(body)
		for _, want := range []string{
			`resolverd_secrets_unreadable_total{table="user_ai_provider_keys"} 0`,
			`resolverd_resolutions_total{credential_source="",outcome="SECRET_UNREADABLE",purpose="chat"} 3`,
			`resolverd_resolutions_total{credential_source="",outcome="SECRET_UNREADABLE",purpose="title"} 1`,
		} {
			if !strings.Contains(text, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
		// Each unreadable value is logged and counted once each time a replica reads its row (the
		// cached key keeps the failure), so between once per damaged row and once per refusal.
		logs := w.Logs.String()
		lines, rows := 0, map[string]bool{}
		for _, line := range strings.Split(logs, "\n") {
			if !strings.Contains(line, "does not open in its place") {
				continue
			}
			lines++
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("log line %q: %v", line, err)
			}
			row, _ := rec["row_id"].(string)
			if rec["level"] != "ERROR" || rec["table"] != "ai_provider_keys" || damaged[row] == "" {
				t.Errorf("log line %s: want level ERROR, table ai_provider_keys and a damaged row", line)
			}
			rows[row] = true
		}
		if len(rows) != len(damaged) || lines > failed+1 { // +1: the admin listing read the moved row once more
			t.Errorf("%d log lines naming %d rows, want every one of the %d damaged rows and at most %d lines", lines, len(rows), len(damaged), failed+1)
		}
		if want := fmt.Sprintf(`resolverd_secrets_unreadable_total{table="ai_provider_keys"} %d`, lines); !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s (one per log line)", want)
		}
		// The moved value itself (sealed, but a secret's ciphertext) is not logged either; the plain
		// keys are checked by reNew's cleanup.
		if strings.Contains(logs, strings.TrimPrefix(aliceSealed, keyring.BoundPrefix)) {
			t.Error("the log shows a stored value")
		}
	})
}
