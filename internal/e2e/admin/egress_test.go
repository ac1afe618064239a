package admin_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/resolverd/resolverd/internal/egress"
	"github.com/resolverd/resolverd/internal/server"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// adEgressHosts is the --allowed-provider-hosts of the suite's controlled-egress server.
const adEgressHosts = "api.openai.com,*.openai.azure.com,10.0.0.5"

// adEgressEnv starts a server with --allowed-provider-hosts set to list.
func adEgressEnv(t *testing.T, list string) *testenv.Env {
	t.Helper()
	hosts, err := egress.Parse(list)
	if err != nil {
		t.Fatal(err)
	}
	return testenv.New(t, testenv.Options{Configure: func(c *server.Config) { c.AllowedProviderHosts = hosts }})
}

// TestEgressWritesStayInsideTheList: docs/CONTRACT.md §7.5 — with --allowed-provider-hosts set, a
// provider cannot be created with, or updated to, a base_url whose host is outside the list
// (INVALID_ARGUMENT on base_url, nothing written); hosts inside it, by name, *.suffix pattern (any
// depth, any port) or IP address, and the empty base_url are accepted.
func TestEgressWritesStayInsideTheList(t *testing.T) {
	e := adEgressEnv(t, adEgressHosts)
	a := e.Admin
	p, err := a.CreateProvider(e.AsAdmin(), &resolverv1.CreateProviderRequest{Type: "bedrock", Name: "eg-target", BaseUrl: "https://api.openai.com/v1"})
	if err != nil {
		t.Fatal(err)
	}
	outside := []string{
		"https://collector.example.net/v1",
		"https://openai.azure.com/v1",                     // *.openai.azure.com does not match openai.azure.com itself
		"https://api.openai.com.example.net/v1",           // a look-alike suffix
		"https://evilopenai.azure.com/v1",                 // not below a dot
		"http://10.0.0.6:8000/v1",                         // another address
		"http://10.0.5/v1",                                // read as 10.0.0.5 by URL parsers: never allowed
		"https://api.openai.com@collector.example.net/v1", // the host is collector.example.net
	}
	for i, u := range outside {
		t.Run("create/"+u, func(t *testing.T) {
			adInvalid(t, e, []string{"base_url"}, func(ctx context.Context) error {
				_, err := a.CreateProvider(ctx, &resolverv1.CreateProviderRequest{Type: "bedrock", Name: "eg-out-" + string(rune('a'+i)), BaseUrl: u})
				return err
			})
		})
		t.Run("update/"+u, func(t *testing.T) {
			adInvalid(t, e, []string{"base_url"}, func(ctx context.Context) error {
				_, err := a.UpdateProvider(ctx, &resolverv1.UpdateProviderRequest{Id: p.Id, BaseUrl: proto.String(u)})
				return err
			})
		})
	}
	// The violation says which host was refused.
	_, err = a.CreateProvider(e.AsAdmin(), &resolverv1.CreateProviderRequest{Type: "bedrock", Name: "eg-msg", BaseUrl: "https://Collector.Example.NET:8443/v1"})
	if br := testenv.BadRequest(err); br == nil || len(br.GetFieldViolations()) != 1 ||
		!strings.Contains(br.GetFieldViolations()[0].GetDescription(), `"collector.example.net"`) {
		t.Errorf("violation %v does not name the host collector.example.net", br)
	}

	// Every bad field at once: the host outside the list is reported with the others.
	adInvalid(t, e, []string{"type", "name", "display_name", "base_url"}, func(ctx context.Context) error {
		_, err := a.CreateProvider(ctx, &resolverv1.CreateProviderRequest{Type: "mistral", Name: "Bad_Name", DisplayName: "a\x00b", BaseUrl: "https://collector.example.net/v1"})
		return err
	})
	adInvalid(t, e, []string{"name", "base_url"}, func(ctx context.Context) error {
		_, err := a.UpdateProvider(ctx, &resolverv1.UpdateProviderRequest{Id: p.Id, Name: proto.String("-x"), BaseUrl: proto.String("https://collector.example.net/v1")})
		return err
	})
	// A malformed base_url is one violation, not two.
	adInvalid(t, e, []string{"base_url"}, func(ctx context.Context) error {
		_, err := a.CreateProvider(ctx, &resolverv1.CreateProviderRequest{Type: "openai", Name: "eg-ftp", BaseUrl: "ftp://collector.example.net/v1"})
		return err
	})

	inside := []string{
		"",                                     // the SDK's default
		"https://api.openai.com/v1",            // by name
		"https://API.OpenAI.com./v1",           // case and a trailing dot do not matter
		"https://api.openai.com:8443/v1",       // nor does the port
		"http://api.openai.com/v1",             // nor the scheme
		"https://west.openai.azure.com/openai", // *.suffix
		"https://a.b.west.openai.azure.com/v1", // at any depth
		"http://10.0.0.5:8000/v1",              // by address
		"http://[::ffff:10.0.0.5]:8000/v1",     // the same address
	}
	for i, u := range inside {
		got, err := a.CreateProvider(e.AsAdmin(), &resolverv1.CreateProviderRequest{Type: "openai-compat", Name: "eg-in-" + string(rune('a'+i)), BaseUrl: u})
		if err != nil {
			t.Errorf("create with base_url %q: %v", u, err)
			continue
		}
		if got.GetBaseUrl() != u {
			t.Errorf("stored base_url %q, want %q as given", got.GetBaseUrl(), u)
		}
		if _, err := a.UpdateProvider(e.AsAdmin(), &resolverv1.UpdateProviderRequest{Id: p.Id, BaseUrl: proto.String(u)}); err != nil {
			t.Errorf("update to base_url %q: %v", u, err)
		}
	}
}

// TestEgressStoredOutsideTheList: a provider stored outside the list (by psql, or before the list was
// set) can still be changed in its other fields, and moved back inside; only a base_url the request
// sets is checked.
func TestEgressStoredOutsideTheList(t *testing.T) {
	e := adEgressEnv(t, adEgressHosts)
	p, err := e.Admin.CreateProvider(e.AsAdmin(), &resolverv1.CreateProviderRequest{Type: "bedrock", Name: "eg-stored"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Pool.Exec(context.Background(), `UPDATE ai_providers SET base_url = 'https://collector.example.net/v1' WHERE id = $1`, p.Id); err != nil {
		t.Fatal(err)
	}
	e.Sync(t)
	if _, err := e.Admin.UpdateProvider(e.AsAdmin(), &resolverv1.UpdateProviderRequest{Id: p.Id, DisplayName: proto.String("Stored")}); err != nil {
		t.Fatalf("changing another field: %v", err)
	}
	got, err := e.Admin.UpdateProvider(e.AsAdmin(), &resolverv1.UpdateProviderRequest{Id: p.Id, BaseUrl: proto.String("https://west.openai.azure.com/v1")})
	if err != nil || got.GetBaseUrl() != "https://west.openai.azure.com/v1" {
		t.Fatalf("moving it back inside: %v, %v", got, err)
	}
}

// TestEgressEmptyListAllowsAnyHost: without --allowed-provider-hosts (the default) any well-formed
// base_url is accepted, as before the list existed.
func TestEgressEmptyListAllowsAnyHost(t *testing.T) {
	for _, list := range []string{"", "  "} {
		e := adEgressEnv(t, list)
		for i, u := range []string{"https://collector.example.net/v1", "http://10.0.5/v1", "https://openai.azure.com/v1"} {
			if _, err := e.Admin.CreateProvider(e.AsAdmin(), &resolverv1.CreateProviderRequest{Type: "bedrock", Name: "eg-any-" + string(rune('a'+i)), BaseUrl: u}); err != nil {
				t.Errorf("list %q: create with base_url %q: %v", list, u, err)
			}
		}
	}
}
