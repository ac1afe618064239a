package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"golang.org/x/time/rate"
)

// keySource holds the issuer's keys: loaded in the background (retried until it works, so a
// replica starts while the issuer is unreachable), refreshed every RefreshEvery, and fetched again
// when a token names a key id they lack, at most once every UnknownKIDRefreshEvery.
type keySource struct {
	opts JWTOptions
	kf   atomic.Pointer[keyfunc.Keyfunc] // nil until the first load succeeds
}

func (k *keySource) ready() bool { return k.kf.Load() != nil }

func (k *keySource) keyfunc() keyfunc.Keyfunc {
	if p := k.kf.Load(); p != nil {
		return *p
	}
	return nil
}

// run loads the keys, retrying with backoff until it succeeds or ctx ends.
func (k *keySource) run(ctx context.Context) {
	backoff := 250 * time.Millisecond
	for ctx.Err() == nil {
		kf, from, err := k.load(ctx)
		if err == nil {
			k.kf.Store(&kf)
			k.opts.Log.Info("JWT verification keys loaded", "jwks_url", from, "issuer", k.opts.Issuer)
			return
		}
		if ctx.Err() != nil {
			return
		}
		k.opts.Log.Warn("JWT verification keys unavailable: JWT calls are refused with UNAVAILABLE until they load (bearer tokens are unaffected)",
			"issuer", k.opts.Issuer, "error", err, "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, k.opts.RetryMax)
	}
}

// load finds the JWK Set (discovery unless JWKSURL is set) and fetches it once. The storage's own
// refresh goroutine lives until ctx ends, or ends at once when this attempt fails.
func (k *keySource) load(ctx context.Context) (keyfunc.Keyfunc, string, error) {
	u := k.opts.JWKSURL
	if u == "" {
		var err error
		if u, err = discover(ctx, k.opts.HTTPClient, k.opts.Issuer); err != nil {
			return nil, "", err
		}
	}
	sctx, cancel := context.WithCancel(ctx)
	store, err := jwkset.NewStorageFromHTTP(u, jwkset.HTTPClientStorageOptions{
		Client: k.opts.HTTPClient, Ctx: sctx, RefreshInterval: k.opts.RefreshEvery,
		RefreshErrorHandler: func(_ context.Context, err error) {
			k.opts.Log.Warn("refreshing the JWT issuer's keys failed; the keys already loaded stay in use", "jwks_url", u, "error", err)
		},
	})
	if err != nil {
		cancel()
		return nil, "", fmt.Errorf("fetch the JWK Set %s: %w", u, err)
	}
	context.AfterFunc(ctx, cancel) // the refresh goroutine ends with ctx
	// The refresher refreshes on every unknown key id it is asked for; gated spaces those asks out.
	refresher, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs: map[string]jwkset.Storage{u: store}, RefreshUnknownKID: rate.NewLimiter(rate.Inf, 1),
	})
	if err != nil {
		return nil, "", err
	}
	kf, err := keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: &gated{Storage: refresher, loaded: store,
		every: k.opts.UnknownKIDRefreshEvery, turn: make(chan struct{}, 1)}})
	if err != nil {
		return nil, "", err
	}
	return kf, u, nil
}

// gated reads keys from what is loaded and, for a key id it lacks, lets one caller at a time have
// the JWK Set fetched again, at most once every `every`: a key rotation at the issuer is picked up
// by the first token signed with the new key, and a flood of made-up key ids costs one fetch per
// interval. Callers that wait behind a fetch see what it brought.
type gated struct {
	jwkset.Storage                // refreshes on an unknown key id
	loaded         jwkset.Storage // the keys as last fetched
	every          time.Duration
	turn           chan struct{} // one refresh at a time
	last           time.Time     // of the last refresh; guarded by turn
}

func (g *gated) KeyRead(ctx context.Context, kid string) (jwkset.JWK, error) {
	jwk, err := g.loaded.KeyRead(ctx, kid)
	if !errors.Is(err, jwkset.ErrKeyNotFound) {
		return jwk, err
	}
	select {
	case g.turn <- struct{}{}:
		defer func() { <-g.turn }()
	case <-ctx.Done():
		return jwkset.JWK{}, ctx.Err()
	}
	if jwk, err := g.loaded.KeyRead(ctx, kid); !errors.Is(err, jwkset.ErrKeyNotFound) {
		return jwk, err // fetched while this caller waited
	}
	if time.Since(g.last) < g.every {
		return jwkset.JWK{}, err
	}
	g.last = time.Now()
	return g.Storage.KeyRead(ctx, kid)
}

// discover reads jwks_uri from the issuer's OpenID Connect discovery document (OpenID Connect
// Discovery 1.0 §4; Kubernetes serves one at the service-account issuer), checking that the
// document is the issuer's own.
func discover(ctx context.Context, client *http.Client, issuer string) (string, error) {
	u := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("fetch the discovery document: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("fetch the discovery document %s: HTTP %d", u, resp.StatusCode)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc); err != nil {
		return "", fmt.Errorf("read the discovery document %s: %w", u, err)
	}
	if doc.Issuer != issuer {
		return "", fmt.Errorf("the discovery document %s is for issuer %q, not %q", u, doc.Issuer, issuer)
	}
	if err := httpURL(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("the discovery document %s has no usable jwks_uri (%q): %w", u, doc.JWKSURI, err)
	}
	return doc.JWKSURI, nil
}
