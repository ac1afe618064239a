package resolution_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/resolverd/resolverd/internal/egress"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/internal/server"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// The suite of controlled egress (docs/CONTRACT.md §7.5): with serve --allowed-provider-hosts set, a
// provider whose base_url host is outside the list is unusable, with reason PROVIDER_HOST_NOT_ALLOWED,
// checked right after PROVIDER_DISABLED and falling back like the other unusable reasons.

const (
	reEgressHosts = "api.allowed.test,*.eu.allowed.test"
	// reOutside is where a writer outside AdminService (psql) points a provider.
	reOutside     = "https://collector.elsewhere.test/v1"
	reOutsideHost = "collector.elsewhere.test"
)

// reEgressOpts is a server whose --allowed-provider-hosts is list.
func reEgressOpts(t *testing.T, list string) testenv.Options {
	t.Helper()
	hosts, err := egress.Parse(list)
	if err != nil {
		t.Fatal(err)
	}
	return testenv.Options{Configure: func(c *server.Config) { c.AllowedProviderHosts = hosts }}
}

// provAt creates a provider whose base_url is baseURL, through AdminService.
func (w *reWorld) provAt(typ, baseURL string) *resolverv1.Provider {
	w.T.Helper()
	p, err := w.Admin.CreateProvider(w.AsAdmin(), &resolverv1.CreateProviderRequest{Type: typ, Name: "re-eg-" + reShort(), BaseUrl: baseURL})
	if err != nil {
		w.T.Fatalf("create provider at %q: %v", baseURL, err)
	}
	return p
}

// redirect points the provider at baseURL with psql, as a writer AdminService does not check would;
// it returns the provider as the server now holds it.
func (w *reWorld) redirect(p *resolverv1.Provider, baseURL string) *resolverv1.Provider {
	w.T.Helper()
	w.psql(`UPDATE ai_providers SET base_url = $2 WHERE id = $1`, p.Id, baseURL)
	return &resolverv1.Provider{Id: p.Id, Type: p.Type, Name: p.Name, DisplayName: p.DisplayName, BaseUrl: baseURL, Enabled: p.Enabled, ByokPolicy: p.ByokPolicy}
}

// TestEgressEveryPurpose: a provider moved outside the list with psql — here a bedrock one, whose
// answer is the workers' ambient cloud credentials — is never answered with: PURPOSE_CHAT falls back
// to the default, the soft overrides to the chat's own model, PURPOSE_TITLE fails with
// PROVIDER_HOST_NOT_ALLOWED; and with nothing usable left, NO_USABLE_MODEL_CONFIG.
func TestEgressEveryPurpose(t *testing.T) {
	w := reNew(t, reEgressOpts(t, reEgressHosts))
	owner := w.person()
	pc := w.provAt("openai", "https://api.allowed.test/v1")
	kc := w.central(pc.Id)
	c := w.cfg(pc.Id)
	pd := w.provAt("bedrock", "https://west.eu.allowed.test:8443/v1")
	d := w.def(pd.Id)
	pr := w.provAt("bedrock", "https://api.allowed.test/v1")
	r := w.cfg(pr.Id)
	chat := w.Chat(owner.Id, c.Id)

	// Inside the list, the override answers with the workers' ambient credentials.
	res, err := w.res(chat.Id, r.Id, reTitle)
	reOK(t, res, err, reWant{config: r, provider: pr, cred: reAmbient, requested: r.Id})

	w.redirect(pr, reOutside)
	notAllowed := map[string]string{"model_config_id": r.Id, "provider_id": pr.Id, "host": reOutsideHost}
	t.Run("title fails", func(t *testing.T) {
		_, err := w.in(t).res(chat.Id, r.Id, reTitle)
		reFail(t, err, reFP, "PROVIDER_HOST_NOT_ALLOWED", notAllowed)
	})
	t.Run("chat falls back to the default", func(t *testing.T) {
		res, err := w.in(t).res(chat.Id, r.Id, reChat)
		reOK(t, res, err, reWant{config: d, provider: pd, cred: reAmbient, requested: r.Id, fallback: true, reason: "PROVIDER_HOST_NOT_ALLOWED"})
	})
	for _, p := range reSoft {
		t.Run(p.String()+" falls back to the chat's model", func(t *testing.T) {
			res, err := w.in(t).res(chat.Id, r.Id, p)
			reOK(t, res, err, reWant{config: c, provider: pc, cred: kc, requested: r.Id, fallback: true, reason: "PROVIDER_HOST_NOT_ALLOWED"})
		})
	}

	// The chat's own model moved outside too: every purpose with an empty model_config_id, and the
	// soft overrides through it, land on the default.
	w.redirect(pc, "https://api.allowed.test.elsewhere.test/v1") // a look-alike
	for _, p := range rePurposes {
		t.Run(p.String()+" of the chat's own model falls back to the default", func(t *testing.T) {
			res, err := w.in(t).res(chat.Id, "", p)
			reOK(t, res, err, reWant{config: d, provider: pd, cred: reAmbient, requested: c.Id, fallback: true, reason: "PROVIDER_HOST_NOT_ALLOWED"})
		})
	}
	for _, p := range reSoft {
		t.Run(p.String()+" through the chat's model to the default", func(t *testing.T) {
			res, err := w.in(t).res(chat.Id, r.Id, p)
			reOK(t, res, err, reWant{config: d, provider: pd, cred: reAmbient, requested: r.Id, fallback: true, reason: "PROVIDER_HOST_NOT_ALLOWED"})
		})
	}

	// And the default: nothing usable is left.
	w.redirect(pd, "https://eu.allowed.test/v1") // *.eu.allowed.test does not match eu.allowed.test
	for _, p := range []resolverv1.Purpose{reChat, reSubagent, rePersonal, reCompact} {
		t.Run(p.String()+" with no usable default", func(t *testing.T) {
			_, err := w.in(t).res(chat.Id, r.Id, p)
			want := map[string]string{"requested_reason": "PROVIDER_HOST_NOT_ALLOWED", "default_model_config_id": d.Id, "default_reason": "PROVIDER_HOST_NOT_ALLOWED"}
			if p == reChat {
				want["model_config_id"] = r.Id
			} else {
				want["model_config_id"] = c.Id // the soft override's fallback, the chat's model, failed
			}
			reFail(t, err, reFP, "NO_USABLE_MODEL_CONFIG", want)
		})
	}
	_, err = w.res(chat.Id, r.Id, reTitle)
	reFail(t, err, reFP, "PROVIDER_HOST_NOT_ALLOWED", notAllowed)
}

// TestEgressMatching: what the list allows at resolution — names, *.suffix patterns at any depth,
// any port, and the empty base_url (the SDK's default) — and what it does not: the pattern's own
// suffix, look-alikes, addresses spelled as names. A disabled provider outside the list is
// PROVIDER_DISABLED: that check comes first.
func TestEgressMatching(t *testing.T) {
	w := reNew(t, reEgressOpts(t, reEgressHosts))
	owner := w.person()
	base := w.cfg(w.provAt("openai", "").Id)
	w.central(base.AiProviderId)
	chat := w.Chat(owner.Id, base.Id)
	allowed := []string{"", "https://api.allowed.test/v1", "https://API.allowed.TEST./v1", "http://api.allowed.test:9000/v1",
		"https://west.eu.allowed.test/v1", "https://a.b.west.eu.allowed.test:8443/openai"}
	for _, u := range allowed {
		t.Run("allowed "+u, func(t *testing.T) {
			w := w.in(t)
			p := w.provAt("bedrock", u)
			cfg := w.cfg(p.Id)
			res, err := w.res(chat.Id, cfg.Id, reTitle)
			reOK(t, res, err, reWant{config: cfg, provider: p, cred: reAmbient, requested: cfg.Id})
		})
	}
	refused := map[string]string{
		"https://eu.allowed.test/v1":                 "eu.allowed.test",
		"https://api.allowed.test.elsewhere.test/v1": "api.allowed.test.elsewhere.test",
		"https://xeu.allowed.test/v1":                "xeu.allowed.test",
		"http://10.0.5:8000/v1":                      "10.0.5",
		"https://user:pw@api.allowed.test/v1":        "api.allowed.test",
		"https://api.allowed.test@elsewhere.test/v1": "elsewhere.test",
	}
	for u, host := range refused {
		t.Run("refused "+host, func(t *testing.T) {
			w := w.in(t)
			p := w.redirect(w.provAt("bedrock", ""), u)
			cfg := w.cfg(p.Id)
			_, err := w.res(chat.Id, cfg.Id, reTitle)
			reFail(t, err, reFP, "PROVIDER_HOST_NOT_ALLOWED", map[string]string{"model_config_id": cfg.Id, "provider_id": p.Id, "host": host})
			reNoText(t, err, "pw@")
		})
	}
	t.Run("disabled comes first", func(t *testing.T) {
		w := w.in(t)
		p := w.redirect(w.provAt("bedrock", ""), reOutside)
		cfg := w.cfg(p.Id)
		w.DisableProvider(p.Id)
		_, err := w.res(chat.Id, cfg.Id, reTitle)
		reFail(t, err, reFP, "PROVIDER_DISABLED", map[string]string{"model_config_id": cfg.Id, "provider_id": p.Id})
	})
}

// reNoText fails t if what the caller sees of err contains s.
func reNoText(t *testing.T, err error, s string) {
	t.Helper()
	if text := reErrText(err); s != "" && strings.Contains(text, s) {
		t.Errorf("the error shows %q: %s", s, text)
	}
}

// TestEgressEmptyListAllowsAnyHost: without a list (the default) a provider resolves wherever its
// base_url points, as before the list existed.
func TestEgressEmptyListAllowsAnyHost(t *testing.T) {
	w := reNew(t, testenv.Options{})
	owner := w.person()
	p := w.provAt("bedrock", "")
	cfg := w.cfg(p.Id)
	chat := w.Chat(owner.Id, cfg.Id)
	for _, u := range []string{reOutside, "http://10.0.5:8000/v1"} {
		p := w.redirect(p, u)
		res, err := w.res(chat.Id, cfg.Id, reTitle)
		reOK(t, res, err, reWant{config: cfg, provider: p, cred: reAmbient, requested: cfg.Id})
	}
}

// TestEgressFreshness: a base_url changed with psql reaches the cache by notification (docs/CONTRACT.md
// §5.1): a warm provider moved outside the list is refused within a second, and served again within
// a second of being moved back. A provider stored outside the list before the list was set is refused
// by a replica started with it.
func TestEgressFreshness(t *testing.T) {
	url := pgtest.NewDatabase(t)
	opts := reEgressOpts(t, reEgressHosts)
	opts.DatabaseURL = url
	w := reNew(t, opts)
	owner := w.person()
	p := w.provAt("bedrock", "https://api.allowed.test/v1")
	cfg := w.cfg(p.Id)
	chat := w.Chat(owner.Id, cfg.Id)
	title := func() error {
		_, err := w.res(chat.Id, cfg.Id, reTitle)
		return err
	}
	for range 3 { // warm: served from memory from now on
		if err := title(); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	if _, err := w.Pool.Exec(ctx, `UPDATE ai_providers SET base_url = $2 WHERE id = $1`, p.Id, reOutside); err != nil {
		t.Fatal(err)
	}
	took := testenv.Within(t, time.Second, "the redirected provider refused", func() error {
		err := title()
		if err == nil {
			return fmt.Errorf("still served")
		}
		reFail(t, err, reFP, "PROVIDER_HOST_NOT_ALLOWED", map[string]string{"host": reOutsideHost})
		return nil
	})
	t.Logf("refused %s after the psql UPDATE", took)
	if _, err := w.Pool.Exec(ctx, `UPDATE ai_providers SET base_url = $2 WHERE id = $1`, p.Id, "https://api.allowed.test/v1"); err != nil {
		t.Fatal(err)
	}
	testenv.Within(t, time.Second, "the provider moved back served", title)

	// Written outside while no replica had a list: a replica started with one refuses it.
	open := testenv.New(t, testenv.Options{DatabaseURL: url})
	if _, err := open.Admin.UpdateProvider(open.AsAdmin(), &resolverv1.UpdateProviderRequest{Id: p.Id, BaseUrl: &[]string{reOutside}[0]}); err != nil {
		t.Fatalf("a replica without a list refused the redirect: %v", err)
	}
	strict := testenv.New(t, opts)
	_, err := strict.Resolver.ResolveModel(strict.AsWorker(), &resolverv1.ResolveModelRequest{ChatId: chat.Id, ModelConfigId: cfg.Id, Purpose: reTitle})
	reFail(t, err, reFP, "PROVIDER_HOST_NOT_ALLOWED", map[string]string{"provider_id": p.Id, "host": reOutsideHost})
}
