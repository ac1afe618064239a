package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/resolverd/resolverd/internal/apitoken"
	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/keyring"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// The KMS in these tests is base64key:// (gocloud.dev/secrets/localsecrets): a key held in the URI,
// generated per test. No test needs a cloud KMS.

// localKMSKey returns a new base64key:// URI and the key material it holds.
func localKMSKey(t *testing.T) (uri, material string) {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	material = base64.URLEncoding.EncodeToString(b)
	return "base64key://" + material, material
}

// served is `resolverd serve --plaintext` run in-process by a test, with a World over it whose
// admin and worker calls use one token.
type served struct {
	*testenv.World
	stop func() (code int, stderr string)
}

// startServe runs serve with env until stop (or the test's end), and waits until it is SERVING.
func startServe(t *testing.T, env map[string]string, token string) *served {
	t.Helper()
	addr := testenv.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		code   int
		stderr string
	}
	done := make(chan result, 1)
	go func() {
		code, _, errOut := cli(ctx, env, "serve", "--plaintext", "--listen", addr)
		done <- result{code, errOut}
	}()
	var once sync.Once
	var res result
	stop := func() (int, string) {
		once.Do(func() { cancel(); res = <-done })
		return res.code, res.stderr
	}
	t.Cleanup(func() { stop() })
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		select {
		case r := <-done:
			once.Do(func() { cancel(); res = r })
			t.Fatalf("serve exited %d before serving: %s", r.code, r.stderr)
		default:
		}
		resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve never reported SERVING: %v %v", resp, err)
		}
	}
	env2 := &testenv.Env{Pool: pgtest.Connect(t, env["RESOLVER_DATABASE_URL"]), Addr: addr, Conn: conn,
		Admin: resolverv1.NewAdminServiceClient(conn), Resolver: resolverv1.NewResolverServiceClient(conn),
		AdminToken: token, WorkerToken: token}
	return &served{World: &testenv.World{T: t, Env: env2}, stop: stop}
}

// stopServe stops s and fails t unless it exited 0.
func stopServe(t *testing.T, s *served) string {
	t.Helper()
	code, errOut := s.stop()
	if code != 0 {
		t.Fatalf("serve exited %d: %s", code, errOut)
	}
	return errOut
}

// serveRefuses runs serve with env and returns its one line on stderr; it fails t unless serve
// exits 1 with exactly one line.
func serveRefuses(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code, out, errOut := cli(ctx, env, append([]string{"serve", "--plaintext", "--listen", testenv.FreeAddr(t)}, args...)...)
	if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "resolverd serve: ") {
		t.Fatalf("serve: code %d, stdout %q, stderr %q; want exit 1 and one line", code, out, errOut)
	}
	return errOut
}

// keysWorld is what every move must keep: chats answered with a central key, and chats answered
// with their owner's own key.
type keysWorld struct {
	want map[string]string // chat id → the API key its resolution must carry
}

func buildKeys(t *testing.T, w *testenv.World) keysWorld {
	t.Helper()
	kw := keysWorld{want: map[string]string{}}
	for i := range 3 {
		name := "central-" + string(rune('a'+i))
		p := w.Provider(name, "openai", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
		w.CentralKey(p.Id, "sk-"+name)
		c := w.Config(p.Id, "m-"+name, false)
		kw.want[w.Chat(w.User("owner-"+name).Id, c.Id).Id] = "sk-" + name
	}
	p := w.Provider("own", "anthropic", resolverv1.ByokPolicy_BYOK_POLICY_REQUIRED)
	c := w.Config(p.Id, "m-own", false)
	for i := range 3 {
		u := w.User("byok-" + string(rune('a'+i)))
		w.UserKey(u.Id, p.Id, "sk-user-"+u.Username)
		kw.want[w.Chat(u.Id, c.Id).Id] = "sk-user-" + u.Username
	}
	return kw
}

// check resolves every chat and fails t unless each carries its key.
func (kw keysWorld) check(t *testing.T, w *testenv.World, when string) {
	t.Helper()
	for chat, want := range kw.want {
		res, err := w.Resolve(chat, "", resolverv1.Purpose_PURPOSE_CHAT)
		if err != nil || res.GetCredential().GetApiKey() != want {
			t.Fatalf("%s: chat %s resolved to %q, %v; want %q", when, chat, res.GetCredential().GetApiKey(), err, want)
		}
	}
}

func sealingDataKey(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	return scalar[string](t, pool, `SELECT id FROM data_encryption_keys WHERE sealing`)
}

// TestServeWithAKMSKey: serve --kms-key-uri makes the data-encryption key (wrapped by the KMS key)
// on an empty table, seals with it and resolves; restarted with the same URI it reads what it
// sealed; with another KMS key, or when the KMS does not unwrap, it refuses to start in one line.
func TestServeWithAKMSKey(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	uri, material := localKMSKey(t)
	env := map[string]string{"RESOLVER_DATABASE_URL": url, "RESOLVER_KMS_KEY_URI": uri}
	code, tok, errOut := cli(ctx, env, "token", "create", "--name", "admin", "--scope", "*")
	if code != 0 {
		t.Fatalf("token create with a KMS key: %s", errOut)
	}
	tok = strings.TrimSpace(tok)

	s := startServe(t, env, tok)
	kw := buildKeys(t, s.World)
	kw.check(t, s.World, "first start")
	pool := s.Pool
	dek := sealingDataKey(t, pool)
	if n := scalar[int](t, pool, `SELECT count(*) FROM data_encryption_keys`); n != 1 {
		t.Fatalf("%d data keys", n)
	}
	if n := scalar[int](t, pool, `SELECT (SELECT count(*) FROM ai_provider_keys WHERE api_key_key_id <> $1) +
		(SELECT count(*) FROM user_ai_provider_keys WHERE api_key_key_id <> $1)`, dek); n != 0 {
		t.Fatalf("%d secrets not sealed by the data key %s", n, dek)
	}
	if !scalar[bool](t, pool, `SELECT EXISTS (SELECT 1 FROM encryption_keys WHERE id = $1)`, dek) {
		t.Fatal("the data key is not in the encryption_keys registry")
	}
	logs := stopServe(t, s)
	if strings.Contains(logs, material) || !strings.Contains(logs, `"kms_key":"base64key://sha256:`) || !strings.Contains(logs, dek) {
		t.Fatalf("serve's log names the KMS key wrongly (or shows it):\n%s", logs)
	}

	// Restarted with the same URI: the data key is unwrapped again, not made anew.
	s = startServe(t, env, tok)
	kw.check(t, s.World, "restart")
	stopServe(t, s)
	if n := scalar[int](t, pool, `SELECT count(*) FROM data_encryption_keys`); n != 1 {
		t.Fatalf("%d data keys after a restart", n)
	}

	// Another KMS key: refused, naming both, before serving anything.
	other, otherMaterial := localKMSKey(t)
	line := serveRefuses(t, map[string]string{"RESOLVER_DATABASE_URL": url, "RESOLVER_KMS_KEY_URI": other})
	if !strings.Contains(line, "wrapped by the KMS key base64key://sha256:") || strings.Contains(line, material) || strings.Contains(line, otherMaterial) {
		t.Fatalf("another KMS key: %q", line)
	}
	// The KMS does not unwrap the stored data key (another key under the same name, no permission):
	// refused, naming the data key.
	exec(t, pool, `UPDATE data_encryption_keys SET wrapped = '\x000102030405'::bytea WHERE id = $1`, dek)
	line = serveRefuses(t, env)
	if !strings.Contains(line, "cannot unwrap data-encryption key "+dek) || strings.Contains(line, material) {
		t.Fatalf("a data key the KMS does not unwrap: %q", line)
	}
}

// TestKeysRotateMovesIntoTheKMSAndOut: an installation on --encryption-keys moves to a KMS key with
// one `keys rotate`, after which serve --kms-key-uri alone serves every key; the KMS key is
// rotated (the data key re-wrapped, nothing re-sealed); the installation moves back to new
// --encryption-keys with one more `keys rotate`; and audit verify, given the old sources beside the
// new one, verifies the whole trail.
func TestKeysRotateMovesIntoTheKMSAndOut(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	old := keyring.Generate()
	oldRing, _ := keyring.Parse(old)
	code, tok, errOut := cli(ctx, map[string]string{"RESOLVER_DATABASE_URL": url, "RESOLVER_ENCRYPTION_KEYS": old},
		"token", "create", "--name", "admin", "--scope", "*")
	if code != 0 {
		t.Fatal(errOut)
	}
	tok = strings.TrimSpace(tok)
	s := startServe(t, map[string]string{"RESOLVER_DATABASE_URL": url, "RESOLVER_ENCRYPTION_KEYS": old}, tok)
	kw := buildKeys(t, s.World)
	kw.check(t, s.World, "on --encryption-keys")
	stopServe(t, s)
	pool := s.Pool

	// Into the KMS. Until keys rotate has run, serve with the KMS key alone refuses.
	uri, _ := localKMSKey(t)
	kmsOnly := map[string]string{"RESOLVER_DATABASE_URL": url, "RESOLVER_KMS_KEY_URI": uri}
	line := serveRefuses(t, kmsOnly)
	if !strings.Contains(line, oldRing.IDs()[0]) || !strings.Contains(line, "--from-encryption-keys") {
		t.Fatalf("serve with the KMS key before the move: %q", line)
	}
	// The rolling way: replicas on the KMS key that still open OLD serve every key, and seal what
	// they write with the data key.
	s = startServe(t, map[string]string{"RESOLVER_DATABASE_URL": url, "RESOLVER_KMS_KEY_URI": uri, "RESOLVER_FROM_ENCRYPTION_KEYS": old}, tok)
	kw.check(t, s.World, "on the KMS key, still opening OLD")
	p := s.Provider("during-the-move", "openai", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	k := s.CentralKey(p.Id, "sk-during-the-move")
	kw.want[s.Chat(s.User("owner-during").Id, s.Config(p.Id, "m-during", false).Id).Id] = "sk-during-the-move"
	stopServe(t, s)
	if got := scalar[string](t, pool, `SELECT api_key_key_id FROM ai_provider_keys WHERE id = $1`, k.Id); got != sealingDataKey(t, pool) {
		t.Fatalf("a key written during the move is sealed by %s, not by the data key", got)
	}

	code, out, errOut := cli(ctx, map[string]string{"RESOLVER_DATABASE_URL": url}, "keys", "rotate", "--kms-key-uri", uri, "--from-encryption-keys", old)
	if code != 0 {
		t.Fatalf("keys rotate into the KMS: %s%s", out, errOut)
	}
	dek := sealingDataKey(t, pool)
	for _, want := range []string{"the sealing data-encryption key " + dek + " is wrapped by the KMS key base64key://sha256:",
		"ai_provider_keys: 3/3", "user_ai_provider_keys: 3/3", "done: every secret is sealed by key " + dek,
		"no secret uses key(s) " + oldRing.IDs()[0] + " any more: serve needs only the new keys now"} {
		if !strings.Contains(out, want) {
			t.Errorf("keys rotate's output lacks %q:\n%s", want, out)
		}
	}
	s = startServe(t, kmsOnly, tok)
	kw.check(t, s.World, "after the move into the KMS")
	stopServe(t, s)

	// Rotating the KMS key: the data key is re-wrapped; no secret is re-sealed.
	uri2, _ := localKMSKey(t)
	kms2Only := map[string]string{"RESOLVER_DATABASE_URL": url, "RESOLVER_KMS_KEY_URI": uri2}
	code, out, errOut = cli(ctx, map[string]string{"RESOLVER_DATABASE_URL": url, "RESOLVER_KMS_KEY_URI": uri2, "RESOLVER_FROM_KMS_KEY_URI": uri},
		"keys", "rotate")
	if code != 0 || !strings.Contains(out, "re-wrapped data-encryption key(s) "+dek) || !strings.Contains(out, "done: every secret is sealed by key "+dek) {
		t.Fatalf("keys rotate to another KMS key: code %d\n%s%s", code, out, errOut)
	}
	if strings.Contains(out, "ai_provider_keys: ") {
		t.Errorf("re-wrapping re-sealed secrets:\n%s", out)
	}
	if got := sealingDataKey(t, pool); got != dek {
		t.Fatalf("the sealing data key changed from %s to %s", dek, got)
	}
	if line := serveRefuses(t, kmsOnly); !strings.Contains(line, "wrapped by the KMS key") {
		t.Fatalf("serve with the old KMS key after the re-wrap: %q", line)
	}
	s = startServe(t, kms2Only, tok)
	kw.check(t, s.World, "after the KMS key's rotation")
	stopServe(t, s)

	// Out of the KMS, to new keys.
	next := keyring.Generate()
	nextRing, _ := keyring.Parse(next)
	code, out, errOut = cli(ctx, map[string]string{"RESOLVER_DATABASE_URL": url, "RESOLVER_ENCRYPTION_KEYS": next},
		"keys", "rotate", "--from-kms-key-uri", uri2)
	if code != 0 || !strings.Contains(out, "done: every secret is sealed by key "+nextRing.IDs()[0]) || !strings.Contains(out, dek) {
		t.Fatalf("keys rotate out of the KMS: code %d\n%s%s", code, out, errOut)
	}
	s = startServe(t, map[string]string{"RESOLVER_DATABASE_URL": url, "RESOLVER_ENCRYPTION_KEYS": next}, tok)
	kw.check(t, s.World, "after the move out of the KMS")
	stopServe(t, s)
	if n := scalar[int](t, pool, `SELECT count(*) FROM data_encryption_keys`); n != 1 {
		t.Fatalf("%d data keys after the move out; the data key must stay for audit verify", n)
	}

	// The trail holds events keyed by OLD, by the data key and by NEXT. Verify needs every source;
	// --encryption-keys and --kms-key-uri may be given together.
	code, out, errOut = cli(ctx, map[string]string{"RESOLVER_DATABASE_URL": url, "RESOLVER_ENCRYPTION_KEYS": next}, "audit", "verify")
	if code != 1 || !strings.Contains(errOut, "--kms-key-uri") || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("verify with the newest keys alone: code %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = cli(ctx, map[string]string{"RESOLVER_DATABASE_URL": url, "RESOLVER_ENCRYPTION_KEYS": next + "," + old, "RESOLVER_KMS_KEY_URI": uri2},
		"audit", "verify")
	if code != 0 || !strings.Contains(out, "verified ") {
		t.Fatalf("verify with every source: code %d\n%s%s", code, out, errOut)
	}
	// Every source took part: events keyed by each exist.
	for _, id := range []string{oldRing.IDs()[0], dek, nextRing.IDs()[0]} {
		if n := scalar[int](t, pool, `SELECT count(*) FROM audit_events WHERE mac_key_id = $1`, id); n == 0 {
			t.Errorf("no audit event is keyed by %s", id)
		}
	}
}

// TestTwoReplicasStartingTogetherShareOneDataKey: two serve processes started at once with the
// same KMS key on an empty table make one data key between them: what one seals, the other opens.
func TestTwoReplicasStartingTogetherShareOneDataKey(t *testing.T) {
	url := pgtest.NewDatabase(t)
	uri, _ := localKMSKey(t)
	env := map[string]string{"RESOLVER_DATABASE_URL": url, "RESOLVER_KMS_KEY_URI": uri}
	tok, hash := apitoken.New()
	if _, err := db.New(pgtest.Connect(t, url), nil).CreateToken(context.Background(), uuid.New(), "admin", []string{"*"}, hash, nil); err != nil {
		t.Fatal(err)
	}
	var replicas [2]*served
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replicas[i] = startServe(t, env, tok.Reveal())
		}()
	}
	wg.Wait()
	if replicas[0] == nil || replicas[1] == nil {
		t.Fatal("a replica did not start")
	}
	if n := scalar[int](t, replicas[0].Pool, `SELECT count(*) FROM data_encryption_keys`); n != 1 {
		t.Fatalf("two replicas made %d data keys", n)
	}
	kw := buildKeys(t, replicas[0].World)
	kw.check(t, replicas[1].World, "sealed by one replica, opened by the other")
	for _, r := range replicas {
		stopServe(t, r)
	}
}

// TestKeyFlagsThatDoNotGoTogether: two sealing sources, an unknown KMS scheme, a base64key:// with
// no key, or no keys at all are refused in one line before the database is reached.
func TestKeyFlagsThatDoNotGoTogether(t *testing.T) {
	uri, material := localKMSKey(t)
	key := keyring.Generate()
	unreachable := "postgres://x:y@" + testenv.FreeAddr(t) + "/db?connect_timeout=2"
	cases := []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"serve", "--plaintext", "--encryption-keys", key, "--kms-key-uri", uri}, "give --encryption-keys or --kms-key-uri, not both"},
		{map[string]string{"RESOLVER_ENCRYPTION_KEYS": key, "RESOLVER_KMS_KEY_URI": uri}, []string{"serve", "--plaintext"}, "not both"},
		{nil, []string{"token", "create", "--name", "n", "--scope", "*", "--encryption-keys", key, "--kms-key-uri", uri}, "not both"},
		{nil, []string{"keys", "rotate", "--encryption-keys", key, "--kms-key-uri", uri}, "not both"},
		{nil, []string{"serve", "--plaintext", "--kms-key-uri", "s3://bucket/key"}, `--kms-key-uri: unknown scheme "s3"; the schemes are awskms, gcpkms, azurekeyvault, hashivault, base64key`},
		{nil, []string{"keys", "rotate", "--encryption-keys", key, "--from-kms-key-uri", "gs://x"}, `--from-kms-key-uri: unknown scheme "gs"`},
		{nil, []string{"serve", "--plaintext", "--kms-key-uri", "base64key://"}, "base64key:// needs the key"},
		{nil, []string{"serve", "--plaintext"}, "RESOLVER_KMS_KEY_URI"},
		{nil, []string{"audit", "verify"}, "no encryption keys given"},
		{nil, []string{"keys", "rotate", "--kms-key-uri", uri, "--format", "1"}, "--format 1"},
		{nil, []string{"keys", "rotate", "--kms-key-uri", uri, "--from-encryption-keys", "short"}, "--from-encryption-keys: encryption key #1"},
	}
	for _, c := range cases {
		env := map[string]string{"RESOLVER_DATABASE_URL": unreachable}
		for k, v := range c.env {
			env[k] = v
		}
		args := c.args
		if args[0] == "serve" {
			args = append(args, "--listen", testenv.FreeAddr(t))
		}
		code, out, errOut := cli(context.Background(), env, args...)
		if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: code %d, stdout %q, stderr %q; want exit 1 and one line containing %q", c.args, code, out, errOut, c.want)
		}
		if strings.Contains(errOut, "connect") || strings.Contains(errOut, material) || strings.Contains(errOut, key) {
			t.Errorf("%v: reached for the database, or showed a key: %q", c.args, errOut)
		}
	}
}

// TestMigrateUpChecksTheKMSKey: migrate up --kms-key-uri provisions the data key a fresh
// installation needs (so the first replicas find it) and, run again, checks that the KMS key still
// unwraps it; another KMS key fails the migration's last step with one line, before any replica
// starts.
func TestMigrateUpChecksTheKMSKey(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewEmptyDatabase(t)
	uri, material := localKMSKey(t)
	env := map[string]string{"RESOLVER_DATABASE_URL": url, "RESOLVER_KMS_KEY_URI": uri}
	code, out, errOut := cli(ctx, env, "migrate", "up")
	if code != 0 || !strings.Contains(out, "created data-encryption key ") || strings.Contains(out+errOut, material) {
		t.Fatalf("migrate up --kms-key-uri on a fresh database: %d\n%s\n%s", code, out, errOut)
	}
	pool := pgtest.Connect(t, url)
	dek := sealingDataKey(t, pool)
	if code, out, errOut = cli(ctx, env, "migrate", "up"); code != 0 || !strings.Contains(out, "unwraps its 1 data-encryption key(s)") {
		t.Fatalf("migrate up again: %d\n%s\n%s", code, out, errOut)
	}
	if got := sealingDataKey(t, pool); got != dek {
		t.Fatalf("the data key changed from %s to %s", dek, got)
	}
	other, _ := localKMSKey(t)
	code, _, errOut = cli(ctx, map[string]string{"RESOLVER_DATABASE_URL": url, "RESOLVER_KMS_KEY_URI": other}, "migrate", "up")
	if code == 0 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "base64key://sha256:") {
		t.Fatalf("migrate up with another KMS key: %d %q", code, errOut)
	}
	// The other actions ignore the flag (the migration Job's environment carries it).
	if code, _, errOut = cli(ctx, env, "migrate", "status"); code != 0 {
		t.Fatalf("migrate status with the KMS key in the environment: %s", errOut)
	}
}
