package identity_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/resolverd/resolverd/internal/identity"
	"github.com/resolverd/resolverd/internal/identity/identitytest"
)

const audience = "resolverd"

func newIssuer(t *testing.T, algs ...string) *identitytest.Issuer {
	t.Helper()
	iss, err := identitytest.NewIssuer(algs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(iss.Close)
	return iss
}

// newVerifier verifies iss's tokens (through discovery unless jwksURL) and waits for its keys.
func newVerifier(t *testing.T, iss *identitytest.Issuer, o identity.JWTOptions) *identity.JWTVerifier {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if o.Issuer == "" {
		o.Issuer = iss.URL
	}
	if o.Audience == "" {
		o.Audience = audience
	}
	if o.RetryMax == 0 {
		o.RetryMax = 50 * time.Millisecond
	}
	v, err := identity.NewJWTVerifier(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func waitReady(t *testing.T, v *identity.JWTVerifier) {
	t.Helper()
	for start := time.Now(); !v.Ready(); time.Sleep(5 * time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the verifier's keys did not load within 5s")
		}
	}
}

func wantRefused(t *testing.T, v *identity.JWTVerifier, token, want string) {
	t.Helper()
	_, err := v.Verify(context.Background(), token)
	var e *identity.Error
	if !errors.As(err, &e) {
		t.Fatalf("Verify = %v, want a refusal saying %q", err, want)
	}
	if !strings.Contains(e.Message, want) {
		t.Fatalf("refused with %q, want it to say %q", e.Message, want)
	}
	if strings.Contains(e.Message, token) {
		t.Fatal("the refusal quotes the token")
	}
}

// TestVerifiesEachAlgorithm: a token signed by a key of the JWK Set with RS256, ES256 or EdDSA
// proves its sub, with its exp; the keys are found through the discovery document.
func TestVerifiesEachAlgorithm(t *testing.T) {
	iss := newIssuer(t, "RS256", "ES256", "EdDSA")
	v := newVerifier(t, iss, identity.JWTOptions{})
	waitReady(t, v)
	for _, k := range iss.Keys() {
		t.Run(k.Alg, func(t *testing.T) {
			claims := iss.Claims("system:serviceaccount:chat:worker", audience, time.Hour)
			got, err := v.Verify(context.Background(), k.Sign(claims))
			if err != nil {
				t.Fatal(err)
			}
			if got.Subject != "system:serviceaccount:chat:worker" || got.ExpiresAt.Unix() != claims["exp"] {
				t.Fatalf("verified %+v", got)
			}
		})
	}
}

// TestRefusals: what is refused, and that the reason says why.
func TestRefusals(t *testing.T) {
	iss := newIssuer(t, "ES256", "RS256")
	v := newVerifier(t, iss, identity.JWTOptions{JWKSURL: iss.JWKSURL()})
	waitReady(t, v)
	es, rs := iss.Keys()[0], iss.Keys()[1]
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := iss.Claims("system:serviceaccount:chat:worker", audience, time.Hour)
		edit(c)
		return c
	}
	now := time.Now()
	wantRefused(t, v, es.Sign(claims(func(c jwt.MapClaims) { c["aud"] = "someone-else" })), `aud does not name "resolverd"`)
	wantRefused(t, v, es.Sign(claims(func(c jwt.MapClaims) { c["aud"] = []string{"a", "b"} })), "aud")
	wantRefused(t, v, es.Sign(claims(func(c jwt.MapClaims) { delete(c, "aud") })), "aud")
	wantRefused(t, v, es.Sign(claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" })), "iss is not")
	wantRefused(t, v, es.Sign(claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-31 * time.Second).Unix() })), "expired")
	wantRefused(t, v, es.Sign(claims(func(c jwt.MapClaims) { delete(c, "exp") })), "exp")
	wantRefused(t, v, es.Sign(claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Minute).Unix() })), "not valid yet")
	wantRefused(t, v, es.Sign(claims(func(c jwt.MapClaims) { c["sub"] = "" })), "sub claim is required")
	wantRefused(t, v, es.Sign(claims(func(c jwt.MapClaims) { c["sub"] = "system:serviceaccount:a\nb" })), "sub claim must not contain control")
	// A certificate's kind of subject is never a JWT's, whatever the case of its prefix.
	for _, sub := range []string{"spiffe://example.org/ns/chat/sa/worker", "SPIFFE://example.org/ns/chat/sa/worker", "cn:worker", "CN:worker"} {
		wantRefused(t, v, es.Sign(claims(func(c jwt.MapClaims) { c["sub"] = sub })), "only a certificate can prove")
	}

	// Within the 30 s leeway: a token that expired 20 s ago, or is valid from 20 s on, passes.
	for _, c := range []jwt.MapClaims{
		claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-20 * time.Second).Unix() }),
		claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(20 * time.Second).Unix() }),
	} {
		if _, err := v.Verify(context.Background(), es.Sign(c)); err != nil {
			t.Errorf("within the leeway: %v", err)
		}
	}

	// A signature by another key under a kid of the set.
	other, err := identitytest.NewKey("ES256", es.KID)
	if err != nil {
		t.Fatal(err)
	}
	wantRefused(t, v, other.Sign(claims(func(jwt.MapClaims) {})), "signature is invalid")
	// The kid of an RSA key on an ES256 signature.
	mixed, _ := identitytest.NewKey("ES256", rs.KID)
	wantRefused(t, v, mixed.Sign(claims(func(jwt.MapClaims) {})), "")

	// alg none and HS256 are refused before any key is looked at, whatever the token says. The
	// HS256 token is the classic attack: the RSA public key's bytes as the HMAC secret.
	none := jwt.NewWithClaims(jwt.SigningMethodNone, claims(func(jwt.MapClaims) {}))
	unsigned, err := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := identity.FromAuthorization("Bearer " + unsigned); ok {
		t.Error("an unsigned token (no third segment) has the shape of a JWT")
	}
	wantRefused(t, v, unsigned+"c2ln", "alg is not one of RS256, ES256, EdDSA")
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(func(jwt.MapClaims) {}))
	hs.Header["kid"] = rs.KID
	hmac, err := hs.SignedString([]byte("the bytes of the RSA key's published modulus"))
	if err != nil {
		t.Fatal(err)
	}
	wantRefused(t, v, hmac, "alg is not one of")
	wantRefused(t, v, "e30.e30.c2ln", "")
}

// TestVerifiedOnceUntilExp: a verified token is remembered: verifying it again needs neither the
// issuer nor a signature check, until its exp.
func TestVerifiedOnceUntilExp(t *testing.T) {
	iss := newIssuer(t, "ES256")
	v := newVerifier(t, iss, identity.JWTOptions{JWKSURL: iss.JWKSURL(), Leeway: time.Second})
	waitReady(t, v)
	long := iss.Token("system:serviceaccount:chat:worker", audience, time.Hour)
	short := iss.Keys()[0].Sign(iss.Claims("system:serviceaccount:chat:worker", audience, 1500*time.Millisecond))
	for _, tok := range []string{long, short} {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	// The keys change: the cached tokens still pass, as their signatures were checked already.
	k, _ := identitytest.NewKey("ES256", "other")
	iss.SetKeys(k)
	if _, err := v.Verify(context.Background(), long); err != nil {
		t.Fatalf("a verified token was checked again: %v", err)
	}
	// Past its exp (and the leeway) the short one is verified again, and now refused.
	time.Sleep(2600 * time.Millisecond)
	if _, err := v.Verify(context.Background(), short); err == nil {
		t.Fatal("an expired token was served from the cache")
	}
}

// TestUnknownKIDRefreshesOnceInAWhile: a token signed with a key id the loaded set lacks fetches
// the set again (a rotation is picked up), but not more than once per interval.
func TestUnknownKIDRefreshesOnceInAWhile(t *testing.T) {
	iss := newIssuer(t, "RS256")
	v := newVerifier(t, iss, identity.JWTOptions{JWKSURL: iss.JWKSURL(), UnknownKIDRefreshEvery: time.Hour})
	waitReady(t, v)
	fetched := iss.Fetches()
	next, _ := identitytest.NewKey("EdDSA", "key-2")
	iss.SetKeys(next, iss.Keys()[0])
	if _, err := v.Verify(context.Background(), next.Sign(iss.Claims("system:serviceaccount:chat:worker", audience, time.Hour))); err != nil {
		t.Fatalf("a token of the rotated-in key: %v", err)
	}
	if n := iss.Fetches() - fetched; n != 1 {
		t.Fatalf("%d fetches for one rotation, want 1", n)
	}
	stranger, _ := identitytest.NewKey("ES256", "made-up")
	for range 5 {
		wantRefused(t, v, stranger.Sign(iss.Claims("system:serviceaccount:chat:worker", audience, time.Hour)), "unknown kid")
	}
	if n := iss.Fetches() - fetched; n != 1 {
		t.Fatalf("%d fetches after made-up key ids within the interval, want still 1", n)
	}
}

// TestKeysUnavailableAtStart: while the issuer is down the verifier says so (ErrKeysUnavailable,
// which callers see as UNAVAILABLE), retries in the background, and verifies once it is up.
func TestKeysUnavailableAtStart(t *testing.T) {
	iss := newIssuer(t, "ES256")
	iss.SetDown(true)
	v := newVerifier(t, iss, identity.JWTOptions{})
	tok := iss.Token("system:serviceaccount:chat:worker", audience, time.Hour)
	time.Sleep(200 * time.Millisecond)
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, identity.ErrKeysUnavailable) || v.Ready() {
		t.Fatalf("Verify while the issuer is down = %v, want ErrKeysUnavailable", err)
	}
	iss.SetDown(false)
	waitReady(t, v)
	if got, err := v.Verify(context.Background(), tok); err != nil || got.Subject != "system:serviceaccount:chat:worker" {
		t.Fatalf("after the issuer came up: %+v %v", got, err)
	}
}

func TestOptionsAreChecked(t *testing.T) {
	for _, tc := range []struct {
		o    identity.JWTOptions
		want string
	}{
		{identity.JWTOptions{Issuer: "https://issuer.example"}, "go together"},
		{identity.JWTOptions{Audience: "resolverd"}, "go together"},
		{identity.JWTOptions{Issuer: "kubernetes/serviceaccount", Audience: "resolverd"}, "must be an http(s) URL"},
		{identity.JWTOptions{Issuer: "https://i", Audience: "a", JWKSURL: "/jwks"}, "--jwt-jwks-url"},
		// A password in the keys' address would be logged: refused, and not quoted.
		{identity.JWTOptions{Issuer: "https://i", Audience: "a", JWKSURL: "https://u:hunter2-jwks@k/jwks"}, "must not carry a user or password"},
		{identity.JWTOptions{Issuer: "https://u:hunter2-jwks@i", Audience: "a"}, "must not carry a user or password"},
		{identity.JWTOptions{Issuer: "https://i", Audience: "a", JWKSURL: "https://u:hunter2-jwks@k/%zz"}, "not a URL"},
	} {
		err := tc.o.Check()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.o, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the refusal quotes the password: %v", err)
		}
	}
	// A legacy issuer that is not a URL is fine with the keys' address given.
	if err := (identity.JWTOptions{Issuer: "kubernetes/serviceaccount", Audience: "a", JWKSURL: "https://k/jwks"}).Check(); err != nil {
		t.Error(err)
	}
}

func TestFromAuthorization(t *testing.T) {
	for value, want := range map[string]bool{
		"Bearer aaa.bbb.ccc": true,
		"bearer  a-_.b.c9 ":  true,
		"Bearer aaa.bbb.":    false,
		"Bearer aaa.bbb":     false,
		"Bearer .bbb.ccc":    false,
		"Bearer a.b.c.d":     false,
		"Basic aaa.bbb.ccc":  false,
		"aaa.bbb.ccc":        false,
		"Bearer a..c":        false,
		"Bearer a+/.b=.c":    true, // the shape only: the parser refuses the characters
	} {
		if _, ok := identity.FromAuthorization(value); ok != want {
			t.Errorf("FromAuthorization(%q) = %v, want %v", value, ok, want)
		}
	}
	if _, ok := identity.FromAuthorization("Bearer " + strings.Repeat("a", 16<<10) + ".b.c"); ok {
		t.Error("a token over 16 KiB was taken")
	}
}
