// Package secret holds the one type that carries an API key through resolverd. It cannot be printed,
// logged or marshalled by accident: every formatting and encoding path yields a redaction. The
// plaintext leaves it only through Reveal, which is called where a key is sealed for storage or put
// into the one response field that carries it.
package secret

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
)

// Redacted is what every printing path shows instead of the value.
const Redacted = "[REDACTED]"

// String is a secret string. The zero value is the empty secret.
type String struct {
	// The plaintext lives only in a closure: printers that walk struct fields by reflection and
	// skip String methods (go-spew with DisableMethods, as testify's diffs use) follow pointers,
	// but a func value shows as an address, and reflection cannot read what it captured.
	v func() string
}

// New wraps a plaintext value.
func New(plaintext string) String { return String{v: func() string { return plaintext }} }

// Reveal returns the plaintext. Call it only to seal the value or to fill the response field that
// carries it.
func (s String) Reveal() string {
	if s.v == nil {
		return ""
	}
	return s.v()
}

// IsZero reports whether the secret is empty.
func (s String) IsZero() bool { return s.Reveal() == "" }

// Len is the plaintext's length in bytes, for validation messages that must not show the value.
func (s String) Len() int { return len(s.Reveal()) }

func (s String) String() string   { return Redacted }
func (s String) GoString() string { return Redacted }

// Format makes every verb (%v, %+v, %#v, %s, %q, %x, ...) print the redaction.
func (s String) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(Redacted)) }

// LogValue keeps slog from ever seeing the value.
func (s String) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON and MarshalText redact; a secret is never serialised by reflection.
func (s String) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }
func (s String) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// Fingerprint is the keyed HMAC-SHA256 of the secret, as 16 hex characters: stable for a given key,
// different for different secrets, and useless for recovering the secret without the key.
func Fingerprint(key []byte, s String) string {
	if s.IsZero() {
		return ""
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s.Reveal()))
	return hex.EncodeToString(m.Sum(nil)[:8])
}
