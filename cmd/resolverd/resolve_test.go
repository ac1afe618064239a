package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/dbauthz"
	"github.com/resolverd/resolverd/internal/devmode"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/internal/testenv"
)

func TestResolve(t *testing.T) {
	ctx := context.Background()
	e := testenv.New(t, testenv.Options{})
	if _, err := devmode.SeedDemo(ctx, dbauthz.New(db.New(e.Pool, pgtest.Keyring))); err != nil {
		t.Fatal(err)
	}
	e.Sync(t)
	chat := devmode.DemoChat.String()
	conn := []string{"--addr", e.Addr, "--token", e.WorkerToken, "--insecure"}
	resolve := func(env map[string]string, args ...string) (int, string, string) {
		return cli(ctx, env, append([]string{"resolve"}, args...)...)
	}
	noSecret := func(t *testing.T, out, errOut string) {
		t.Helper()
		for _, s := range []string{devmode.DemoCentralKey, devmode.DemoAliceKey, e.WorkerToken} {
			if strings.Contains(out+errOut, s) {
				t.Fatalf("a secret was printed:\n%s%s", out, errOut)
			}
		}
	}

	t.Run("the key stays hidden", func(t *testing.T) {
		code, out, errOut := resolve(nil, append(conn, "--chat", chat, "--purpose", "chat")...)
		if code != 0 {
			t.Fatalf("code %d: %s", code, errOut)
		}
		noSecret(t, out, errOut)
		for _, want := range []string{
			"provider:             openai (OpenAI), type openai, id " + devmode.DemoOpenAI.String() + "\n",
			"model:                gpt-4o (GPT-4o)\n",
			"model config:         " + devmode.DemoGPT.String() + "\n",
			"requested config:     " + devmode.DemoGPT.String() + "\n",
			"fallback:             no\n",
			"credential source:    central\n",
			"api key:              [REDACTED] (--show-secret prints it)\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("stdout lacks %q:\n%s", want, out)
			}
		}
		if !strings.Contains(out, "key id:               ") || strings.Contains(out, "key id:               -") || !strings.Contains(out, "fingerprint:          ") {
			t.Errorf("no key id or fingerprint:\n%s", out)
		}
	})
	t.Run("--show-secret shows it", func(t *testing.T) {
		code, out, errOut := resolve(nil, append(conn, "--chat", chat, "--purpose", "chat", "--show-secret")...)
		if code != 0 || !strings.Contains(out, "api key:              "+devmode.DemoCentralKey+"\n") || strings.Contains(errOut, devmode.DemoCentralKey) {
			t.Fatalf("code %d\n%s%s", code, out, errOut)
		}
	})
	t.Run("environment, token file, purposes", func(t *testing.T) {
		tokenFile := filepath.Join(t.TempDir(), "worker.token")
		if err := os.WriteFile(tokenFile, []byte(e.WorkerToken+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		env := map[string]string{"RESOLVER_ADDR": e.Addr, "RESOLVER_TOKEN_FILE": tokenFile, "RESOLVER_INSECURE": "true"}
		code, out, errOut := resolve(env, "--chat", chat, "--model-config", devmode.DemoClaude.String(), "--purpose", "PURPOSE_TITLE")
		if code != 0 || !strings.Contains(out, "credential source:    user\n") || !strings.Contains(out, "byok policy:          required\n") {
			t.Fatalf("title: code %d\n%s%s", code, out, errOut)
		}
		noSecret(t, out, errOut)
		code, out, errOut = resolve(env, "--chat", chat, "--model-config", devmode.DemoRetired.String(), "--purpose", "Subagent")
		if code != 0 || !strings.Contains(out, "fallback:             yes (MODEL_CONFIG_DISABLED)\n") ||
			!strings.Contains(out, "requested config:     "+devmode.DemoRetired.String()+"\n") {
			t.Fatalf("subagent: code %d\n%s%s", code, out, errOut)
		}
		code, out, errOut = resolve(env, "--chat", chat, "--model-config", devmode.DemoBedrockModel.String(), "--purpose", "title", "--show-secret")
		if code != 0 || !strings.Contains(out, "credential source:    ambient\n") || !strings.Contains(out, "key id:               -\n") ||
			!strings.Contains(out, "api key:              - (ambient") {
			t.Fatalf("ambient: code %d\n%s%s", code, out, errOut)
		}
	})
	t.Run("an unknown chat fails on one line", func(t *testing.T) {
		code, out, errOut := resolve(nil, append(conn, "--chat", devmode.DemoAlice.String(), "--purpose", "chat")...)
		if code != 1 || out != "" || !strings.HasPrefix(errOut, "resolverd resolve: CHAT_NOT_FOUND") || strings.Count(errOut, "\n") != 1 {
			t.Fatalf("code %d, stdout %q, stderr %q", code, out, errOut)
		}
		noSecret(t, out, errOut)
	})
	t.Run("a bad token fails on one line", func(t *testing.T) {
		code, _, errOut := resolve(nil, "--addr", e.Addr, "--insecure", "--token", "rsd_wrong", "--chat", chat, "--purpose", "chat")
		if code != 1 || !strings.HasPrefix(errOut, "resolverd resolve: UNAUTHENTICATED") || strings.Count(errOut, "\n") != 1 || strings.Contains(errOut, "rsd_wrong") {
			t.Fatalf("code %d, stderr %q", code, errOut)
		}
	})
	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"no chat":          {append(conn, "--purpose", "chat"), "--chat"},
		"no purpose":       {append(conn, "--chat", chat), "--purpose"},
		"bad purpose":      {append(conn, "--chat", chat, "--purpose", "summaries"), "unknown purpose"},
		"no token":         {[]string{"--addr", e.Addr, "--insecure", "--chat", chat, "--purpose", "chat"}, "--token-file"},
		"two tokens":       {append(conn, "--token-file", "/nonexistent", "--chat", chat, "--purpose", "chat"), "not both"},
		"no transport":     {[]string{"--addr", e.Addr, "--token", e.WorkerToken, "--chat", chat, "--purpose", "chat"}, "--insecure"},
		"tls and insecure": {append(conn, "--tls", "--chat", chat, "--purpose", "chat"), "excludes"},
		"missing CA":       {[]string{"--addr", e.Addr, "--token", e.WorkerToken, "--tls-ca", "/nonexistent.pem", "--chat", chat, "--purpose", "chat"}, "/nonexistent.pem"},
	} {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := resolve(nil, c.args...)
			if code != 1 || out != "" || !strings.Contains(errOut, c.want) || strings.Count(errOut, "\n") != 1 {
				t.Fatalf("code %d, stdout %q, stderr %q (want %q)", code, out, errOut, c.want)
			}
			noSecret(t, out, errOut)
		})
	}
	if code, _, _ := resolve(nil, "--no-such-flag"); code != 2 {
		t.Errorf("an unknown flag: code %d, want 2", code)
	}
}
