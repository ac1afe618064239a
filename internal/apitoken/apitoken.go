// Package apitoken mints and parses callers' bearer tokens. A token is "rsv_" followed by 43
// base64url characters (32 random bytes); only its SHA-256 is stored, so a database dump yields no
// usable token. Tokens carry 256 random bits, so an unsalted hash is enough: there is nothing to
// guess.
package apitoken

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"

	"github.com/resolverd/resolverd/pkg/secret"
)

// Prefix starts every token, so that secret scanners and people can recognise one.
const Prefix = "rsv_"

const bodyLen = 43 // base64url (no padding) of 32 bytes

// New returns a fresh token and its hash.
func New() (secret.String, []byte) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	tok := Prefix + base64.RawURLEncoding.EncodeToString(raw)
	return secret.New(tok), Hash(tok)
}

// Hash is what the database stores for token t.
func Hash(t string) []byte {
	sum := sha256.Sum256([]byte(t))
	return sum[:]
}

// ErrMalformed is returned for an authorization value that cannot be a resolverd token.
var ErrMalformed = errors.New(`the authorization metadata must be "Bearer rsv_…" with a token from "resolverd token create" or AdminService/CreateToken`)

// FromAuthorization extracts the token from an "authorization: Bearer <token>" value, checking its
// shape so that garbage never reaches the database.
func FromAuthorization(value string) (secret.String, error) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(value), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return secret.String{}, ErrMalformed
	}
	tok = strings.TrimSpace(tok)
	if !Valid(tok) {
		return secret.String{}, ErrMalformed
	}
	return secret.New(tok), nil
}

// Valid reports whether t has the shape of a token.
func Valid(t string) bool {
	body, ok := strings.CutPrefix(t, Prefix)
	if !ok || len(body) != bodyLen || strings.ContainsAny(body, "\r\n") {
		return false
	}
	// Strict: the unused low bits of the last character must be zero, as New makes them.
	_, err := base64.RawURLEncoding.Strict().DecodeString(body)
	return err == nil
}
