package keyring

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// Material is one encryption key's 32 bytes: a key of --encryption-keys, or a data-encryption key
// that a KMS key wraps (docs/CONTRACT.md §7.1). It cannot be printed: every formatting, logging and
// marshalling path shows [REDACTED]. The bytes leave it only through Reveal, to be wrapped by a KMS
// key or to build a Keyring.
type Material struct {
	// A closure, as in pkg/secret: reflection-based printers cannot read what it captured.
	raw func() []byte
}

const redacted = "[REDACTED]"

// NewMaterial draws a new random key.
func NewMaterial() Material {
	raw := make([]byte, KeySize)
	if _, err := rand.Read(raw); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return materialOf(raw)
}

// MaterialFrom takes a copy of raw, which must be KeySize bytes. The error never shows the bytes.
func MaterialFrom(raw []byte) (Material, error) {
	if len(raw) != KeySize {
		return Material{}, fmt.Errorf("a key is %d bytes; it must be %d", len(raw), KeySize)
	}
	return materialOf(append([]byte(nil), raw...)), nil
}

func materialOf(raw []byte) Material { return Material{raw: func() []byte { return raw }} }

// Reveal returns a copy of the key's bytes, to wrap it with a KMS key.
func (m Material) Reveal() []byte {
	if m.raw == nil {
		return nil
	}
	return append([]byte(nil), m.raw()...)
}

// ID is the key's id, as a Keyring holding it names it (the first 8 bytes of a SHA-256 over it,
// in hex): api_key_key_id of the values it seals.
func (m Material) ID() string {
	if m.raw == nil {
		return ""
	}
	return keyID(m.raw())
}

func (m Material) String() string               { return redacted }
func (m Material) GoString() string             { return redacted }
func (m Material) Format(f fmt.State, _ rune)   { _, _ = f.Write([]byte(redacted)) }
func (m Material) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (m Material) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
func (m Material) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Decode reads comma-separated base64 keys of 32 bytes each (--encryption-keys), in order. The
// error never contains key material.
func Decode(spec string) ([]Material, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, errors.New("no encryption keys given: set --encryption-keys or RESOLVER_ENCRYPTION_KEYS to comma-separated base64 of 32 random bytes each (e.g. from `openssl rand -base64 32`)")
	}
	var out []Material
	seen := map[string]bool{}
	for i, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		raw, err := base64.StdEncoding.DecodeString(part)
		if err != nil {
			raw, err = base64.RawStdEncoding.DecodeString(part)
		}
		if err != nil {
			return nil, fmt.Errorf("encryption key #%d is not valid base64", i+1)
		}
		if len(raw) != KeySize {
			return nil, fmt.Errorf("encryption key #%d is %d bytes; each key must be %d random bytes, base64-encoded", i+1, len(raw), KeySize)
		}
		m := materialOf(raw)
		if seen[m.ID()] {
			return nil, fmt.Errorf("encryption key #%d is given twice", i+1)
		}
		seen[m.ID()] = true
		out = append(out, m)
	}
	return out, nil
}
