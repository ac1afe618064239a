package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pressly/goose/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/resolverd/resolverd/internal/apitoken"
	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/keyring"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/internal/resolve"
	"github.com/resolverd/resolverd/internal/testenv"
	"github.com/resolverd/resolverd/migrations"
	"github.com/resolverd/resolverd/pkg/secret"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// cli runs one command in-process with env as its environment.
func cli(ctx context.Context, env map[string]string, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(ctx, args, func(k string) string { return env[k] }, &out, &errb)
	return code, out.String(), errb.String()
}

func TestVersionAndUsage(t *testing.T) {
	code, out, _ := cli(context.Background(), nil, "version")
	if code != 0 || !strings.HasPrefix(out, "resolverd ") || !strings.Contains(out, fmt.Sprintf("schema version %d", db.LatestVersion())) {
		t.Fatalf("version: code %d, %q", code, out)
	}
	if code, _, errOut := cli(context.Background(), nil, "frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("unknown command: code %d, %q", code, errOut)
	}
	if code, _, _ := cli(context.Background(), nil); code != 2 {
		t.Fatalf("no command: code %d", code)
	}
	if code, _, errOut := cli(context.Background(), nil, "serve", "-h"); code != 0 || !strings.Contains(errOut, "-database-url") {
		t.Fatalf("serve -h: code %d, %q", code, errOut)
	}
}

// TestHelpNeverShowsTheEnvironment: in a pod the database URL, the encryption keys and tokens come
// from Secrets through RESOLVER_* variables; "-h" shows the built-in defaults, never those values,
// while the values still take effect (and the command line still wins over them).
func TestHelpNeverShowsTheEnvironment(t *testing.T) {
	env := map[string]string{
		"RESOLVER_DATABASE_URL":    "postgres://u:pw-TOPSECRET@127.0.0.1:1/db",
		"RESOLVER_ENCRYPTION_KEYS": "a2V5LW1hdGVyaWFsLVRPUFNFQ1JFVA==",
		"RESOLVER_TOKEN":           "rsv_TOPSECRET",
		"RESOLVER_KMS_KEY_URI":     "base64key://TOPSECRET",
	}
	for _, args := range [][]string{{"serve", "-h"}, {"dev", "-h"}, {"migrate", "up", "-h"}, {"token", "create", "-h"},
		{"keys", "rotate", "-h"}, {"resolve", "-h"}, {"audit", "verify", "-h"}} {
		code, out, errOut := cli(context.Background(), env, args...)
		if code != 0 || !strings.Contains(errOut, "RESOLVER_") {
			t.Errorf("%v: code %d, no flag list: %q", args, code, errOut)
		}
		if strings.Contains(out+errOut, "TOPSECRET") || strings.Contains(out+errOut, "a2V5LW1hdGVyaWFs") {
			t.Errorf("%v printed a value from the environment:\n%s", args, errOut)
		}
	}
	// The environment's values are used: migrate reaches for the (unreachable) database it names,
	// and says so without the password; a flag given on the command line wins over it.
	code, _, errOut := cli(context.Background(), env, "migrate", "status")
	if code != 1 || !strings.Contains(errOut, "127.0.0.1") || strings.Contains(errOut, "TOPSECRET") {
		t.Errorf("migrate status with RESOLVER_DATABASE_URL: code %d, %q", code, errOut)
	}
	code, _, errOut = cli(context.Background(), env, "migrate", "status", "--database-url", "postgres://u:p@127.0.0.2:1/other")
	if code != 1 || !strings.Contains(errOut, "127.0.0.2") {
		t.Errorf("--database-url did not win over the environment: code %d, %q", code, errOut)
	}
}

// TestBadFlagsAreOneLine: docs/CONTRACT.md §8 — failures exit non-zero with a one-line reason; a bad flag is
// not answered with the whole flag list.
func TestBadFlagsAreOneLine(t *testing.T) {
	for _, args := range [][]string{
		{"frobnicate"},
		{"serve", "--bogus"},
		{"serve", "--listen"},
		{"serve", "--allow-byok=perhaps"},
		{"dev", "--demo=maybe"},
		{"migrate", "up", "--to"},
		{"migrate", "status", "--nope"},
		{"token", "create", "--ttl", "soon"},
		{"keys", "rotate", "--batch-size", "many"},
		{"keys", "rotate", "--database-url", "postgres://x@127.0.0.1:1/db", "--format", "3"},
		{"audit", "verify", "--since"},
		{"resolve", "--chat"},
		{"serve", "--database-url", "postgres://x@127.0.0.1:1/db", "--encryption-keys", keyring.Generate(), "--audit-resolutions", "some"},
		{"serve", "--database-url", "postgres://x@127.0.0.1:1/db", "--encryption-keys", keyring.Generate(), "--audit-summary-window", "0s"},
	} {
		code, out, errOut := cli(context.Background(), nil, args...)
		if code == 0 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasSuffix(errOut, "\n") {
			t.Errorf("%v: code %d, stdout %q, stderr %q; want a non-zero code and one line on stderr", args, code, out, errOut)
		}
	}
}

func TestMigrateUpDownStatus(t *testing.T) {
	ctx := context.Background()
	env := map[string]string{"RESOLVER_DATABASE_URL": pgtest.NewEmptyDatabase(t)}
	latest := db.LatestVersion()
	// How many migrations there are: numbers are handed out ahead of merging, so there may be gaps.
	count := 1 // the cutover, a Go migration
	entries, err := fs.ReadDir(migrations.FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, err := goose.NumericComponent(e.Name()); err == nil {
			count++
		}
	}

	code, out, errOut := cli(ctx, env, "migrate", "status")
	if code != 0 || strings.Count(out, "pending") != count {
		t.Fatalf("status on an empty database: code %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut = cli(ctx, env, "migrate", "up", "--to", "2"); code != 0 || !strings.Contains(out, "00002") || strings.Contains(out, "00003") {
		t.Fatalf("up --to 2: code %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut = cli(ctx, env, "migrate", "up"); code != 0 || !strings.Contains(out, fmt.Sprintf("%05d", latest)) {
		t.Fatalf("up: code %d\n%s%s", code, out, errOut)
	}
	if code, out, _ = cli(ctx, env, "migrate", "up"); code != 0 || !strings.Contains(out, "nothing to do") {
		t.Fatalf("second up: code %d\n%s", code, out)
	}
	if code, out, _ = cli(ctx, env, "migrate", "status"); code != 0 || strings.Count(out, "applied") != count {
		t.Fatalf("status after up: code %d\n%s", code, out)
	}
	if code, out, errOut = cli(ctx, env, "migrate", "down"); code != 0 || !strings.Contains(out, fmt.Sprintf("%05d", latest)) {
		t.Fatalf("down one step: code %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut = cli(ctx, env, "migrate", "down", "--to", "0"); code != 0 {
		t.Fatalf("down --to 0: code %d\n%s", code, errOut)
	}
	if code, out, _ = cli(ctx, env, "migrate", "status"); strings.Count(out, "pending") != count {
		t.Fatalf("status after down --to 0: code %d\n%s", code, out)
	}
	if code, out, errOut = cli(ctx, env, "migrate", "up"); code != 0 {
		t.Fatalf("up again after going down: code %d\n%s%s", code, out, errOut)
	}

	for _, bad := range [][]string{
		{"migrate", "sideways"},
		{"migrate", "up", "--to", "x"},
		{"migrate", "up", "--to", fmt.Sprint(latest + 1)},
	} {
		if code, _, errOut := cli(ctx, env, bad...); code == 0 || strings.Count(strings.TrimSpace(errOut), "\n") > 1 {
			t.Errorf("%v: code %d, want a failure with a short reason; stderr %q", bad, code, errOut)
		}
	}
	if code, _, errOut := cli(ctx, nil, "migrate", "up"); code != 1 || !strings.Contains(errOut, "RESOLVER_DATABASE_URL") {
		t.Errorf("migrate without a database: code %d, %q", code, errOut)
	}
}

func TestTokenCreate(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	env := map[string]string{"RESOLVER_DATABASE_URL": url}
	// The encryption keys are required: they key the token's record in the audit trail.
	code, _, errOut := cli(ctx, env, "token", "create", "--name", "workers", "--scope", "chat:read")
	if code != 1 || !strings.Contains(errOut, "RESOLVER_ENCRYPTION_KEYS") {
		t.Fatalf("token create without keys: code %d, %q", code, errOut)
	}
	env["RESOLVER_ENCRYPTION_KEYS"] = keyring.Generate()
	code, out, errOut := cli(ctx, env, "token", "create", "--name", "workers", "--scope", "chat:read", "--scope", "model_config:read", "--ttl", "1h")
	if code != 0 {
		t.Fatalf("token create: code %d: %s", code, errOut)
	}
	tok := strings.TrimSuffix(out, "\n")
	if !apitoken.Valid(tok) || strings.Contains(tok, "\n") {
		t.Fatalf("stdout should be the token alone, got %q", out)
	}
	if strings.Contains(errOut, tok) {
		t.Fatal("the token was printed on stderr too")
	}
	pool := pgtest.Connect(t, url)
	got, ok, err := db.New(pool, nil).ActiveToken(ctx, apitoken.Hash(tok))
	if err != nil || !ok {
		t.Fatalf("the printed token is not active: %v %v", ok, err)
	}
	if got.Name != "workers" || strings.Join(got.Scopes, " ") != "chat:read model_config:read" || got.ExpiresAt == nil ||
		got.ExpiresAt.Before(time.Now().Add(59*time.Minute)) || got.ExpiresAt.After(time.Now().Add(61*time.Minute)) {
		t.Fatalf("stored token %+v", got)
	}
	var hashes int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM api_tokens WHERE position($1::bytea in token_hash) > 0`, []byte(tok)).Scan(&hashes); err != nil || hashes != 0 {
		t.Fatalf("the token itself is stored: %d %v", hashes, err)
	}

	for _, bad := range [][]string{
		{"token", "create", "--scope", "chat:read"},
		{"token", "create", "--name", "x"},
		{"token", "create", "--name", "x", "--scope", "chat:delete"},
		{"token", "create", "--name", "x", "--scope", "chat:read", "--ttl", "-1h"},
		{"token", "revoke"},
	} {
		code, out, errOut := cli(ctx, env, bad...)
		if code == 0 || out != "" {
			t.Errorf("%v: code %d stdout %q, want a failure and nothing on stdout (stderr %q)", bad, code, out, errOut)
		}
	}
}

func TestServeRefusesWhatItCannotServe(t *testing.T) {
	ctx := context.Background()
	key := keyring.Generate()

	behind := pgtest.NewEmptyDatabase(t)
	if code, _, errOut := cli(ctx, map[string]string{"RESOLVER_DATABASE_URL": behind}, "migrate", "up", "--to", "2"); code != 0 {
		t.Fatal(errOut)
	}
	current := pgtest.NewDatabase(t)

	// Seal one secret with another key, as a deployment whose old key was dropped too early.
	other, err := keyring.Parse(keyring.Generate())
	if err != nil {
		t.Fatal(err)
	}
	sealedElsewhere := pgtest.NewDatabase(t)
	store := db.New(pgtest.Connect(t, sealedElsewhere), other)
	p, err := store.CreateProvider(ctx, resolve.Provider{ID: uuid.New(), Type: "openai", Name: "openai", Enabled: true, BYOKPolicy: resolve.BYOKDisabled})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.AddProviderKey(ctx, uuid.New(), p.ID, secret.New("sk-sealed-by-the-other-key"), true); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"schema behind", map[string]string{"RESOLVER_DATABASE_URL": behind, "RESOLVER_ENCRYPTION_KEYS": key}, nil, "behind"},
		{"no database url", map[string]string{"RESOLVER_ENCRYPTION_KEYS": key}, nil, "--database-url"},
		{"no encryption keys", map[string]string{"RESOLVER_DATABASE_URL": current}, nil, "encryption keys"},
		{"malformed key", map[string]string{"RESOLVER_DATABASE_URL": current, "RESOLVER_ENCRYPTION_KEYS": "c2hvcnQ="}, nil, "32"},
		{"key not given", map[string]string{"RESOLVER_DATABASE_URL": sealedElsewhere, "RESOLVER_ENCRYPTION_KEYS": key}, nil, other.IDs()[0]},
		{"bad bool env", map[string]string{"RESOLVER_DATABASE_URL": current, "RESOLVER_ENCRYPTION_KEYS": key, "RESOLVER_ALLOW_BYOK": "maybe"}, nil, "RESOLVER_ALLOW_BYOK"},
		{"neither TLS nor plaintext", map[string]string{"RESOLVER_DATABASE_URL": current, "RESOLVER_ENCRYPTION_KEYS": key, "RESOLVER_PLAINTEXT": "false"}, nil, "--plaintext"},
		{"a client CA without a certificate", map[string]string{"RESOLVER_DATABASE_URL": current, "RESOLVER_ENCRYPTION_KEYS": key}, []string{"--tls-client-ca", "/nonexistent"}, "--tls-client-ca"},
		{"a certificate that does not load", map[string]string{"RESOLVER_DATABASE_URL": current, "RESOLVER_ENCRYPTION_KEYS": key}, []string{"--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"}, "/nonexistent.pem"},
		{"a JWT issuer without an audience", map[string]string{"RESOLVER_DATABASE_URL": current, "RESOLVER_ENCRYPTION_KEYS": key, "RESOLVER_JWT_ISSUER": "https://issuer.example"}, nil, "--jwt-issuer and --jwt-audience go together"},
		{"a JWT audience without an issuer", map[string]string{"RESOLVER_DATABASE_URL": current, "RESOLVER_ENCRYPTION_KEYS": key, "RESOLVER_JWT_AUDIENCE": "resolverd"}, nil, "--jwt-issuer and --jwt-audience go together"},
		{"a JWKS URL alone", map[string]string{"RESOLVER_DATABASE_URL": current, "RESOLVER_ENCRYPTION_KEYS": key, "RESOLVER_JWT_JWKS_URL": "https://issuer.example/jwks"}, nil, "--jwt-jwks-url needs"},
		{"an issuer to discover that is no URL", map[string]string{"RESOLVER_DATABASE_URL": current, "RESOLVER_ENCRYPTION_KEYS": key, "RESOLVER_JWT_ISSUER": "kubernetes/serviceaccount", "RESOLVER_JWT_AUDIENCE": "resolverd"}, nil, "--jwt-jwks-url"},
		{"unreachable database", map[string]string{"RESOLVER_DATABASE_URL": "postgres://x:y@" + testenv.FreeAddr(t) + "/db?connect_timeout=2", "RESOLVER_ENCRYPTION_KEYS": key}, nil, "connect"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := []string{"serve", "--listen", testenv.FreeAddr(t)}
			if c.env["RESOLVER_PLAINTEXT"] == "" && len(c.args) == 0 {
				args = append(args, "--plaintext")
			}
			code, _, errOut := cli(ctx, c.env, append(args, c.args...)...)
			if code != 1 || !strings.Contains(errOut, c.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Fatalf("code %d, stderr %q; want exit 1 and one line mentioning %q", code, errOut, c.want)
			}
			if strings.Contains(errOut, key) || strings.Contains(errOut, ":y@") {
				t.Fatalf("stderr shows a secret: %q", errOut)
			}
		})
	}
}

func TestServeServesAndStopsOnSignal(t *testing.T) {
	url := pgtest.NewDatabase(t)
	addr, metricsAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var errOut string
	go func() {
		code, _, e := cli(ctx, map[string]string{"RESOLVER_DATABASE_URL": url, "RESOLVER_ENCRYPTION_KEYS": keyring.Generate()},
			"serve", "--plaintext", "--listen", addr, "--metrics-listen", metricsAddr)
		errOut = e
		done <- code
	}()
	exited := false
	defer func() { // a failure below must not leave serve running
		if !exited {
			cancel()
			<-done
		}
	}()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve never reported SERVING: %v %v", resp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Resolutions right before the signal: their audit records are still in the writer's buffer
	// (flushed every 100 ms) and must reach the database before serve exits.
	pool := pgtest.Connect(t, url)
	store := db.New(pool, nil)
	p, err := store.CreateProvider(context.Background(), resolve.Provider{ID: uuid.New(), Type: "bedrock", Name: "b", Enabled: true, BYOKPolicy: resolve.BYOKDisabled})
	if err != nil {
		t.Fatal(err)
	}
	c, err := store.CreateModelConfig(context.Background(), resolve.ModelConfig{ID: uuid.New(), ProviderID: p.ID, Model: "m", Enabled: true, IsDefault: true, ContextLimit: 10, Options: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	u := uuid.New()
	if _, err := store.PutUser(context.Background(), u, "u"); err != nil {
		t.Fatal(err)
	}
	chat, err := store.PutChat(context.Background(), uuid.New(), u, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	tok, hash := apitoken.New()
	if _, err := store.CreateToken(context.Background(), uuid.New(), "w", []string{"*"}, hash, nil); err != nil {
		t.Fatal(err)
	}
	rctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok.Reveal())
	const n = 25
	for range n {
		if _, err := resolverv1.NewResolverServiceClient(conn).ResolveModel(rctx, &resolverv1.ResolveModelRequest{ChatId: chat.ID.String(), Purpose: resolverv1.Purpose_PURPOSE_CHAT}); err != nil {
			t.Fatal(err)
		}
	}
	// --metrics-listen serves Prometheus' text format, the resolutions above counted.
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatalf("--metrics-listen: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf(`resolverd_resolutions_total{credential_source="ambient",outcome="OK",purpose="chat"} %d`, n); resp.StatusCode != 200 || !strings.Contains(string(body), want) {
		t.Errorf("/metrics: %s, lacks %q", resp.Status, want)
	}
	cancel() // what SIGTERM does through signal.NotifyContext
	select {
	case code := <-done:
		exited = true
		if code != 0 {
			t.Fatalf("serve exited %d after the signal: %s", code, errOut)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop after the signal")
	}
	if !strings.Contains(errOut, `"msg":"serving"`) || !strings.Contains(errOut, `"msg":"shutting down"`) {
		t.Fatalf("serve's log lacks its start and stop lines:\n%s", errOut)
	}
	var recorded int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_events WHERE action = 'ResolveModel'`).Scan(&recorded); err != nil || recorded != n {
		t.Fatalf("%d of %d resolutions were recorded by the time serve exited (%v)", recorded, n, err)
	}
}

func TestMigratePreflight(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewEmptyDatabase(t)
	env := map[string]string{"RESOLVER_DATABASE_URL": url}
	if code, _, errOut := cli(ctx, env, "migrate", "up", "--to", "1"); code != 0 {
		t.Fatal(errOut)
	}
	pool := pgtest.Connect(t, url)
	mustExec := func(sql string) {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	mustExec(`INSERT INTO chat_model_configs (id, provider, model) VALUES ('00000000-0000-4000-8000-000000000001', 'openai', 'gpt-4o'),
		('00000000-0000-4000-8000-000000000002', 'anthropic', 'claude')`)

	code, out, errOut := cli(ctx, env, "migrate", "preflight")
	if code != 1 || strings.Count(out, "CONFLICT model_config_without_provider") != 2 || !strings.Contains(errOut, "2 conflict(s)") {
		t.Fatalf("preflight with two conflicts: code %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := cli(ctx, env, "migrate", "up"); code != 1 || !strings.Contains(errOut, "00000000-0000-4000-8000-000000000001") {
		t.Fatalf("up with conflicts: code %d, %s", code, errOut)
	}
	mustExec(`INSERT INTO chat_providers (id, provider) VALUES (gen_random_uuid(), 'openai'), (gen_random_uuid(), 'anthropic')`)
	if code, out, _ := cli(ctx, env, "migrate", "preflight"); code != 0 || !strings.Contains(out, "no conflicts") {
		t.Fatalf("preflight after the fix: code %d\n%s", code, out)
	}
	if code, _, errOut := cli(ctx, env, "migrate", "up"); code != 0 {
		t.Fatalf("up after the fix: %s", errOut)
	}
	if code, out, _ := cli(ctx, env, "migrate", "preflight"); code != 0 || !strings.Contains(out, "already applied") {
		t.Fatalf("preflight after the cutover: code %d\n%s", code, out)
	}
}

// TestUnreadableEnvironmentIsOneLine: a RESOLVER_* value a flag cannot take fails the command
// with one line naming the variable and what it should be.
func TestUnreadableEnvironmentIsOneLine(t *testing.T) {
	env := map[string]string{"RESOLVER_ALLOW_BYOK": "perhaps", "RESOLVER_CACHE_TTL": "-1s", "RESOLVER_CACHE_MAX_ENTRIES": "many", "RESOLVER_RATE_LIMIT": "fast"}
	code, _, errOut := cli(context.Background(), env, "serve", "--plaintext")
	if code != 1 || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("code %d, stderr %q", code, errOut)
	}
	for _, want := range []string{`RESOLVER_ALLOW_BYOK="perhaps" is not a boolean`, `RESOLVER_CACHE_TTL="-1s" is not a duration`,
		`RESOLVER_CACHE_MAX_ENTRIES="many" is not a whole number`, `RESOLVER_RATE_LIMIT="fast" is not a number`} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr %q lacks %q", errOut, want)
		}
	}
}
