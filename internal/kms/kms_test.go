package kms_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/keyring"
	"github.com/resolverd/resolverd/internal/kms"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/internal/resolve"
	"github.com/resolverd/resolverd/pkg/secret"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// localKey returns a new base64key:// URI (gocloud.dev/secrets/localsecrets): a KMS key held in
// the URI, which needs no cloud.
func localKey(t *testing.T) (uri, material string) {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	material = base64.URLEncoding.EncodeToString(b)
	return "base64key://" + material, material
}

func open(t *testing.T, uri string) *kms.Key {
	t.Helper()
	k, err := kms.Open(context.Background(), uri)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Close() })
	return k
}

// TestOpenChecksTheURI: an unknown scheme is one line naming the supported ones; a base64key://
// without a key (localsecrets would draw one, lost at exit with every secret) and a URI carrying
// credentials are refused; no error quotes a base64key, and its name is a fingerprint.
func TestOpenChecksTheURI(t *testing.T) {
	ctx := context.Background()
	uri, material := localKey(t)
	for _, c := range []struct{ uri, want string }{
		{"s3://bucket/key", `unknown scheme "s3"; the schemes are awskms, gcpkms, azurekeyvault, hashivault, base64key`},
		{"vault://k", `unknown scheme "vault"`},
		{"just-a-key", "not a URL of the form SCHEME://KEY"},
		{"", "not a URL"},
		{"base64key://", "base64key:// needs the key"},
		{"base64key://short", "open the KMS key base64key://sha256:"},
		{"hashivault://admin:pw@mykey", "must not carry credentials"},
		{"base64key://" + material + "?x=1", "open the KMS key base64key://sha256:"},
	} {
		_, err := kms.Open(ctx, c.uri)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Open(%q): %v; want one line containing %q", c.uri, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), material) {
			t.Errorf("Open(%q) quotes the key: %v", c.uri, err)
		}
	}
	k := open(t, uri)
	if !strings.HasPrefix(k.Name(), "base64key://sha256:") || strings.Contains(k.Name(), material) {
		t.Fatalf("name %q", k.Name())
	}
	if again := open(t, uri); again.Name() != k.Name() {
		t.Fatalf("one key, two names: %q %q", k.Name(), again.Name())
	}
	other, _ := localKey(t)
	if open(t, other).Name() == k.Name() {
		t.Fatal("two keys, one name")
	}
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:1") // the hashivault driver needs an address to open; nothing is called
	for _, u := range []string{"awskms:///arn:aws:kms:eu-west-1:111122223333:key/1234abcd?region=eu-west-1",
		"azurekeyvault://myvault.vault.azure.net/keys/resolverd", "hashivault://resolverd"} {
		if got := open(t, u).Name(); got != u {
			t.Errorf("the name of %s is %q", u, got)
		}
	}
}

// TestLoadCreatesOneSealingDataKeyAndReadsItBack: the first Load with Seal makes the data key,
// wrapped (not stored in the clear); the next finds it; another KMS key is refused naming both;
// OpenOnly finds nothing for a KMS key that wraps nothing.
func TestLoadCreatesOneSealingDataKeyAndReadsItBack(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	uri, _ := localKey(t)
	k := open(t, uri)
	first, err := kms.Load(ctx, pool, k, kms.Seal)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Keys) != 1 || first.Created != first.Keys[0].ID() {
		t.Fatalf("first load: %d keys, created %q", len(first.Keys), first.Created)
	}
	stored, err := db.DataKeys(ctx, pool)
	if err != nil || len(stored) != 1 {
		t.Fatalf("%d rows, %v", len(stored), err)
	}
	if s := stored[0]; s.ID != first.Created || !s.Sealing || s.KMSKey != k.Name() ||
		strings.Contains(string(s.Wrapped), string(first.Keys[0].Reveal())) {
		t.Fatalf("stored row %+v", s)
	}
	again, err := kms.Load(ctx, pool, open(t, uri), kms.Seal)
	if err != nil || again.Created != "" || len(again.Keys) != 1 || again.Keys[0].ID() != first.Created {
		t.Fatalf("second load: %v, created %q", err, again.Created)
	}
	// The ring seals with the data key: api_key_key_id names it.
	kr, err := keyring.New(again.Keys...)
	if err != nil || kr.IDs()[0] != first.Created {
		t.Fatalf("ring %v %v", kr.IDs(), err)
	}

	otherURI, _ := localKey(t)
	other := open(t, otherURI)
	_, err = kms.Load(ctx, pool, other, kms.Seal)
	if err == nil || !strings.Contains(err.Error(), k.Name()) || !strings.Contains(err.Error(), other.Name()) {
		t.Fatalf("another KMS key: %v", err)
	}
	if l, err := kms.Load(ctx, pool, other, kms.OpenOnly); err != nil || len(l.Keys) != 0 {
		t.Fatalf("OpenOnly with a key that wraps nothing: %d keys, %v", len(l.Keys), err)
	}
	if n, _ := db.DataKeys(ctx, pool); len(n) != 1 {
		t.Fatalf("%d rows after the refusals", len(n))
	}
}

// TestLoadRefusesWhatDoesNotUnwrap: wrapped bytes the KMS key does not open (another key under the
// same name, a KMS refusing) stop the load with one line naming the data key; a row whose wrapped
// key is another row's is caught by its id.
func TestLoadRefusesWhatDoesNotUnwrap(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	uri, _ := localKey(t)
	k := open(t, uri)
	l, err := kms.Load(ctx, pool, k, kms.Seal)
	if err != nil {
		t.Fatal(err)
	}
	id := l.Keys[0].ID()
	// A second row of the same KMS key holding the sealing row's wrapped bytes under another id (a
	// row copied or edited with psql): it unwraps, but to a key whose id is not the row's.
	older := keyring.NewMaterial()
	exec(t, pool, `INSERT INTO data_encryption_keys (id, wrapped, kms_key) SELECT $1, wrapped, kms_key FROM data_encryption_keys WHERE id = $2`, older.ID(), id)
	_, err = kms.Load(ctx, pool, k, kms.OpenOnly)
	if err == nil || !strings.Contains(err.Error(), older.ID()) || !strings.Contains(err.Error(), "altered") {
		t.Fatalf("a row holding another row's key: %v", err)
	}
	exec(t, pool, `DELETE FROM data_encryption_keys WHERE id = $1`, older.ID())
	exec(t, pool, `UPDATE data_encryption_keys SET wrapped = '\x00010203'::bytea WHERE id = $1`, id)
	_, err = kms.Load(ctx, pool, k, kms.Seal)
	if err == nil || !strings.Contains(err.Error(), "cannot unwrap data-encryption key "+id) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("bytes the KMS key does not open: %v", err)
	}
}

// TestReplicasStartingTogetherAgreeOnOneDataKey: several replicas, each with its own connection
// pool and its own opened KMS key, start at once on an empty table: exactly one makes the data key,
// and every one seals with it.
func TestReplicasStartingTogetherAgreeOnOneDataKey(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	uri, _ := localKey(t)
	const replicas = 4
	pools := make([]*pgxpool.Pool, replicas)
	keys := make([]*kms.Key, replicas)
	for i := range pools {
		pools[i] = pgtest.Connect(t, url)
		keys[i] = open(t, uri)
	}
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		results = make([]kms.Loaded, replicas)
		errs    = make([]error, replicas)
	)
	for i := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = kms.Load(ctx, pools[i], keys[i], kms.Seal)
		}()
	}
	close(start)
	wg.Wait()
	created := 0
	for i := range replicas {
		if errs[i] != nil {
			t.Fatalf("replica %d: %v", i, errs[i])
		}
		if results[i].Created != "" {
			created++
		}
		if results[i].Keys[0].ID() != results[0].Keys[0].ID() {
			t.Fatalf("replicas seal with different data keys: %s and %s", results[i].Keys[0].ID(), results[0].Keys[0].ID())
		}
	}
	stored, err := db.DataKeys(ctx, pools[0])
	if err != nil || len(stored) != 1 || created != 1 {
		t.Fatalf("%d rows, %d replicas created one (%v)", len(stored), created, err)
	}
}

// TestRewrapMovesTheDataKeysToAnotherKMSKey: re-wrapping keeps every data key (id and key) and
// re-seals nothing; afterwards only the new KMS key opens them, and running it again does nothing.
func TestRewrapMovesTheDataKeysToAnotherKMSKey(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	oldURI, _ := localKey(t)
	newURI, _ := localKey(t)
	oldKey, newKey := open(t, oldURI), open(t, newURI)
	before, err := kms.Load(ctx, pool, oldKey, kms.Seal)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kms.Rewrap(ctx, pool, oldKey, oldKey); err == nil || !strings.Contains(err.Error(), "same KMS key") {
		t.Fatalf("re-wrap under the same key: %v", err)
	}
	ids, err := kms.Rewrap(ctx, pool, oldKey, newKey)
	if err != nil || fmt.Sprint(ids) != fmt.Sprint([]string{before.Created}) {
		t.Fatalf("re-wrapped %v, %v", ids, err)
	}
	after, err := kms.Load(ctx, pool, newKey, kms.Seal)
	if err != nil || after.Created != "" || len(after.Keys) != 1 || string(after.Keys[0].Reveal()) != string(before.Keys[0].Reveal()) {
		t.Fatalf("after the re-wrap: %v, created %q", err, after.Created)
	}
	if _, err := kms.Load(ctx, pool, oldKey, kms.Seal); err == nil {
		t.Fatal("the old KMS key still seals")
	}
	if ids, err := kms.Rewrap(ctx, pool, oldKey, newKey); err != nil || len(ids) != 0 {
		t.Fatalf("second re-wrap: %v %v", ids, err)
	}
}

// TestAnUnreachableKMSFailsTheLoad: a KMS that does not answer (a Vault whose address nobody
// listens on) fails the load — making the first data key, or unwrapping a stored one — with one
// line saying which, and stores nothing.
func TestAnUnreachableKMSFailsTheLoad(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	t.Setenv("VAULT_ADDR", "http://"+addr)
	t.Setenv("VAULT_TOKEN", "test-token")
	k := open(t, "hashivault://resolverd")
	_, err = kms.Load(ctx, pool, k, kms.Seal)
	if err == nil || !strings.Contains(err.Error(), "the KMS key hashivault://resolverd cannot wrap") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("making the first data key with the KMS down: %v", err)
	}
	if n, _ := db.DataKeys(ctx, pool); len(n) != 0 {
		t.Fatalf("%d data keys stored", len(n))
	}
	id := keyring.NewMaterial().ID()
	exec(t, pool, `INSERT INTO data_encryption_keys (id, wrapped, kms_key, sealing) VALUES ($1, 'vault:v1:x', 'hashivault://resolverd', true)`, id)
	_, err = kms.Load(ctx, pool, k, kms.Seal)
	if err == nil || !strings.Contains(err.Error(), "cannot unwrap data-encryption key "+id) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("unwrapping with the KMS down: %v", err)
	}
	t.Log(err)
}

func exec(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// TestMigrateDownKeepsTheDataKeysWhileTheySeal: going below version 14 drops data_encryption_keys;
// while a secret is sealed by a data key that only that table holds, it refuses and says how to
// move out first.
func TestMigrateDownKeepsTheDataKeysWhileTheySeal(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	uri, _ := localKey(t)
	l, err := kms.Load(ctx, pool, open(t, uri), kms.Seal)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.New(l.Keys...)
	if err != nil {
		t.Fatal(err)
	}
	s := db.New(pool, kr)
	p, err := s.CreateProvider(ctx, resolve.Provider{ID: uuid.New(), Type: "openai", Name: "down", Enabled: true, BYOKPolicy: resolve.BYOKDisabled})
	if err != nil {
		t.Fatal(err)
	}
	k, err := s.AddProviderKey(ctx, uuid.New(), p.ID, secret.New("sk-down"), true)
	if err != nil {
		t.Fatal(err)
	}
	m, err := db.NewMigrator(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	_, err = m.DownTo(ctx, 13)
	if err == nil || !strings.Contains(err.Error(), "cannot go below version 14: 1 secret(s) are sealed by data-encryption keys") {
		t.Fatalf("down with a secret sealed by a data key: %v", err)
	}
	if n, _ := db.DataKeys(ctx, pool); len(n) != 1 {
		t.Fatalf("the refused down left %d data keys", len(n))
	}
	if err := s.DeleteProviderKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	// The audit events written meanwhile are keyed by the data key, which only that table holds.
	_, err = m.DownTo(ctx, 13)
	if err == nil || !strings.Contains(err.Error(), "audit event(s) are keyed by data-encryption keys") {
		t.Fatalf("down with audit events keyed by a data key: %v", err)
	}
	exec(t, pool, `DELETE FROM audit_events`) // as retention would
	if _, err := m.DownTo(ctx, 13); err != nil {
		t.Fatalf("down with no secret sealed, and no event keyed, by a data key: %v", err)
	}
}
