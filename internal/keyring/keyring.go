// Package keyring seals secrets with AES-256-GCM under the deployment's encryption keys. The first
// key seals; every key opens, so keys can be rotated without a flag day. A key's id is derived from
// the key itself, so configuration is only the list of keys and every replica agrees on the ids.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/resolverd/resolverd/pkg/secret"
)

// KeySize is the size of an encryption key: AES-256.
const KeySize = 32

// Keyring holds the configured encryption keys, the sealing key first.
type Keyring struct {
	keys []key
}

type key struct {
	id   string
	aead cipher.AEAD
	prk  []byte // what Derive derives other keys from (derive.go)
}

// Parse reads comma-separated base64 keys of 32 bytes each (--encryption-keys). The error never
// contains key material.
func Parse(spec string) (*Keyring, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, errors.New("no encryption keys given: set --encryption-keys or RESOLVER_ENCRYPTION_KEYS to comma-separated base64 of 32 random bytes each (e.g. from `openssl rand -base64 32`)")
	}
	kr := &Keyring{}
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
		k, err := newKey(raw)
		if err != nil {
			return nil, fmt.Errorf("encryption key #%d: %w", i+1, err)
		}
		if seen[k.id] {
			return nil, fmt.Errorf("encryption key #%d is given twice", i+1)
		}
		seen[k.id] = true
		kr.keys = append(kr.keys, k)
	}
	return kr, nil
}

// Generate returns a new random key, base64-encoded, for dev mode and tests.
func Generate() string {
	raw := make([]byte, KeySize)
	if _, err := rand.Read(raw); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.StdEncoding.EncodeToString(raw)
}

func newKey(raw []byte) (key, error) {
	block, err := aes.NewCipher(raw)
	if err != nil {
		return key{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return key{}, err
	}
	sum := sha256.Sum256(append([]byte("resolverd encryption key id\x00"), raw...))
	return key{id: hex.EncodeToString(sum[:8]), aead: aead, prk: extract(raw)}, nil
}

// IDs returns the key ids, the sealing key first.
func (kr *Keyring) IDs() []string {
	ids := make([]string, len(kr.keys))
	for i, k := range kr.keys {
		ids[i] = k.id
	}
	return ids
}

// Has reports whether the keyring can open values sealed by key id.
func (kr *Keyring) Has(id string) bool {
	for _, k := range kr.keys {
		if k.id == id {
			return true
		}
	}
	return false
}

// Seal encrypts s under the first key with a random nonce: base64(nonce || ciphertext+tag).
func (kr *Keyring) Seal(s secret.String) (string, string, error) {
	k := kr.keys[0]
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+s.Len()+k.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", "", fmt.Errorf("draw a nonce: %w", err)
	}
	sealed := k.aead.Seal(nonce, nonce, []byte(s.Reveal()), nil)
	return base64.StdEncoding.EncodeToString(sealed), k.id, nil
}

// Open decrypts a value sealed by key keyID. A nil keyID means the value is plain text (legacy rows).
func (kr *Keyring) Open(ciphertext string, keyID *string) (secret.String, error) {
	if keyID == nil {
		return secret.New(ciphertext), nil
	}
	for _, k := range kr.keys {
		if k.id != *keyID {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(ciphertext)
		if err != nil || len(raw) < k.aead.NonceSize() {
			return secret.String{}, fmt.Errorf("value sealed by key %s is malformed", k.id)
		}
		plain, err := k.aead.Open(nil, raw[:k.aead.NonceSize()], raw[k.aead.NonceSize():], nil)
		if err != nil {
			return secret.String{}, fmt.Errorf("value sealed by key %s does not authenticate", k.id)
		}
		return secret.New(string(plain)), nil
	}
	return secret.String{}, fmt.Errorf("value is sealed by encryption key %s, which is not configured", *keyID)
}
