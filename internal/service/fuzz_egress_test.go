package service

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/resolverd/resolverd/internal/egress"
	"github.com/resolverd/resolverd/internal/errs"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// fuzzHosts is the --allowed-provider-hosts of the handlers below.
const fuzzHosts = "api.allowed.test,*.eu.allowed.test,10.0.0.5"

// FuzzProviderBaseURLUnderAList: with --allowed-provider-hosts set, CreateProvider and UpdateProvider
// refuse a base_url outside it (docs/CONTRACT.md §7.5) exactly when the list does not allow it,
// together with every other bad field, once per field; the empty base_url is always accepted.
func FuzzProviderBaseURLUnderAList(f *testing.F) {
	f.Add("https://api.allowed.test/v1", "openai-eu", false)
	f.Add("https://collector.elsewhere.test/v1", "openai-eu", false)
	f.Add("https://collector.elsewhere.test/v1", "Bad Name", true)
	f.Add("https://eu.allowed.test/v1", "x", true)
	f.Add("http://a.b.eu.allowed.test:8080/v1", "x", false)
	f.Add("http://10.0.0.5:8000/v1", "x", false)
	f.Add("https://b%C3%BCcher.eu.allowed.test/", "x", false)
	f.Add("http://10.0.5/", "x", true)
	f.Add("", "x", false)
	f.Add("ftp://api.allowed.test/", "x", false)
	hosts, err := egress.Parse(fuzzHosts)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, baseURL, name string, update bool) {
		a, q := fuzzAdmin()
		a.AllowProviderHosts(hosts)
		var (
			handlerErr error
			req        proto.Message
		)
		var v violations
		if update {
			r := &resolverv1.UpdateProviderRequest{Id: seedUUID, Name: &name, BaseUrl: &baseURL}
			_, handlerErr = a.UpdateProvider(fuzzCtx(), r)
			req = r
		} else {
			r := &resolverv1.CreateProviderRequest{Type: "openai", Name: name, BaseUrl: baseURL}
			_, handlerErr = a.CreateProvider(fuzzCtx(), r)
			req = r
			v.providerType("type", "openai")
		}
		v.providerName("name", name)
		v.baseURL("base_url", baseURL)
		malformed := slices.ContainsFunc(v, func(f errs.FieldViolation) bool { return f.Field == "base_url" })
		if _, ok := hosts.Check(baseURL); !ok && !malformed {
			v.add("base_url", "outside the list")
		}
		method := "CreateProvider"
		if update {
			method = "UpdateProvider"
		}
		checkOutcome(t, req, handlerErr, fieldsOf(v), q, method)
		if baseURL == "" && slices.Contains(fieldsOf(v), "base_url") {
			t.Fatal("the empty base_url was refused")
		}
		// Independently of Check: a well-formed URL to a host outside the list is refused.
		if host, err := egress.HostOf(baseURL); err == nil && !malformed && strings.HasSuffix(host, "elsewhere.test") &&
			!slices.Contains(fieldsOf(v), "base_url") {
			t.Fatalf("%q (host %s) was accepted under %s", baseURL, host, fuzzHosts)
		}
	})
}
