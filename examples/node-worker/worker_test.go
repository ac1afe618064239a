// Package nodeworker holds the test of the Node.js example worker (worker.mjs): it runs the worker
// as a subprocess against a real resolverd, when node and npm are installed.
package nodeworker

import (
	"bytes"
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/server"
	"github.com/resolverd/resolverd/internal/testenv"
	"github.com/resolverd/resolverd/internal/transport"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The worker's exit statuses (README.md).
const (
	exitFixRequest = 3
	exitFixConfig  = 4
	exitDropJob    = 5
	exitAskSomeone = 6
	exitRetry      = 75
)

// node returns the node binary, after `npm ci` when the example's dependencies are not installed;
// it skips the test when node or npm is missing.
func node(t *testing.T) string {
	t.Helper()
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed: the Node.js example worker is not tested (install Node.js 20 or newer and npm)")
	}
	npmBin, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("node not installed: npm is missing, so the Node.js example worker is not tested")
	}
	out, err := exec.Command(nodeBin, "--version").Output()
	if err != nil {
		t.Fatalf("node --version: %v", err)
	}
	major, _ := strconv.Atoi(strings.SplitN(strings.TrimPrefix(strings.TrimSpace(string(out)), "v"), ".", 2)[0])
	if major < 20 {
		t.Skipf("node not installed: node %s is older than the 20 the worker needs", strings.TrimSpace(string(out)))
	}
	if _, err := os.Stat(filepath.Join("node_modules", "@grpc", "grpc-js", "package.json")); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npmBin, "ci", "--ignore-scripts", "--no-audit", "--no-fund")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci: %v\n%s", err, out)
		}
	}
	return nodeBin
}

type result struct {
	stdout, stderr string
	exit           int
}

// runWorker runs worker.mjs with args and extra environment variables (RESOLVER_* of the test
// process are not passed on).
func runWorker(t *testing.T, nodeBin string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin, append([]string{"worker.mjs"}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RESOLVER_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run the worker: %v\n%s", err, stderr.String())
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), exit: cmd.ProcessState.ExitCode()}
}

func writeToken(t *testing.T, tok string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(f, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// fixtures is what the test seeds through AdminService.
type fixtures struct {
	chat, gpt, claude, disabled, anthropic string
	centralKey                             *resolverv1.ProviderKey
}

const centralSecret = "sk-node-worker-central-0001"

func seed(t *testing.T, e *testenv.Env) fixtures {
	t.Helper()
	ctx, a := e.AsAdmin(), e.Admin
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	openai, err := a.CreateProvider(ctx, &resolverv1.CreateProviderRequest{Type: "openai", Name: "openai"})
	must(err)
	key, err := a.AddProviderKey(ctx, &resolverv1.AddProviderKeyRequest{ProviderId: openai.GetId(), ApiKey: centralSecret})
	must(err)
	anthropic, err := a.CreateProvider(ctx, &resolverv1.CreateProviderRequest{Type: "anthropic", Name: "anthropic", ByokPolicy: resolverv1.ByokPolicy_BYOK_POLICY_REQUIRED})
	must(err)
	gpt, err := a.CreateModelConfig(ctx, &resolverv1.CreateModelConfigRequest{AiProviderId: openai.GetId(), Model: "gpt-4o", IsDefault: true, ContextLimit: 128000, CompressionThreshold: 70})
	must(err)
	claude, err := a.CreateModelConfig(ctx, &resolverv1.CreateModelConfigRequest{AiProviderId: anthropic.GetId(), Model: "claude-sonnet-4-5", ContextLimit: 200000, CompressionThreshold: 80})
	must(err)
	off := false
	disabled, err := a.CreateModelConfig(ctx, &resolverv1.CreateModelConfigRequest{AiProviderId: openai.GetId(), Model: "gpt-3.5-turbo", Enabled: &off, ContextLimit: 16000, CompressionThreshold: 70})
	must(err)
	user, chat := uuid.NewString(), uuid.NewString()
	_, err = a.PutUser(ctx, &resolverv1.PutUserRequest{Id: user, Username: "bob"})
	must(err)
	_, err = a.PutChat(ctx, &resolverv1.PutChatRequest{Id: chat, OwnerId: user, ModelConfigId: gpt.GetId()})
	must(err)
	return fixtures{chat: chat, gpt: gpt.GetId(), claude: claude.GetId(), disabled: disabled.GetId(), anthropic: anthropic.GetId(), centralKey: key}
}

// TestWorkerAgainstResolverd: the worker prints a resolution without the key, and decodes and handles
// each refusal: reason, metadata, BadRequest field and action printed, non-zero exit.
func TestWorkerAgainstResolverd(t *testing.T) {
	nodeBin := node(t)
	e := testenv.New(t, testenv.Options{})
	f := seed(t, e)
	worker := writeToken(t, e.WorkerToken)
	base := []string{"--addr", e.Addr, "--insecure", "--token-file", worker}

	t.Run("resolution", func(t *testing.T) {
		r := runWorker(t, nodeBin, nil, append(base, "--chat", f.chat)...)
		if r.exit != 0 {
			t.Fatalf("exit %d\n%s%s", r.exit, r.stdout, r.stderr)
		}
		for _, want := range []string{
			"model:        gpt-4o (config " + f.gpt + ", context 128000 tokens, compact at 70%)\n",
			"provider:     openai (type openai",
			"credential:   central\n",
			"key id:       " + f.centralKey.GetId() + "\n",
			"fingerprint:  " + f.centralKey.GetFingerprint() + "\n",
			"fallback:     no\n",
		} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
			}
		}
		if strings.Contains(r.stdout+r.stderr, centralSecret) {
			t.Fatalf("the api key was printed without --show-secret:\n%s%s", r.stdout, r.stderr)
		}
	})

	t.Run("show-secret and the environment", func(t *testing.T) {
		env := []string{"RESOLVER_ADDR=" + e.Addr, "RESOLVER_TOKEN_FILE=" + worker}
		r := runWorker(t, nodeBin, env, "--insecure", "--chat", f.chat, "--show-secret")
		if r.exit != 0 || !strings.Contains(r.stdout, "api key:      "+centralSecret+"\n") {
			t.Fatalf("exit %d, want the key with --show-secret:\n%s%s", r.exit, r.stdout, r.stderr)
		}
	})

	t.Run("fallback", func(t *testing.T) {
		r := runWorker(t, nodeBin, nil, append(base, "--chat", f.chat, "--purpose", "subagent", "--model-config", f.disabled)...)
		if want := "fallback:     yes, " + f.disabled + " was unusable (MODEL_CONFIG_DISABLED)\n"; r.exit != 0 || !strings.Contains(r.stdout, want) {
			t.Fatalf("exit %d, want %q:\n%s%s", r.exit, want, r.stdout, r.stderr)
		}
	})

	narrow := writeToken(t, e.Token(t, "chat-only", rbac.Scope("chat:read")))
	bogus := writeToken(t, "rsv_not_a_token")
	missing := uuid.NewString()
	cases := []struct {
		name string
		args []string
		exit int
		want []string
	}{
		{"CHAT_NOT_FOUND", append(base, "--chat", missing), exitDropJob, []string{
			"resolverd error: reason=CHAT_NOT_FOUND code=NOT_FOUND metadata={chat_id=" + missing + "} action=drop-job\n",
			"what to do:  chat " + missing + " does not exist in resolverd",
		}},
		{"INVALID_ARGUMENT", append(base, "--chat", "not-a-uuid"), exitFixRequest, []string{
			"resolverd error: reason=INVALID_ARGUMENT code=INVALID_ARGUMENT metadata={field=chat_id} action=fix-request\n",
			"  bad field:   chat_id: must be a UUID",
			"what to do:  fix the fields the BadRequest names",
		}},
		{"MISSING_SCOPE", []string{"--addr", e.Addr, "--insecure", "--token-file", narrow, "--chat", f.chat}, exitFixConfig, []string{
			"resolverd error: reason=MISSING_SCOPE code=PERMISSION_DENIED metadata={scope=model_config:read} action=fix-config\n",
			"what to do:  the worker token lacks the scope model_config:read:",
		}},
		{"USER_KEY_REQUIRED", append(base, "--chat", f.chat, "--purpose", "title", "--model-config", f.claude), exitAskSomeone, []string{
			"resolverd error: reason=USER_KEY_REQUIRED code=FAILED_PRECONDITION metadata={model_config_id=" + f.claude + ", provider_id=" + f.anthropic + "} action=ask-owner\n",
			"what to do:  ask the chat's owner to add their own API key for provider " + f.anthropic,
		}},
		{"MODEL_CONFIG_DISABLED", append(base, "--chat", f.chat, "--purpose", "title", "--model-config", f.disabled), exitAskSomeone, []string{
			"resolverd error: reason=MODEL_CONFIG_DISABLED code=FAILED_PRECONDITION metadata={model_config_id=" + f.disabled + "} action=ask-admin\n",
		}},
		{"UNAUTHENTICATED", []string{"--addr", e.Addr, "--insecure", "--token-file", bogus, "--chat", f.chat}, exitFixConfig, []string{
			"resolverd error: reason=UNAUTHENTICATED code=UNAUTHENTICATED metadata={} action=fix-config\n",
			"what to do:  the token is missing, unknown, expired or revoked",
		}},
		{"UNAVAILABLE without details", []string{"--addr", testenv.FreeAddr(t), "--insecure", "--token-file", worker, "--chat", f.chat, "--retries", "1"}, exitRetry, []string{
			"node-worker: UNAVAILABLE: retrying in ",
			"resolverd error: reason=(none) code=UNAVAILABLE metadata={} action=retry\n",
			"what to do:  resolverd is unreachable: retry with backoff",
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := runWorker(t, nodeBin, nil, c.args...)
			if r.exit != c.exit {
				t.Errorf("exit %d, want %d", r.exit, c.exit)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q", w)
				}
			}
			if r.stdout != "" || t.Failed() {
				t.Errorf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			}
		})
	}
}

// TestWorkerHonoursRetryInfo: over its token's rate the worker is told RATE_LIMITED with a
// RetryInfo; without retries it says so and exits 75, with one it waits at least the delay.
func TestWorkerHonoursRetryInfo(t *testing.T) {
	nodeBin := node(t)
	e := testenv.New(t, testenv.Options{Configure: func(c *server.Config) {
		c.RateLimit = transport.RateLimit{PerSecond: 0.5, Burst: 1}
	}})
	// The worker token has not called yet; minting another would spend the admin token's burst.
	tok := writeToken(t, e.WorkerToken)
	args := []string{"--addr", e.Addr, "--insecure", "--token-file", tok, "--chat", uuid.NewString()}

	if r := runWorker(t, nodeBin, nil, args...); r.exit != exitDropJob {
		t.Fatalf("the first call (within the burst): exit %d\n%s", r.exit, r.stderr)
	}
	r := runWorker(t, nodeBin, nil, append(args, "--retries", "0")...)
	for _, w := range []string{"reason=RATE_LIMITED code=RESOURCE_EXHAUSTED", "action=retry\n", "  retry after: 2.000s (RetryInfo)\n"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr lacks %q", w)
		}
	}
	if r.exit != exitRetry || t.Failed() {
		t.Fatalf("over the rate: exit %d, want %d\n%s", r.exit, exitRetry, r.stderr)
	}

	start := time.Now()
	r = runWorker(t, nodeBin, nil, append(args, "--retries", "1")...)
	wait := regexp.MustCompile(`RATE_LIMITED: retrying in ([0-9.]+)s`).FindStringSubmatch(r.stderr)
	if wait == nil {
		t.Fatalf("no retry announced:\n%s", r.stderr)
	}
	if s, _ := strconv.ParseFloat(wait[1], 64); s < 2 || time.Since(start) < 2*time.Second {
		t.Errorf("retried after %ss (%v in all), want at least the RetryInfo delay of 2s\n%s", wait[1], time.Since(start), r.stderr)
	}
	if r.exit != exitDropJob {
		t.Errorf("after waiting, the retry should reach the handler (CHAT_NOT_FOUND): exit %d\n%s", r.exit, r.stderr)
	}
}

// TestWorkerKnowsEveryReason: every errs.Reason constant is in the worker's table with the gRPC code
// resolverd pairs it with, and the table agrees with the proto enum when there is one.
func TestWorkerKnowsEveryReason(t *testing.T) {
	nodeBin := node(t)
	r := runWorker(t, nodeBin, nil, "--list-reasons")
	if r.exit != 0 {
		t.Fatalf("--list-reasons: exit %d\n%s", r.exit, r.stderr)
	}
	table := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		cols := strings.Split(line, "\t")
		if len(cols) != 5 {
			t.Fatalf("malformed line %q", line)
		}
		table[cols[0]] = cols[1:]
	}
	reasons := reasonConstants(t)
	if len(reasons) < 17 {
		t.Fatalf("found only %d reasons in internal/errs: %v", len(reasons), reasons)
	}
	for _, reason := range reasons {
		row, ok := table[reason]
		if !ok {
			t.Errorf("the worker does not handle %s", reason)
			continue
		}
		if want := upperSnake(transport.CodeOf(errs.Reason(reason)).String()); row[0] != want {
			t.Errorf("%s: the worker expects code %s, resolverd sends %s", reason, row[0], want)
		}
		if !strings.HasPrefix(row[2], "exit ") || row[2] == "exit 0" || row[3] == "" {
			t.Errorf("%s: no action: %q", reason, row)
		}
	}
	if len(table) != len(reasons) {
		t.Errorf("the worker handles %d reasons, internal/errs defines %d", len(table), len(reasons))
	}
}

// reasonConstants returns the values of the errs.Reason constants, read from the source.
func reasonConstants(t *testing.T) []string {
	t.Helper()
	file, err := parser.ParseFile(token.NewFileSet(), filepath.Join("..", "..", "internal", "errs", "errs.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	ast.Inspect(file, func(n ast.Node) bool {
		spec, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		if id, ok := spec.Type.(*ast.Ident); !ok || id.Name != "Reason" {
			return true
		}
		for _, v := range spec.Values {
			if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				s, _ := strconv.Unquote(lit.Value)
				out = append(out, s)
			}
		}
		return true
	})
	return out
}

// upperSnake turns a grpc-go code name ("FailedPrecondition") into the canonical one
// ("FAILED_PRECONDITION").
func upperSnake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}
