package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/keyring"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// auditTrail builds a trail through the real server — admin changes, resolutions, a refused admin
// call — and returns once every record is written.
func auditTrail(t *testing.T) (*testenv.World, string) {
	t.Helper()
	url := pgtest.NewDatabase(t)
	w := testenv.NewWorld(t, testenv.Options{DatabaseURL: url})
	p := w.Provider("verify", "openai", resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL)
	w.CentralKey(p.Id, "sk-verify-central")
	if _, err := w.Admin.UpdateProvider(w.AsAdmin(), &resolverv1.UpdateProviderRequest{Id: p.Id, BaseUrl: ptr("https://b.example/v1")}); err != nil {
		t.Fatal(err)
	}
	cfg := w.Config(p.Id, "gpt-verify", true)
	chat := w.Chat(w.User("verify-owner").Id, cfg.Id)
	for range 20 {
		if _, err := w.Resolve(chat.Id, "", resolverv1.Purpose_PURPOSE_CHAT); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Admin.GetProvider(w.AsAdmin(), &resolverv1.GetProviderRequest{Id: uuid.NewString()}); err == nil {
		t.Fatal("GetProvider of a missing provider succeeded")
	}
	waitFor(t, w.Pool, `SELECT count(*) >= 21 FROM audit_events WHERE action IN ('ResolveModel', 'GetProvider')`)
	return w, url
}

func ptr[T any](v T) *T { return &v }

func waitFor(t *testing.T, pool *pgxpool.Pool, query string, args ...any) {
	t.Helper()
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		var ok bool
		if err := pool.QueryRow(context.Background(), query, args...).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		if ok {
			return
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("not after 10s: %s", query)
		}
	}
}

func exec(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func scalar[T any](t *testing.T, pool *pgxpool.Pool, sql string, args ...any) T {
	t.Helper()
	var v T
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// TestAuditVerifyNamesWhatWasTampered: `resolverd audit verify` passes on the trail the server
// wrote, and names the event when psql — the attacker, with the database's rights but not the
// encryption keys — edits, deletes or inserts an event in the middle of a chain. Each tampering
// is undone before the next, and the trail verifies again.
func TestAuditVerifyNamesWhatWasTampered(t *testing.T) {
	ctx := context.Background()
	w, url := auditTrail(t)
	pool := w.Pool
	env := map[string]string{"RESOLVER_DATABASE_URL": url, "RESOLVER_ENCRYPTION_KEYS": pgtest.EncryptionKeys}
	passes := func(what string) {
		t.Helper()
		n := scalar[int64](t, pool, `SELECT count(*) FROM audit_events`)
		chains := scalar[int64](t, pool, `SELECT count(DISTINCT chain_id) FROM audit_events`)
		code, out, errOut := cli(ctx, env, "audit", "verify")
		if want := fmt.Sprintf("verified %d events in %d chains\n", n, chains); code != 0 || out != want {
			t.Fatalf("%s: code %d, stdout %q, stderr %q; want %q", what, code, out, errOut, want)
		}
	}
	fails := func(what string, id int64, kind string) {
		t.Helper()
		code, out, errOut := cli(ctx, env, "audit", "verify")
		want := fmt.Sprintf("event %d was %s", id, kind)
		if code != 1 || !strings.Contains(out, want) || !strings.HasPrefix(errOut, "resolverd audit: ") ||
			!strings.Contains(errOut, want) || strings.Count(errOut, "\n") != 1 {
			t.Fatalf("%s: code %d, stdout %q, stderr %q; want exit 1 naming %q", what, code, out, errOut, want)
		}
	}
	passes("the untouched trail")

	// A resolution in the middle of the server's chain of batched records, and its successor.
	var mid, next int64
	var chain uuid.UUID
	if err := pool.QueryRow(ctx, `SELECT id, chain_id FROM audit_events WHERE action = 'ResolveModel' ORDER BY id OFFSET 10 LIMIT 1`).Scan(&mid, &chain); err != nil {
		t.Fatal(err)
	}
	next = scalar[int64](t, pool, `SELECT min(id) FROM audit_events WHERE chain_id = $1 AND id > $2`, chain, mid)

	exec(t, pool, `UPDATE audit_events SET outcome = 'NO_CREDENTIALS' WHERE id = $1`, mid)
	fails("an edited outcome", mid, "edited")
	exec(t, pool, `UPDATE audit_events SET outcome = 'OK' WHERE id = $1`, mid)
	passes("the outcome put back")

	// An admin change's recorded values.
	change := scalar[int64](t, pool, `SELECT id FROM audit_events WHERE action = 'UpdateProvider'`)
	exec(t, pool, `UPDATE audit_events SET details = jsonb_set(details, '{changes,base_url,after}', '"https://elsewhere.example"') WHERE id = $1`, change)
	fails("an edited base_url", change, "edited")
	exec(t, pool, `UPDATE audit_events SET details = jsonb_set(details, '{changes,base_url,after}', '"https://b.example/v1"') WHERE id = $1`, change)
	passes("the base_url put back")

	exec(t, pool, `CREATE TABLE saved AS SELECT * FROM audit_events WHERE id = $1`, mid)
	exec(t, pool, `DELETE FROM audit_events WHERE id = $1`, mid)
	fails("a deleted event", next, "deleted")

	// Inserted in its place, with its chain columns but other content: no valid MAC.
	exec(t, pool, `INSERT INTO audit_events OVERRIDING SYSTEM VALUE SELECT * FROM saved`)
	exec(t, pool, `UPDATE audit_events SET token_id = NULL WHERE id = $1`, mid)
	fails("a forged event inserted in the gap", mid, "edited")
	exec(t, pool, `DELETE FROM audit_events WHERE id = $1`, mid)
	exec(t, pool, `INSERT INTO audit_events OVERRIDING SYSTEM VALUE SELECT * FROM saved`)
	passes("the event put back")

	// A copy of an event, its MAC included, claiming its place again.
	exec(t, pool, `INSERT INTO audit_events (`+contentColumns+`, chain_id, chain_seq, mac, prev_mac, mac_key_id)
SELECT `+contentColumns+`, chain_id, chain_seq, mac, prev_mac, mac_key_id FROM saved`)
	copyID := scalar[int64](t, pool, `SELECT max(id) FROM audit_events`)
	fails("a replayed event", copyID, "inserted")
	exec(t, pool, `DELETE FROM audit_events WHERE id = $1`, copyID)

	// A plain psql INSERT, without chain columns.
	exec(t, pool, `INSERT INTO audit_events (occurred_at, action, outcome) VALUES (now(), 'DeleteProvider', 'OK')`)
	plain := scalar[int64](t, pool, `SELECT max(id) FROM audit_events`)
	fails("an unchained event", plain, "inserted")
	exec(t, pool, `DELETE FROM audit_events WHERE id = $1`, plain)
	passes("the inserted events removed")

	// Retention removes the oldest events, a batch at a time: what remains verifies.
	cutoff := scalar[time.Time](t, pool, `SELECT occurred_at FROM audit_events WHERE id = $1`, mid)
	store := db.New(pool, nil)
	for {
		n, err := store.DeleteAuditEventsBefore(ctx, cutoff, 3)
		if err != nil {
			t.Fatal(err)
		}
		if n < 3 {
			break
		}
	}
	if left := scalar[int64](t, pool, `SELECT count(*) FROM audit_events WHERE occurred_at < $1`, cutoff); left != 0 {
		t.Fatalf("%d old events left", left)
	}
	code, out, _ := cli(ctx, env, "audit", "verify")
	if code != 0 || !strings.Contains(out, "chains start after their first event") {
		t.Fatalf("after retention: code %d, %q", code, out)
	}
	// A gap in the middle of what remains is still found.
	later := scalar[int64](t, pool, `SELECT id FROM audit_events WHERE chain_id = $1 ORDER BY id OFFSET 3 LIMIT 1`, chain)
	after := scalar[int64](t, pool, `SELECT min(id) FROM audit_events WHERE chain_id = $1 AND id > $2`, chain, later)
	exec(t, pool, `DELETE FROM audit_events WHERE id = $1`, later)
	fails("a gap after retention", after, "deleted")
}

// contentColumns are audit_events' columns other than the id and the chain's.
const contentColumns = `occurred_at, action, token_id, chat_id, outcome, purpose, request_id, requested_model_config_id,
model_config_id, provider_id, credential_source, key_id, fingerprint, fallback, fallback_reason, details`

// TestAuditVerifyKeysSinceAndProgress: verification needs the key that keyed each event (an old
// one too, after rotation), takes --since, and reports progress on stderr.
func TestAuditVerifyKeysSinceAndProgress(t *testing.T) {
	ctx := context.Background()
	w, url := auditTrail(t)
	n := scalar[int64](t, w.Pool, `SELECT count(*) FROM audit_events`)
	newKey := keyring.Generate()
	env := map[string]string{"RESOLVER_DATABASE_URL": url, "RESOLVER_ENCRYPTION_KEYS": newKey + "," + pgtest.EncryptionKeys}
	if code, out, errOut := cli(ctx, env, "audit", "verify"); code != 0 || !strings.HasPrefix(out, fmt.Sprintf("verified %d events", n)) {
		t.Fatalf("with the old key after the new one: code %d, %q %q", code, out, errOut)
	}
	env["RESOLVER_ENCRYPTION_KEYS"] = newKey
	oldID := pgtest.Keyring.IDs()[0]
	if code, _, errOut := cli(ctx, env, "audit", "verify"); code != 1 || !strings.Contains(errOut, "encryption key "+oldID) {
		t.Fatalf("without the old key: code %d, %q", code, errOut)
	}
	env["RESOLVER_ENCRYPTION_KEYS"] = pgtest.EncryptionKeys
	if code, out, _ := cli(ctx, env, "audit", "verify", "--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)); code != 0 || out != "verified 0 events in 0 chains\n" {
		t.Fatalf("--since an hour from now: code %d, %q", code, out)
	}
	// Since the tenth resolution: a suffix of each chain, accepted as such.
	since := scalar[time.Time](t, w.Pool, `SELECT occurred_at FROM audit_events WHERE action = 'ResolveModel' ORDER BY id OFFSET 10 LIMIT 1`)
	code, out, _ := cli(ctx, env, "audit", "verify", "--since", since.UTC().Format(time.RFC3339Nano))
	if code != 0 || !strings.HasPrefix(out, "verified ") || strings.HasPrefix(out, fmt.Sprintf("verified %d ", n)) {
		t.Fatalf("--since the tenth resolution: code %d, %q", code, out)
	}
	if code, _, errOut := cli(ctx, env, "audit", "verify", "--since", "yesterday"); code != 1 || !strings.Contains(errOut, "RFC 3339") {
		t.Fatalf("--since yesterday: code %d, %q", code, errOut)
	}
	if code, _, errOut := cli(ctx, map[string]string{"RESOLVER_DATABASE_URL": url}, "audit", "verify"); code != 1 || !strings.Contains(errOut, "RESOLVER_ENCRYPTION_KEYS") {
		t.Fatalf("without keys: code %d, %q", code, errOut)
	}
	if code, _, _ := cli(ctx, env, "audit"); code != 2 {
		t.Fatalf("audit without verify: code %d", code)
	}
	defer func(d time.Duration) { progressEvery = d }(progressEvery)
	progressEvery = 0
	if code, _, errOut := cli(ctx, env, "audit", "verify"); code != 0 || !strings.Contains(errOut, "read 1 ") {
		t.Fatalf("progress: code %d, %q", code, errOut)
	}
}

// TestAuditVerifyFindsAnUnchainedEventInsertedBeforeTheChains: events in no chain are accepted only
// as the trail's oldest (written before the chains existed, docs/CONTRACT.md §7.4). psql — without
// the encryption keys — inserts one with an id below every chained event's but dated in the
// chained era: a made-up admin change that looks recent. It did not exist before the chains, so
// verify names it as inserted; one dated before the chains is still only counted. (The trail here
// is seconds old, so "recent" is two hours after it, beyond auditchain.UnchainedSlack: on a real
// trail, whose chains began days ago, that is any time of the last days.)
func TestAuditVerifyFindsAnUnchainedEventInsertedBeforeTheChains(t *testing.T) {
	ctx := context.Background()
	w, url := auditTrail(t)
	pool := w.Pool
	env := map[string]string{"RESOLVER_DATABASE_URL": url, "RESOLVER_ENCRYPTION_KEYS": pgtest.EncryptionKeys}
	first := scalar[time.Time](t, pool, `SELECT min(occurred_at) FROM audit_events`)
	exec(t, pool, `INSERT INTO audit_events (id, occurred_at, action, outcome, details) OVERRIDING SYSTEM VALUE
VALUES (-1, $1, 'DeleteProvider', 'OK', '{"id": "made-up"}')`, first.Add(2*time.Hour))
	code, out, errOut := cli(ctx, env, "audit", "verify")
	if want := "event -1 was inserted"; code != 1 || !strings.Contains(out, want) || !strings.Contains(errOut, want) {
		t.Fatalf("an unchained event of the chained era with a low id: code %d, stdout %q, stderr %q; want exit 1 naming %q", code, out, errOut, want)
	}
	// Dated before the chains began: an event from before them, as far as anyone can tell.
	exec(t, pool, `UPDATE audit_events SET occurred_at = $1 WHERE id = -1`, first.Add(-24*time.Hour))
	code, out, errOut = cli(ctx, env, "audit", "verify")
	if code != 0 || !strings.Contains(out, "1 older events are in no chain") {
		t.Fatalf("an unchained event older than the chains: code %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestAuditVerifyFindsARecasedChangeKey: a change's values are stored as {"before": …, "after":
// …}. psql renaming "after" to "AFTER" (or adding an "AFTER" beside it) leaves what resolverd
// reads the same — Go's JSON decoding matches names case-insensitively — but not what a SQL
// query of details->'changes'->'base_url'->>'after' reads: verify names the event as edited.
func TestAuditVerifyFindsARecasedChangeKey(t *testing.T) {
	ctx := context.Background()
	w, url := auditTrail(t)
	pool := w.Pool
	env := map[string]string{"RESOLVER_DATABASE_URL": url, "RESOLVER_ENCRYPTION_KEYS": pgtest.EncryptionKeys}
	change := scalar[int64](t, pool, `SELECT id FROM audit_events WHERE action = 'UpdateProvider'`)
	for _, edit := range []string{
		`jsonb_set(details, '{changes,base_url}', (details->'changes'->'base_url') - 'after' || jsonb_build_object('AFTER', details->'changes'->'base_url'->'after'))`,
		`jsonb_set(details, '{changes,base_url,AFTER}', '"https://elsewhere.example"')`,
	} {
		exec(t, pool, `CREATE TABLE saved AS SELECT details FROM audit_events WHERE id = $1`, change)
		exec(t, pool, `UPDATE audit_events SET details = `+edit+` WHERE id = $1`, change)
		code, out, errOut := cli(ctx, env, "audit", "verify")
		if want := fmt.Sprintf("event %d was edited", change); code != 1 || !strings.Contains(out, want) {
			t.Errorf("%s: code %d, stdout %q, stderr %q; want %q", edit, code, out, errOut, want)
		}
		exec(t, pool, `UPDATE audit_events SET details = (SELECT details FROM saved) WHERE id = $1`, change)
		exec(t, pool, `DROP TABLE saved`)
	}
	if code, out, errOut := cli(ctx, env, "audit", "verify"); code != 0 {
		t.Fatalf("the details put back: code %d, %q %q", code, out, errOut)
	}
}
