package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/dbauthz"
	"github.com/resolverd/resolverd/internal/devmode"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/internal/testenv"
	"github.com/resolverd/resolverd/pkg/resolverclient"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestResolvesTheDemo runs the example against a real resolverd seeded with exactly the demo of
// `make run`, with its defaults (the demo chat, its own model).
func TestResolvesTheDemo(t *testing.T) {
	ctx := context.Background()
	e := testenv.New(t, testenv.Options{})
	if _, err := devmode.SeedDemo(ctx, dbauthz.New(db.New(e.Pool, pgtest.Keyring))); err != nil {
		t.Fatal(err)
	}
	e.Sync(t)
	if demoChat != devmode.DemoChat.String() {
		t.Fatalf("the example's default chat %s is not the demo's %s", demoChat, devmode.DemoChat)
	}
	tokenFile := filepath.Join(t.TempDir(), "worker.token")
	if err := os.WriteFile(tokenFile, []byte(e.WorkerToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := e.Admin.ListProviderKeys(e.AsAdmin(), &resolverv1.ListProviderKeysRequest{ProviderId: devmode.DemoOpenAI.String()})
	if err != nil || len(keys.GetKeys()) != 1 {
		t.Fatalf("the demo's central key: %v %v", keys, err)
	}
	central := keys.GetKeys()[0]
	base := []string{"-addr", e.Addr, "-token-file", tokenFile, "-insecure"}

	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"the chat's own model", nil, []string{
			"provider:     openai (type openai, id " + devmode.DemoOpenAI.String() + ")\n",
			"model:        gpt-4o (config " + devmode.DemoGPT.String() + ", context 128000 tokens, compact at 70%)\n",
			"credential:   central\n",
			"key id:       " + central.GetId() + "\n",
			"fingerprint:  " + central.GetFingerprint() + "\n",
		}},
		{"title with alice's own key", []string{"-purpose", "PURPOSE_TITLE", "-model-config", devmode.DemoClaude.String()}, []string{
			"provider:     anthropic (type anthropic", "model:        claude-sonnet-4-5", "credential:   user\n", "fingerprint:  ",
		}},
		{"bedrock ambient", []string{"-purpose", "title", "-model-config", devmode.DemoBedrockModel.String()}, []string{
			"provider:     bedrock-us-east-1 (type bedrock", "credential:   ambient\n",
		}},
		{"a subagent on the retired config falls back", []string{"-purpose", "subagent", "-model-config", devmode.DemoRetired.String()}, []string{
			"model:        gpt-4o", "fallback:     yes, " + devmode.DemoRetired.String() + " was unusable (MODEL_CONFIG_DISABLED)\n",
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := run(ctx, append(append([]string{}, base...), c.args...), &out); err != nil {
				t.Fatal(err)
			}
			for _, w := range c.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			if strings.Contains(out.String(), devmode.DemoCentralKey) || strings.Contains(out.String(), devmode.DemoAliceKey) {
				t.Fatalf("the key was printed:\n%s", out.String())
			}
		})
	}

	t.Run("errors", func(t *testing.T) {
		var out bytes.Buffer
		err := run(ctx, append(append([]string{}, base...), "-chat", devmode.DemoAlice.String()), &out)
		if !errors.Is(err, resolverclient.ErrChatNotFound) || out.Len() != 0 {
			t.Fatalf("unknown chat: %v, %q", err, out.String())
		}
		if err := run(ctx, append(append([]string{}, base...), "-purpose", "summary"), &out); err == nil || !strings.Contains(err.Error(), "unknown purpose") {
			t.Fatalf("bad purpose: %v", err)
		}
	})
}

// TestReportsARefusedKeyAndResolvesAgain: the provider answers 429 for the demo's central key; the
// example reports it and resolves again, getting the provider's other key. When every key is out,
// it says when the first comes back.
func TestReportsARefusedKeyAndResolvesAgain(t *testing.T) {
	ctx := context.Background()
	e := testenv.New(t, testenv.Options{})
	if _, err := devmode.SeedDemo(ctx, dbauthz.New(db.New(e.Pool, pgtest.Keyring))); err != nil {
		t.Fatal(err)
	}
	e.Sync(t)
	second, err := e.Admin.AddProviderKey(e.AsAdmin(), &resolverv1.AddProviderKeyRequest{ProviderId: devmode.DemoOpenAI.String(), ApiKey: "sk-demo-openai-central-0002"})
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "worker.token")
	if err := os.WriteFile(tokenFile, []byte(e.WorkerToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"-addr", e.Addr, "-token-file", tokenFile, "-insecure"}

	// The provider rate limits the demo's first key, for 90 seconds.
	var called []string
	callModel = func(_ context.Context, _, _, _, apiKey string) (int, http.Header) {
		called = append(called, apiKey)
		if apiKey == devmode.DemoCentralKey {
			return http.StatusTooManyRequests, http.Header{"Retry-After": []string{"90"}}
		}
		return http.StatusOK, nil
	}
	t.Cleanup(func() {
		callModel = func(context.Context, string, string, string, string) (int, http.Header) { return http.StatusOK, nil }
	})
	var out bytes.Buffer
	if err := run(ctx, args, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(called) != 2 || called[1] != "sk-demo-openai-central-0002" {
		t.Errorf("the provider was called %d times", len(called))
	}
	for _, want := range []string{" rate_limited, now cooling_down until ", "key id:       " + second.GetId() + "\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "sk-demo-openai-central-0002") {
		t.Fatal("the key was printed")
	}

	// Every key out of quota: the example stops and says when to come back.
	callModel = func(context.Context, string, string, string, string) (int, http.Header) {
		return http.StatusPaymentRequired, nil
	}
	out.Reset()
	err = run(ctx, args, &out)
	if !errors.Is(err, resolverclient.ErrCredentialsCoolingDown) || !strings.Contains(err.Error(), "the first is back in") {
		t.Fatalf("every key cooling down: %v\n%s", err, out.String())
	}
}
