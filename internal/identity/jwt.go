// Package identity verifies the credentials of workload identities (docs/CONTRACT.md §3.1) and
// names the subject they prove: a JWT signed by the configured issuer (OpenID Connect, Kubernetes
// service-account tokens included) gives its sub claim; a client certificate verified by the TLS
// handshake gives its URI SAN (a SPIFFE ID) or "cn:<common name>". Which scopes a subject carries
// is the workload_identities table's to say, not this package's: internal/transport looks the
// subject up.
//
// It writes none of the cryptography. JWTs are verified by github.com/golang-jwt/jwt/v5 against
// keys from the issuer's JWK Set, fetched, parsed and refreshed by github.com/MicahParks/jwkset
// through github.com/MicahParks/keyfunc/v3; this package only chooses what is accepted (the
// algorithms, the claims, the leeway), when keys are fetched again, and remembers verified tokens
// until they expire.
//
// Files: jwt.go (the verifier), jwks.go (loading and refreshing the keys), cert.go (client
// certificates), subject.go (what a subject may be).
package identity

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unsafe"

	"github.com/golang-jwt/jwt/v5"

	"github.com/resolverd/resolverd/internal/cache"
)

// Algorithms are the JWS algorithms a JWT may be signed with: asymmetric only. "none" and the
// HMAC algorithms (HS256, ...) are refused, whatever a token's header or the key set say: an HMAC
// "public key" is a shared secret, and a verifier that accepted one could be fooled by anyone who
// read the JWK Set.
var Algorithms = []string{"RS256", "ES256", "EdDSA"}

// JWTOptions configure JWT verification (serve --jwt-issuer, --jwt-audience, --jwt-jwks-url).
type JWTOptions struct {
	// Issuer is the iss every token must carry. Without JWKSURL it must be an http(s) URL: the
	// keys' address is read from Issuer + "/.well-known/openid-configuration" (jwks_uri).
	Issuer string
	// Audience must be one of a token's aud values.
	Audience string
	// JWKSURL, when set, is where the issuer's JWK Set is (no discovery).
	JWKSURL string

	// Leeway is the clock skew allowed on exp and nbf (default 30 s).
	Leeway time.Duration
	// HTTPClient fetches the discovery document and the keys (default: 10 s timeout, the system's
	// roots of trust).
	HTTPClient *http.Client
	// Log hears of loading and refreshing (nil: nobody).
	Log *slog.Logger
	// RetryMax bounds the wait between attempts while the keys cannot be loaded (default 10 s; the
	// first retry comes after 250 ms).
	RetryMax time.Duration
	// RefreshEvery is how often loaded keys are fetched again (default 1 h).
	RefreshEvery time.Duration
	// UnknownKIDRefreshEvery is the least time between two fetches caused by a token signed with a
	// key id the loaded keys lack (a key rotation at the issuer; default 5 s).
	UnknownKIDRefreshEvery time.Duration
	// CacheEntries bounds how many verified tokens are remembered (default 10,000).
	CacheEntries int
}

// ErrKeysUnavailable: the issuer's keys have not been loaded yet (the discovery document or the
// JWK Set could not be fetched since start). JWT calls are refused with UNAVAILABLE meanwhile;
// loading is retried in the background.
var ErrKeysUnavailable = errors.New("the JWT issuer's signing keys are not loaded yet (its JWKS or discovery document is unreachable); retry shortly")

// Error is a JWT that was refused: Message says why, for the caller (it never quotes the token).
type Error struct {
	Message string
	cause   error
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.cause }

// Verified is what a valid token proves.
type Verified struct {
	Subject string
	// ExpiresAt is the token's exp.
	ExpiresAt *time.Time
}

// JWTVerifier verifies bearer JWTs. Each token is verified once and remembered, by its SHA-256,
// until its exp: a warm call costs a hash and a map lookup, not a signature check.
type JWTVerifier struct {
	opts     JWTOptions
	parser   *jwt.Parser
	keys     *keySource
	verified *cache.LRU[[sha256.Size]byte, Verified]
}

// maxTokenBytes bounds what is taken for a JWT (Kubernetes tokens are about 1 KiB).
const maxTokenBytes = 16 << 10

// NewJWTVerifier checks o and starts loading the issuer's keys in the background, until ctx ends.
// Until they are loaded, Verify fails with ErrKeysUnavailable.
func NewJWTVerifier(ctx context.Context, o JWTOptions) (*JWTVerifier, error) {
	if err := o.Check(); err != nil {
		return nil, err
	}
	if o.Leeway == 0 {
		o.Leeway = 30 * time.Second
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 10 * time.Second
	}
	if o.RefreshEvery <= 0 {
		o.RefreshEvery = time.Hour
	}
	if o.UnknownKIDRefreshEvery <= 0 {
		o.UnknownKIDRefreshEvery = 5 * time.Second
	}
	if o.CacheEntries <= 0 {
		o.CacheEntries = 10_000
	}
	v := &JWTVerifier{
		opts: o,
		parser: jwt.NewParser(jwt.WithValidMethods(Algorithms), jwt.WithIssuer(o.Issuer), jwt.WithAudience(o.Audience),
			jwt.WithExpirationRequired(), jwt.WithLeeway(o.Leeway)),
		keys: &keySource{opts: o},
		// The TTL is only a backstop: an entry is served until its token's exp.
		verified: cache.New[[sha256.Size]byte, Verified](o.CacheEntries, 24*time.Hour),
	}
	go v.keys.run(ctx)
	return v, nil
}

// Check says what is wrong with o, before anything is fetched: the issuer and the audience go
// together, and the keys' address must be an http(s) URL, given or found by discovery.
func (o JWTOptions) Check() error {
	switch {
	case strings.TrimSpace(o.Issuer) == "" || strings.TrimSpace(o.Audience) == "":
		return errors.New("--jwt-issuer and --jwt-audience go together: give both to accept JWTs")
	case o.JWKSURL != "":
		if err := httpURL(o.JWKSURL); err != nil {
			return fmt.Errorf("--jwt-jwks-url: %w", err)
		}
	default:
		if err := httpURL(o.Issuer); err != nil {
			return fmt.Errorf("--jwt-issuer: without --jwt-jwks-url the keys are found at ISSUER/.well-known/openid-configuration, so the issuer must be an http(s) URL: %w", err)
		}
	}
	return nil
}

// httpURL checks an address of the issuer's public keys. It carries no credential: the keys are
// public, and the address is logged (so a parse error does not quote it either).
func httpURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("want an absolute https:// (or http://) URL")
	}
	if u.User != nil {
		return errors.New("must not carry a user or password: the issuer's keys are public, and the address is logged")
	}
	return nil
}

// Ready reports whether the issuer's keys are loaded.
func (v *JWTVerifier) Ready() bool { return v.keys.ready() }

// Verify checks a compact JWT (the part after "Bearer "): its signature by a key of the issuer's
// JWK Set under one of Algorithms, iss, aud, exp (required) and nbf, with the leeway; and that sub
// is a valid subject that a certificate does not name (CertificateOnly). It fails with ErrKeysUnavailable while the keys are not loaded, and with an
// *Error for a token that is refused.
func (v *JWTVerifier) Verify(ctx context.Context, token string) (Verified, error) {
	// The token is hashed in place: a copy would cost an allocation per call on the warm path.
	key := sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
	if e, ok := v.verified.Get(key); ok && time.Now().Before(*e.ExpiresAt) {
		return e, nil
	}
	kf := v.keys.keyfunc()
	if kf == nil {
		return Verified{}, ErrKeysUnavailable
	}
	var claims jwt.RegisteredClaims
	if _, err := v.parser.ParseWithClaims(token, &claims, kf.KeyfuncCtx(ctx)); err != nil {
		return Verified{}, v.refusal(err)
	}
	if problem := CheckSubject(claims.Subject); problem != "" {
		return Verified{}, &Error{Message: "the JWT's sub claim " + problem + " (it names the workload identity)"}
	}
	if CertificateOnly(claims.Subject) {
		return Verified{}, &Error{Message: "the JWT's sub claim is a client certificate's kind of subject (spiffe://… or cn:…), which only a certificate can prove"}
	}
	exp := claims.ExpiresAt.Time
	out := Verified{Subject: claims.Subject, ExpiresAt: &exp}
	v.verified.Put(key, out)
	return out, nil
}

// refusal says why a token was refused, in terms a caller can act on.
func (v *JWTVerifier) refusal(err error) *Error {
	msg := "the JWT is not valid"
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		msg = "the JWT is malformed"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		msg = "no key of the issuer's JWK Set can verify the JWT (unknown kid, or a key that does not fit its alg)"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		msg = fmt.Sprintf("the JWT's signature is invalid, or its alg is not one of %s", strings.Join(Algorithms, ", "))
	case errors.Is(err, jwt.ErrTokenExpired):
		msg = "the JWT has expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		msg = "the JWT is not valid yet (nbf)"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		msg = fmt.Sprintf("the JWT's aud does not name %q", v.opts.Audience)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		msg = fmt.Sprintf("the JWT's iss is not %q", v.opts.Issuer)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		msg = fmt.Sprintf("the JWT lacks a claim resolverd requires: exp, iss and aud (naming %q)", v.opts.Audience)
	}
	return &Error{Message: msg, cause: err}
}

// FromAuthorization returns the JWT of an "authorization: Bearer <JWT>" value, and whether the
// value has a JWT's shape: three non-empty dot-separated segments (header, claims, signature; an
// unsigned token, whose third is empty, is not one). The segments' characters are left to the
// parser: this runs on every call, and a JWT seen before is recognised by its hash alone.
func FromAuthorization(value string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(value), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	if len(tok) > maxTokenBytes || strings.Count(tok, ".") != 2 {
		return "", false
	}
	first, last := strings.IndexByte(tok, '.'), strings.LastIndexByte(tok, '.')
	return tok, first > 0 && last > first+1 && last < len(tok)-1
}
