package devmode_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/resolverd/resolverd/internal/devmode"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// devRun is one `resolverd dev` run in the background.
type devRun struct {
	cancel  context.CancelFunc
	done    chan error
	addr    string
	stdout  *syncBuffer
	stderr  *syncBuffer
	stopped bool
}

func startDev(t *testing.T, dir string) *devRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &devRun{cancel: cancel, done: make(chan error, 1), stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	ready := make(chan string, 1)
	go func() {
		r.done <- devmode.Run(ctx, devmode.Options{
			DataDir: dir, Listen: "127.0.0.1:0", Demo: true, AllowBYOK: true,
			Stdout: r.stdout, Stderr: r.stderr, Ready: func(addr string) { ready <- addr },
		})
	}()
	select {
	case r.addr = <-ready:
	case err := <-r.done:
		cancel()
		t.Fatalf("dev exited before serving: %v\n%s", err, r.stderr)
	case <-time.After(2 * time.Minute):
		cancel()
		t.Fatalf("dev did not serve within 2 minutes\n%s", r.stderr)
	}
	// A test that fails before stop must not leave the server and its cluster running (and the
	// cluster must be down before t.TempDir's cleanup removes its directory).
	t.Cleanup(func() {
		if !r.stopped {
			cancel()
			select {
			case <-r.done:
			case <-time.After(time.Minute):
			}
		}
	})
	return r
}

func (r *devRun) stop(t *testing.T) {
	t.Helper()
	r.stopped = true
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("dev returned %v\n%s", err, r.stderr)
		}
	case <-time.After(time.Minute):
		t.Fatal("dev did not stop within a minute")
	}
	if !strings.Contains(r.stderr.String(), "PostgreSQL stopped") {
		t.Fatalf("dev did not report stopping its cluster:\n%s", r.stderr)
	}
}

// tempDataDir returns a data dir the PostgreSQL user can reach when the test runs as root.
func tempDataDir(t *testing.T) string {
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "data")
}

func TestDevServesTheDemoAndRestartsOnItsData(t *testing.T) {
	dir := tempDataDir(t)
	r := startDev(t, dir)

	for _, f := range []string{"admin.token", "worker.token", "database.url", "encryption.key"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	worker := readToken(t, filepath.Join(dir, "worker.token"))
	conn, err := grpc.NewClient(r.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := resolverv1.NewResolverServiceClient(conn)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+worker)

	chat, err := client.ResolveModel(ctx, &resolverv1.ResolveModelRequest{ChatId: devmode.DemoChat.String(), Purpose: resolverv1.Purpose_PURPOSE_CHAT})
	if err != nil {
		t.Fatal(err)
	}
	if chat.GetCredential().GetSource() != resolverv1.CredentialSource_CREDENTIAL_SOURCE_CENTRAL || chat.GetModelConfig().GetId() != devmode.DemoGPT.String() {
		t.Fatalf("demo chat resolved to %v", chat)
	}
	title, err := client.ResolveModel(ctx, &resolverv1.ResolveModelRequest{ChatId: devmode.DemoChat.String(), ModelConfigId: devmode.DemoClaude.String(), Purpose: resolverv1.Purpose_PURPOSE_TITLE})
	if err != nil {
		t.Fatal(err)
	}
	if title.GetCredential().GetSource() != resolverv1.CredentialSource_CREDENTIAL_SOURCE_USER {
		t.Fatalf("title override resolved to %v", title)
	}
	sub, err := client.ResolveModel(ctx, &resolverv1.ResolveModelRequest{ChatId: devmode.DemoChat.String(), ModelConfigId: devmode.DemoRetired.String(), Purpose: resolverv1.Purpose_PURPOSE_SUBAGENT})
	if err != nil {
		t.Fatal(err)
	}
	if !sub.GetDecision().GetFallback() || sub.GetDecision().GetFallbackReason() != "MODEL_CONFIG_DISABLED" {
		t.Fatalf("subagent override on the retired config resolved to %v", sub)
	}
	bedrock, err := client.ResolveModel(ctx, &resolverv1.ResolveModelRequest{ChatId: devmode.DemoChat.String(), ModelConfigId: devmode.DemoBedrockModel.String(), Purpose: resolverv1.Purpose_PURPOSE_SUBAGENT})
	if err != nil {
		t.Fatal(err)
	}
	if bedrock.GetCredential().GetSource() != resolverv1.CredentialSource_CREDENTIAL_SOURCE_AMBIENT {
		t.Fatalf("bedrock config resolved to %v", bedrock)
	}

	// docs/CONTRACT.md §8: admin.token holds `*`, worker.token exactly the worker scopes (the five read
	// scopes ResolveModel needs and credential:report), database.url reaches the cluster.
	admin := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+readToken(t, filepath.Join(dir, "admin.token")))
	tokens, err := resolverv1.NewAdminServiceClient(conn).ListTokens(admin, &resolverv1.ListTokensRequest{})
	if err != nil {
		t.Fatalf("ListTokens with admin.token: %v", err)
	}
	scopesOf := map[string][]string{}
	for _, tk := range tokens.GetTokens() {
		s := slices.Clone(tk.GetScopes())
		slices.Sort(s)
		scopesOf[tk.GetName()] = s
	}
	wantWorker := []string{"ai_provider:read", "ai_provider_key:read", "chat:read", "credential:report", "model_config:read", "user_ai_provider_key:read"}
	var sawAdmin, sawWorker bool
	for _, s := range scopesOf {
		sawAdmin = sawAdmin || slices.Equal(s, []string{"*"})
		sawWorker = sawWorker || slices.Equal(s, wantWorker)
	}
	if !sawAdmin || !sawWorker || len(scopesOf) != 2 {
		t.Errorf("dev's tokens: %v; want one with * and one with exactly %v", scopesOf, wantWorker)
	}
	dbURL, err := os.ReadFile(filepath.Join(dir, "database.url"))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := pgx.Connect(context.Background(), strings.TrimSpace(string(dbURL)))
	if err != nil {
		t.Fatalf("database.url does not reach the cluster: %v", err)
	}
	var chats int
	if err := pc.QueryRow(context.Background(), `SELECT count(*) FROM chats WHERE id = $1`, devmode.DemoChat).Scan(&chats); err != nil || chats != 1 {
		t.Errorf("the demo chat through database.url: %d rows, %v", chats, err)
	}
	pc.Close(context.Background())

	runPrintedCommands(t, r.stdout.String())
	r.stop(t)

	// A second run reuses the cluster, the tokens and the data (no second seed).
	r2 := startDev(t, dir)
	defer r2.stop(t)
	if got := readToken(t, filepath.Join(dir, "worker.token")); got != worker {
		t.Error("the worker token changed across restarts")
	}
	if strings.Contains(r2.stderr.String(), "seeded the demo") || strings.Contains(r2.stderr.String(), "initialising") {
		t.Errorf("the second run re-initialised or re-seeded:\n%s", r2.stderr)
	}
}

// runPrintedCommands runs every command the banner printed exactly as printed, as someone pasting it
// into a new shell would: through bash, with a PATH that holds no grpcurl, from another directory.
// The banner's grpcurl is the pinned one that `make test` builds (RESOLVER_GRPCURL).
func runPrintedCommands(t *testing.T, banner string) {
	t.Helper()
	if os.Getenv("RESOLVER_GRPCURL") == "" {
		if _, err := exec.LookPath("grpcurl"); err != nil {
			if !strings.Contains(banner, "No grpcurl found") || !strings.Contains(banner, "go install ") {
				t.Errorf("without a grpcurl the banner does not say how to get one:\n%s", banner)
			}
			t.Log("RESOLVER_GRPCURL is not set (make test sets it) and no grpcurl is on PATH: not running the printed grpcurl commands")
			return
		}
	}
	cmds := devmode.PrintedCommands(banner)
	for _, line := range cmds {
		if !strings.HasPrefix(line, "/") || !strings.Contains(line, " -plaintext ") {
			t.Errorf("printed command does not start with grpcurl's absolute path: %s", line)
		}
		out, err := devmode.RunAsPasted(t, line)
		if err != nil {
			t.Errorf("printed command failed pasted into a fresh shell: %s\n%v\n%s", line, err, out)
		}
		if strings.Contains(line, "ResolveModel") && !bytes.Contains(out, []byte("CREDENTIAL_SOURCE_")) {
			t.Errorf("printed command did not resolve: %s\n%s", line, out)
		}
	}
	if len(cmds) < 5 {
		t.Errorf("the banner printed %d grpcurl commands, want at least 5:\n%s", len(cmds), banner)
	}
}

func readToken(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
