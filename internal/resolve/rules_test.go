package resolve

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/egress"
	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/pkg/secret"
)

// docs/CONTRACT.md §2.1 with literal expectations, including the order in which the checks run.
func TestUnusable(t *testing.T) {
	live := func() *Provider {
		return &Provider{ID: uuid.New(), Type: "openai", Name: "p", Enabled: true, BYOKPolicy: BYOKDisabled}
	}
	cfg := func(mut func(c *ModelConfig)) *ModelConfig {
		p := live()
		c := &ModelConfig{ID: uuid.New(), ProviderID: p.ID, Model: "m", Enabled: true, Provider: p}
		mut(c)
		return c
	}
	tests := []struct {
		name string
		cfg  *ModelConfig
		want errs.Reason
	}{
		{"usable", cfg(func(*ModelConfig) {}), ""},
		{"nil config", nil, errs.ModelConfigNotFound},
		{"deleted config", cfg(func(c *ModelConfig) { c.Deleted = true }), errs.ModelConfigNotFound},
		{"deleted and disabled config", cfg(func(c *ModelConfig) { c.Deleted, c.Enabled = true, false }), errs.ModelConfigNotFound},
		{"disabled config", cfg(func(c *ModelConfig) { c.Enabled = false }), errs.ModelConfigDisabled},
		{"nil provider", cfg(func(c *ModelConfig) { c.Provider = nil }), errs.ProviderNotFound},
		{"nil provider, no provider id", cfg(func(c *ModelConfig) { c.Provider, c.ProviderID = nil, uuid.Nil }), errs.ProviderNotFound},
		{"deleted provider still flagged enabled", cfg(func(c *ModelConfig) { c.Provider.Deleted = true }), errs.ProviderNotFound},
		{"deleted and disabled provider", cfg(func(c *ModelConfig) { c.Provider.Deleted, c.Provider.Enabled = true, false }), errs.ProviderNotFound},
		{"disabled provider", cfg(func(c *ModelConfig) { c.Provider.Enabled = false }), errs.ProviderDisabled},
		// The order of docs/CONTRACT.md §2.1: the config's own state comes before its provider's.
		{"disabled config, disabled provider", cfg(func(c *ModelConfig) { c.Enabled, c.Provider.Enabled = false, false }), errs.ModelConfigDisabled},
		{"disabled config, deleted provider", cfg(func(c *ModelConfig) { c.Enabled, c.Provider.Deleted = false, true }), errs.ModelConfigDisabled},
		{"disabled config, nil provider", cfg(func(c *ModelConfig) { c.Enabled, c.Provider = false, nil }), errs.ModelConfigDisabled},
		{"deleted config, disabled provider", cfg(func(c *ModelConfig) { c.Deleted, c.Provider.Enabled = true, false }), errs.ModelConfigNotFound},
		{"deleted config, nil provider", cfg(func(c *ModelConfig) { c.Deleted, c.Provider = true, nil }), errs.ModelConfigNotFound},
		{"deleted config, deleted provider", cfg(func(c *ModelConfig) { c.Deleted, c.Provider.Deleted = true, true }), errs.ModelConfigNotFound},
		// docs/CONTRACT.md §7.5: the provider's base_url host, checked right after PROVIDER_DISABLED.
		{"base_url host allowed", cfg(func(c *ModelConfig) { c.Provider.BaseURL = "https://api.allowed.test/v1" }), ""},
		{"base_url host allowed by a pattern, any port", cfg(func(c *ModelConfig) { c.Provider.BaseURL = "http://a.b.eu.allowed.test:8080/v1" }), ""},
		{"empty base_url", cfg(func(c *ModelConfig) { c.Provider.BaseURL = "" }), ""},
		{"base_url host not allowed", cfg(func(c *ModelConfig) { c.Provider.BaseURL = forbiddenURL }), errs.ProviderHostNotAllowed},
		{"base_url is the pattern's own suffix", cfg(func(c *ModelConfig) { c.Provider.BaseURL = "https://eu.allowed.test/v1" }), errs.ProviderHostNotAllowed},
		{"base_url unreadable", cfg(func(c *ModelConfig) { c.Provider.BaseURL = "https://api.allowed.test@elsewhere.test/v1" }), errs.ProviderHostNotAllowed},
		{"disabled provider, host not allowed", cfg(func(c *ModelConfig) { c.Provider.Enabled, c.Provider.BaseURL = false, forbiddenURL }), errs.ProviderDisabled},
		{"deleted provider, host not allowed", cfg(func(c *ModelConfig) { c.Provider.Deleted, c.Provider.BaseURL = true, forbiddenURL }), errs.ProviderNotFound},
		{"disabled config, host not allowed", cfg(func(c *ModelConfig) { c.Enabled, c.Provider.BaseURL = false, forbiddenURL }), errs.ModelConfigDisabled},
		{"deleted config, host not allowed", cfg(func(c *ModelConfig) { c.Deleted, c.Provider.BaseURL = true, forbiddenURL }), errs.ModelConfigNotFound},
	}
	hosts := (&world{allowed: worldHosts}).hosts()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Unusable(tt.cfg, hosts)
			if tt.want == "" {
				if got != nil {
					t.Fatalf("Unusable = %v, want usable", got)
				}
				return
			}
			if got == nil {
				t.Fatalf("Unusable = nil, want %s", tt.want)
			}
			if got.Reason != tt.want {
				t.Errorf("Unusable reason = %s, want %s", got.Reason, tt.want)
			}
			if !errs.Is(got, tt.want) {
				t.Errorf("errs.Is(%v, %s) = false", got, tt.want)
			}
			// Metadata names the config (when there is one) and, for provider reasons, the provider.
			if tt.cfg != nil && got.Metadata["model_config_id"] != tt.cfg.ID.String() {
				t.Errorf("metadata model_config_id = %q, want %s", got.Metadata["model_config_id"], tt.cfg.ID)
			}
			if tt.want == errs.ProviderNotFound || tt.want == errs.ProviderDisabled || tt.want == errs.ProviderHostNotAllowed {
				if got.Metadata["provider_id"] != tt.cfg.ProviderID.String() {
					t.Errorf("metadata provider_id = %q, want %s", got.Metadata["provider_id"], tt.cfg.ProviderID)
				}
			}
			if tt.want == errs.ProviderHostNotAllowed {
				want, _ := egress.HostOf(tt.cfg.Provider.BaseURL)
				if h, ok := got.Metadata["host"]; !ok || h != want {
					t.Errorf("metadata host = %q (present %v), want %q", h, ok, want)
				}
			}
		})
	}
}

// Without a list (the default) every host is allowed, however odd.
func TestUnusableWithoutAList(t *testing.T) {
	empty, err := egress.Parse("")
	if err != nil {
		t.Fatal(err)
	}
	for _, hosts := range []*egress.AllowList{nil, empty} {
		for _, u := range []string{"", forbiddenURL, "http://10.0.5/", "https://user:pw@elsewhere.test/"} {
			p := &Provider{ID: uuid.New(), Enabled: true, BaseURL: u}
			c := &ModelConfig{ID: uuid.New(), ProviderID: p.ID, Enabled: true, Provider: p}
			if got := Unusable(c, hosts); got != nil {
				t.Errorf("list %q: Unusable(base_url %q) = %v, want usable", hosts, u, got)
			}
		}
	}
}

// Every combination of config and provider state, base_url and list, against the oracle.
func TestUnusableMatrix(t *testing.T) {
	providers := map[string]func() *Provider{
		"nil":              func() *Provider { return nil },
		"deleted":          func() *Provider { return &Provider{ID: uuid.New(), Enabled: true, Deleted: true} },
		"deleted+disabled": func() *Provider { return &Provider{ID: uuid.New(), Deleted: true} },
		"disabled":         func() *Provider { return &Provider{ID: uuid.New()} },
		"live":             func() *Provider { return &Provider{ID: uuid.New(), Enabled: true} },
	}
	urls := []string{"", "https://api.allowed.test/v1", "https://x.eu.allowed.test/", "https://eu.allowed.test/", forbiddenURL}
	for pname, mk := range providers {
		for _, deleted := range []bool{false, true} {
			for _, enabled := range []bool{false, true} {
				for _, u := range urls {
					for _, allowed := range [][]string{nil, worldHosts} {
						t.Run(fmt.Sprintf("provider=%s/deleted=%v/enabled=%v/%s/list=%v", pname, deleted, enabled, u, allowed), func(t *testing.T) {
							p := mk()
							c := &ModelConfig{ID: uuid.New(), Deleted: deleted, Enabled: enabled, Provider: p}
							if p != nil {
								c.ProviderID, p.BaseURL = p.ID, u
							}
							want := specUnusable(c, allowed)
							got := Unusable(c, (&world{allowed: allowed}).hosts())
							if (got == nil) != (want == "") || (got != nil && got.Reason != want) {
								t.Errorf("Unusable = %v, want %q", got, want)
							}
						})
					}
				}
			}
		}
	}
}

func TestBYOKAllowed(t *testing.T) {
	for _, policy := range []BYOKPolicy{BYOKDisabled, BYOKOptional, BYOKRequired} {
		for _, allow := range []bool{false, true} {
			want := allow && policy != BYOKDisabled
			if got := BYOKAllowed(&Provider{BYOKPolicy: policy}, allow); got != want {
				t.Errorf("BYOKAllowed(policy=%s, allow=%v) = %v, want %v", policy, allow, got, want)
			}
		}
	}
}

// loaders returns key loaders that count their calls.
type loaders struct {
	user, central       *Key
	userErr, centralErr error
	userN, centralN     int
}

func (l *loaders) userLoader() (*Key, error) {
	l.userN++
	if l.userErr != nil {
		return nil, l.userErr
	}
	return l.user, nil
}

func (l *loaders) centralLoader() ([]*Key, error) {
	l.centralN++
	if l.centralErr != nil {
		return nil, l.centralErr
	}
	if l.central == nil {
		return nil, nil
	}
	return []*Key{l.central}, nil
}

// docs/CONTRACT.md §2.2 with literal expectations for its every branch.
func TestChooseCredential(t *testing.T) {
	const (
		no  = false
		yes = true
	)
	tests := []struct {
		name                  string
		allow                 bool
		policy                BYOKPolicy
		typ                   string
		hasUser, hasCentral   bool
		wantSource            CredentialSource
		wantErr               errs.Reason
		wantUserN, wantCentrN int
	}{
		// 1. BYOK allowed and the owner has a key → USER, central keys untouched.
		{"optional, user key wins over central", yes, BYOKOptional, "openai", yes, yes, SourceUser, "", 1, 0},
		{"required, user key", yes, BYOKRequired, "openai", yes, no, SourceUser, "", 1, 0},
		{"required bedrock, user key", yes, BYOKRequired, "bedrock", yes, yes, SourceUser, "", 1, 0},
		// 2. required and no user key → USER_KEY_REQUIRED, even with a central key or on bedrock.
		{"required, no user key, central exists", yes, BYOKRequired, "openai", no, yes, 0, errs.UserKeyRequired, 1, 0},
		{"required bedrock, no user key", yes, BYOKRequired, "bedrock", no, no, 0, errs.UserKeyRequired, 1, 0},
		// 3. central key.
		{"optional, no user key, central", yes, BYOKOptional, "anthropic", no, yes, SourceCentral, "", 1, 1},
		{"disabled policy, central", yes, BYOKDisabled, "openai", no, yes, SourceCentral, "", 0, 1},
		{"disabled policy ignores a user key", yes, BYOKDisabled, "openai", yes, yes, SourceCentral, "", 0, 1},
		{"BYOK off globally ignores a user key", no, BYOKOptional, "openai", yes, yes, SourceCentral, "", 0, 1},
		{"BYOK off globally, required policy, central", no, BYOKRequired, "openai", no, yes, SourceCentral, "", 0, 1},
		{"bedrock prefers a central key", no, BYOKDisabled, "bedrock", no, yes, SourceCentral, "", 0, 1},
		// 4. bedrock → AMBIENT.
		{"bedrock, nothing", yes, BYOKDisabled, "bedrock", no, no, SourceAmbient, "", 0, 1},
		{"bedrock optional, no keys", yes, BYOKOptional, "bedrock", no, no, SourceAmbient, "", 1, 1},
		{"bedrock, BYOK off, user key ignored", no, BYOKOptional, "bedrock", yes, no, SourceAmbient, "", 0, 1},
		// 5. nothing: USER_KEY_REQUIRED when BYOK is allowed, else NO_CREDENTIALS.
		{"optional, no keys", yes, BYOKOptional, "openai", no, no, 0, errs.UserKeyRequired, 1, 1},
		{"disabled policy, no keys", yes, BYOKDisabled, "openai", no, no, 0, errs.NoCredentials, 0, 1},
		{"BYOK off, optional, no keys", no, BYOKOptional, "openai", no, no, 0, errs.NoCredentials, 0, 1},
		{"BYOK off, required, user key ignored, no central", no, BYOKRequired, "google", yes, no, 0, errs.NoCredentials, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runChooseCredential(t, tt.allow, tt.policy, tt.typ, tt.hasUser, tt.hasCentral,
				specCred{source: tt.wantSource, err: tt.wantErr, readUser: tt.wantUserN == 1, readCentral: tt.wantCentrN == 1})
		})
	}
}

// The full product allowBYOK × byok_policy × user key × central key × provider type, against the
// oracle of docs/CONTRACT.md §2.2.
func TestChooseCredentialMatrix(t *testing.T) {
	types := []string{"anthropic", "azure", "bedrock", "google", "openai", "openai-compat", "openrouter", "vercel"}
	for _, allow := range []bool{true, false} {
		for _, policy := range []BYOKPolicy{BYOKDisabled, BYOKOptional, BYOKRequired} {
			for _, hasUser := range []bool{true, false} {
				for _, hasCentral := range []bool{true, false} {
					for _, typ := range types {
						name := fmt.Sprintf("allow=%v/policy=%s/user=%v/central=%v/%s", allow, policy, hasUser, hasCentral, typ)
						t.Run(name, func(t *testing.T) {
							runChooseCredential(t, allow, policy, typ, hasUser, hasCentral,
								specCredential(typ, policy, allow, hasUser, hasCentral))
						})
					}
				}
			}
		}
	}
}

func runChooseCredential(t *testing.T, allow bool, policy BYOKPolicy, typ string, hasUser, hasCentral bool, want specCred) {
	t.Helper()
	p := &Provider{ID: uuid.New(), Type: typ, Name: "p", Enabled: true, BYOKPolicy: policy}
	l := &loaders{}
	if hasUser {
		l.user = OpenedKey(uuid.New(), secret.New("user-secret"), "")
	}
	if hasCentral {
		l.central = OpenedKey(uuid.New(), secret.New("central-secret"), "")
	}
	cred, err := ChooseCredential(context.Background(), p, Choice{AllowBYOK: allow}, l.userLoader, l.centralLoader)

	wantUserN, wantCentralN := 0, 0
	if want.readUser {
		wantUserN = 1
	}
	if want.readCentral {
		wantCentralN = 1
	}
	if l.userN != wantUserN {
		t.Errorf("user-key loader called %d times, want %d", l.userN, wantUserN)
	}
	if l.centralN != wantCentralN {
		t.Errorf("central-key loader called %d times, want %d", l.centralN, wantCentralN)
	}
	if want.err != "" {
		if err == nil {
			t.Fatalf("ChooseCredential = %s, want error %s", cred.Source, want.err)
		}
		if got := errs.ReasonOf(err); got != want.err {
			t.Errorf("error reason = %s (%v), want %s", got, err, want.err)
		}
		var e *errs.Error
		if errors.As(err, &e) && e.Metadata["provider_id"] != p.ID.String() {
			t.Errorf("metadata provider_id = %q, want %s", e.Metadata["provider_id"], p.ID)
		}
		if cred.Source != 0 || cred.KeyID != uuid.Nil || !cred.Secret.IsZero() || cred.Fingerprint != "" {
			t.Errorf("credential = %+v alongside an error, want zero", cred)
		}
		return
	}
	if err != nil {
		t.Fatalf("ChooseCredential error = %v, want %s", err, want.source)
	}
	if cred.Source != want.source {
		t.Fatalf("source = %s, want %s", cred.Source, want.source)
	}
	var wantKey *Key
	switch want.source {
	case SourceUser:
		wantKey = l.user
	case SourceCentral:
		wantKey = l.central
	}
	if wantKey == nil {
		if cred.KeyID != uuid.Nil || !cred.Secret.IsZero() {
			t.Errorf("ambient credential carries key %s / a secret", cred.KeyID)
		}
		return
	}
	if cred.KeyID != wantKey.ID || cred.Secret.Reveal() != plainOf(wantKey) {
		t.Errorf("credential key = %s, want %s (and its secret)", cred.KeyID, wantKey.ID)
	}
}

// A loader's error ends the choice as it is, and no later loader is called.
func TestChooseCredentialLoaderErrors(t *testing.T) {
	kinds := map[string]error{
		"missing scope":        errs.New(errs.MissingScope, "missing scope", "scope", "user_ai_provider_key:read"),
		"database unavailable": errs.New(errs.DatabaseUnavailable, "database unavailable"),
		"plain":                errors.New("db down"),
		"canceled":             context.Canceled,
		"deadline":             fmt.Errorf("query: %w", context.DeadlineExceeded),
	}
	for kind, injected := range kinds {
		for _, policy := range []BYOKPolicy{BYOKOptional, BYOKRequired} {
			t.Run(fmt.Sprintf("user loader/%s/%s", policy, kind), func(t *testing.T) {
				l := &loaders{userErr: injected, central: OpenedKey(uuid.New(), secret.New("c"), "")}
				p := &Provider{ID: uuid.New(), Type: "bedrock", Enabled: true, BYOKPolicy: policy}
				cred, err := ChooseCredential(context.Background(), p, Choice{AllowBYOK: true}, l.userLoader, l.centralLoader)
				checkLoaderErr(t, cred, err, injected)
				if l.userN != 1 || l.centralN != 0 {
					t.Errorf("loader calls user=%d central=%d, want 1 and 0", l.userN, l.centralN)
				}
			})
		}
		for _, allow := range []bool{true, false} {
			for _, typ := range []string{"bedrock", "openai"} {
				t.Run(fmt.Sprintf("central loader/allow=%v/%s/%s", allow, typ, kind), func(t *testing.T) {
					l := &loaders{centralErr: injected}
					p := &Provider{ID: uuid.New(), Type: typ, Enabled: true, BYOKPolicy: BYOKOptional}
					cred, err := ChooseCredential(context.Background(), p, Choice{AllowBYOK: allow}, l.userLoader, l.centralLoader)
					checkLoaderErr(t, cred, err, injected)
					wantUser := 0
					if allow {
						wantUser = 1
					}
					if l.userN != wantUser || l.centralN != 1 {
						t.Errorf("loader calls user=%d central=%d, want %d and 1", l.userN, l.centralN, wantUser)
					}
				})
			}
		}
	}
}

func checkLoaderErr(t *testing.T, cred Credential, err, injected error) {
	t.Helper()
	if err == nil {
		t.Fatalf("ChooseCredential = %s, want the loader's error", cred.Source)
	}
	if !errors.Is(err, injected) {
		t.Errorf("errors.Is(%v, %v) = false", err, injected)
	}
	if got, want := errs.ReasonOf(err), errs.ReasonOf(injected); got != want {
		t.Errorf("reason = %q, want the loader's %q", got, want)
	}
	if cred.Source != 0 || cred.KeyID != uuid.Nil || !cred.Secret.IsZero() || cred.Fingerprint != "" {
		t.Errorf("credential = %+v alongside an error, want zero", cred)
	}
}
