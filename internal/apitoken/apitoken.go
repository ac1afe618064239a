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
	tok, err := fromAuthorization(value)
	if err != nil {
		return secret.String{}, err
	}
	return secret.New(tok), nil
}

// HashAuthorization is Hash(FromAuthorization(value)) without holding the token anywhere: what the
// authenticator needs on every call, and all it needs (the token is looked up by hash).
func HashAuthorization(value string) ([sha256.Size]byte, error) {
	tok, err := fromAuthorization(value)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	// A valid token fits here, so hashing it copies it to the stack rather than to the heap.
	var buf [len(Prefix) + bodyLen]byte
	return sha256.Sum256(buf[:copy(buf[:], tok)]), nil
}

func fromAuthorization(value string) (string, error) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(value), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", ErrMalformed
	}
	tok = strings.TrimSpace(tok)
	if !Valid(tok) {
		return "", ErrMalformed
	}
	return tok, nil
}

// Valid reports whether t has the shape of a token.
func Valid(t string) bool {
	body, ok := strings.CutPrefix(t, Prefix)
	if !ok || len(body) != bodyLen {
		return false
	}
	// What base64.RawURLEncoding.Strict() accepts for 43 characters, checked in place (decoding
	// would allocate on every call): the alphabet only (the decoder would skip \r and \n, which
	// are refused here), and, strictly, the unused low bits of the last character zero, as New
	// makes them (43 × 6 = 258 bits for 256).
	var last byte
	for i := 0; i < len(body); i++ {
		v := base64URLValue[body[i]]
		if v == invalidBase64 {
			return false
		}
		last = v
	}
	return last&0b11 == 0
}

const invalidBase64 = 0xff

// base64URLValue maps a byte to its value in the base64url alphabet, or invalidBase64.
var base64URLValue = func() (t [256]byte) {
	for i := range t {
		t[i] = invalidBase64
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = byte(i)
	}
	return t
}()
