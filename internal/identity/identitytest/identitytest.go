// Package identitytest is a JWT issuer for tests and the benchmark: an OpenID Connect discovery
// document and a JWK Set served by httptest on loopback, keys generated on the spot (RSA, ECDSA
// P-256, Ed25519), tokens signed with golang-jwt. Keys can be rotated and the server taken down, to
// test what a verifier does then. Nothing here is for production.
package identitytest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// Key is a signing key of the issuer.
type Key struct {
	KID    string
	Alg    string // RS256, ES256 or EdDSA
	signer crypto.Signer
}

// NewKey generates a key for alg (RS256, ES256 or EdDSA) named kid.
func NewKey(alg, kid string) (Key, error) {
	var (
		s   crypto.Signer
		err error
	)
	switch alg {
	case "RS256":
		s, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		s, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, s, err = ed25519.GenerateKey(rand.Reader)
	default:
		err = fmt.Errorf("identitytest: no key for alg %q", alg)
	}
	return Key{KID: kid, Alg: alg, signer: s}, err
}

func (k Key) method() jwt.SigningMethod {
	switch k.Alg {
	case "RS256":
		return jwt.SigningMethodRS256
	case "ES256":
		return jwt.SigningMethodES256
	}
	return jwt.SigningMethodEdDSA
}

// Sign signs claims with k, naming it in the kid header.
func (k Key) Sign(claims jwt.Claims) string {
	t := jwt.NewWithClaims(k.method(), claims)
	t.Header["kid"] = k.KID
	s, err := t.SignedString(k.signer)
	if err != nil {
		panic(err) // a key made by NewKey always signs
	}
	return s
}

// Issuer serves a discovery document (issuer URL + /.well-known/openid-configuration) and a JWK Set
// (/jwks) of its keys.
type Issuer struct {
	// URL is the issuer (the iss of its tokens): the httptest server's base URL.
	URL string
	srv *httptest.Server

	mu   sync.Mutex
	keys []Key
	down bool

	fetches atomic.Int64 // JWK Set requests answered
}

// NewIssuer starts an issuer with one key per alg (kids "key-1", "key-2", ...).
func NewIssuer(algs ...string) (*Issuer, error) {
	i := &Issuer{}
	for n, alg := range algs {
		k, err := NewKey(alg, fmt.Sprintf("key-%d", n+1))
		if err != nil {
			return nil, err
		}
		i.keys = append(i.keys, k)
	}
	i.srv = httptest.NewServer(http.HandlerFunc(i.serve))
	i.URL = i.srv.URL
	return i, nil
}

// Close stops the server.
func (i *Issuer) Close() { i.srv.Close() }

// JWKSURL is where the JWK Set is served.
func (i *Issuer) JWKSURL() string { return i.URL + "/jwks" }

// Keys returns the keys the JWK Set holds now, the first being the one Token signs with.
func (i *Issuer) Keys() []Key {
	i.mu.Lock()
	defer i.mu.Unlock()
	return append([]Key(nil), i.keys...)
}

// SetKeys replaces the JWK Set (a rotation at the issuer).
func (i *Issuer) SetKeys(keys ...Key) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keys = append([]Key(nil), keys...)
}

// SetDown makes every request fail with 503 (down) or be answered again.
func (i *Issuer) SetDown(down bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.down = down
}

// Fetches counts the JWK Set requests answered.
func (i *Issuer) Fetches() int64 { return i.fetches.Load() }

// Claims are a token's claims for subject and audience, valid from a minute ago for ttl.
func (i *Issuer) Claims(subject, audience string, ttl time.Duration) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"iss": i.URL, "sub": subject, "aud": audience,
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(ttl).Unix()}
}

// Token signs Claims(subject, audience, ttl) with the first key.
func (i *Issuer) Token(subject, audience string, ttl time.Duration) string {
	return i.Keys()[0].Sign(i.Claims(subject, audience, ttl))
}

func (i *Issuer) serve(w http.ResponseWriter, r *http.Request) {
	i.mu.Lock()
	down, keys := i.down, append([]Key(nil), i.keys...)
	i.mu.Unlock()
	if down {
		http.Error(w, "the issuer is down (identitytest)", http.StatusServiceUnavailable)
		return
	}
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": i.URL, "jwks_uri": i.JWKSURL(),
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256", "EdDSA"}})
	case "/jwks":
		set := jwkset.NewMemoryStorage()
		for _, k := range keys {
			jwk, err := jwkset.NewJWKFromKey(k.signer.Public(), jwkset.JWKOptions{
				Metadata: jwkset.JWKMetadataOptions{KID: k.KID, ALG: jwkset.ALG(k.Alg), USE: jwkset.UseSig}})
			if err == nil {
				err = set.KeyWrite(r.Context(), jwk)
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		body, err := set.JSONPublic(context.WithoutCancel(r.Context()))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		i.fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	default:
		http.NotFound(w, r)
	}
}
