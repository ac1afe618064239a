package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/resolverd/resolverd/internal/apitoken"
	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/keyring"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// TestServeRefusesAMalformedAllowedHostsList: docs/CONTRACT.md §7.5 and §8.2 — a malformed
// --allowed-provider-hosts (or RESOLVER_ALLOWED_PROVIDER_HOSTS) stops serve before it reaches the
// database, with one line naming the flag, the entry and what is wrong with it.
func TestServeRefusesAMalformedAllowedHostsList(t *testing.T) {
	// An unreachable database: the list must be refused before serve tries it.
	env := map[string]string{
		"RESOLVER_DATABASE_URL":    "postgres://x:y@" + testenv.FreeAddr(t) + "/db?connect_timeout=2",
		"RESOLVER_ENCRYPTION_KEYS": keyring.Generate(),
	}
	cases := []struct{ value, want string }{
		{"api.openai.com,", "entry 2 is empty"},
		{",api.openai.com", "entry 1 is empty"},
		{"https://api.openai.com", `entry 1 "https://api.openai.com" is a URL`},
		{"api.openai.com:443", "has a port"},
		{"api.openai.com/v1", "has a path"},
		{"*", "bare *"},
		{"api.*.com", "not the whole first label"},
		{"bücher.example", "punycode"},
		{"10.1", "last label is a number"},
		{"a..b", "label"},
	}
	for _, c := range cases {
		for _, viaEnv := range []bool{false, true} {
			args := []string{"serve", "--plaintext", "--listen", testenv.FreeAddr(t)}
			e := map[string]string{}
			for k, v := range env {
				e[k] = v
			}
			if viaEnv {
				e["RESOLVER_ALLOWED_PROVIDER_HOSTS"] = c.value
			} else {
				args = append(args, "--allowed-provider-hosts", c.value)
			}
			code, out, errOut := cli(context.Background(), e, args...)
			if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 ||
				!strings.HasPrefix(errOut, "resolverd serve: --allowed-provider-hosts: ") || !strings.Contains(errOut, c.want) {
				t.Errorf("%q (env %v): code %d, stderr %q; want exit 1 and one line about --allowed-provider-hosts mentioning %q",
					c.value, viaEnv, code, errOut, c.want)
			}
			if strings.Contains(errOut, "connect") {
				t.Errorf("%q: serve reached for the database before checking the list: %q", c.value, errOut)
			}
		}
	}
}

// TestServeAllowedHostsList: the list given through the environment is the one serve enforces
// (normalised in its start-up log), and the command line wins over the environment.
func TestServeAllowedHostsList(t *testing.T) {
	url := pgtest.NewDatabase(t)
	addr := testenv.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var errOut string
	go func() {
		code, _, e := cli(ctx, map[string]string{"RESOLVER_DATABASE_URL": url, "RESOLVER_ENCRYPTION_KEYS": keyring.Generate(),
			"RESOLVER_ALLOWED_PROVIDER_HOSTS": "collector.example.net"},
			"serve", "--plaintext", "--listen", addr, "--allowed-provider-hosts", " API.OpenAI.com., *.openai.azure.com")
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
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve never reported SERVING: %v %v", resp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	tok, hash := apitoken.New()
	if _, err := db.New(pgtest.Connect(t, url), nil).CreateToken(context.Background(), uuid.New(), "admin", []string{"*"}, hash, nil); err != nil {
		t.Fatal(err)
	}
	admin := resolverv1.NewAdminServiceClient(conn)
	actx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok.Reveal())
	for i, c := range []struct {
		baseURL string
		want    codes.Code
	}{
		{"https://api.openai.com/v1", codes.OK},
		{"https://eastus.openai.azure.com/openai", codes.OK},
		{"https://collector.example.net/v1", codes.InvalidArgument}, // the environment's list lost
		{"https://openai.azure.com/v1", codes.InvalidArgument},
	} {
		_, err := admin.CreateProvider(actx, &resolverv1.CreateProviderRequest{Type: "bedrock", Name: "p" + string(rune('a'+i)), BaseUrl: c.baseURL})
		if got := status.Code(err); got != c.want {
			t.Errorf("CreateProvider with base_url %q: %v, want %s", c.baseURL, err, c.want)
		}
	}
	cancel()
	select {
	case code := <-done:
		exited = true
		if code != 0 {
			t.Fatalf("serve exited %d: %s", code, errOut)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	if want := `"allowed_provider_hosts":"api.openai.com,*.openai.azure.com"`; !strings.Contains(errOut, want) {
		t.Errorf("serve's log lacks %s:\n%s", want, errOut)
	}
}
