// Package keyring seals secrets with AES-256-GCM under the deployment's encryption keys. The first
// key seals; every key opens, so keys can be rotated without a flag day. A key's id is derived from
// the key itself, so configuration is only the list of keys and every replica agrees on the ids.
//
// A sealed value is bound to its place (docs/CONTRACT.md §7.1): the table, the row's id, the owning
// provider and, for a user's key, the user are authenticated as AES-GCM associated data, so a value
// copied into another row, or edited, does not open there.
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

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/pkg/secret"
)

// KeySize is the size of an encryption key: AES-256.
const KeySize = 32

// The formats of a sealed value as stored (the api_key column). The format travels with the value
// itself, so a value copied elsewhere keeps it, and base64 has no ':', so the prefix cannot be
// mistaken for part of an older value.
const (
	// FormatUnbound is base64(nonce ‖ ciphertext ‖ tag) without associated data: what releases
	// before schema version 10, and the legacy layout, wrote. It still opens, anywhere, until
	// `resolverd keys rotate` re-seals it.
	FormatUnbound = 1
	// FormatBound is BoundPrefix + base64(nonce ‖ ciphertext ‖ tag), sealed with the value's Place
	// as associated data. Every value resolverd seals is in this format.
	FormatBound = 2
	// BoundPrefix marks FormatBound.
	BoundPrefix = "v2:"
)

// Format returns the format of a sealed value: FormatBound or FormatUnbound.
func Format(sealed string) int {
	if strings.HasPrefix(sealed, BoundPrefix) {
		return FormatBound
	}
	return FormatUnbound
}

// Place is where a sealed value is stored. Every field is bound to the value: a value opens only
// in the place it was sealed for.
type Place struct {
	// Table is ai_provider_keys or user_ai_provider_keys.
	Table string
	// RowID is the id of the row holding the value.
	RowID uuid.UUID
	// ProviderID is the provider the key is for (provider_id, or ai_provider_id for a user's key).
	ProviderID uuid.UUID
	// UserID is the user owning the key (user_ai_provider_keys.user_id); uuid.Nil for a central key.
	UserID uuid.UUID
}

// aadLabel starts every associated data: the format, so a later format cannot share one.
const aadLabel = "resolverd sealed secret v2\x00"

// associatedData encodes p without ambiguity: the table (which holds no NUL) ends with a NUL, and
// the ids are 16 bytes each.
func (p Place) associatedData(buf []byte) []byte {
	buf = append(buf, aadLabel...)
	buf = append(buf, p.Table...)
	buf = append(buf, 0)
	buf = append(buf, p.RowID[:]...)
	buf = append(buf, p.ProviderID[:]...)
	return append(buf, p.UserID[:]...)
}

func (p Place) valid() error {
	if p.Table == "" || strings.ContainsRune(p.Table, 0) || p.RowID == uuid.Nil || p.ProviderID == uuid.Nil {
		return errors.New("a sealed value needs its place: a table, a row id and a provider id")
	}
	return nil
}

// Errors of Open. Their messages name the encryption key id, never the value.
var (
	// ErrKeyNotConfigured: the value is sealed by an encryption key the keyring lacks.
	ErrKeyNotConfigured = errors.New("sealed by an encryption key that is not configured")
	// ErrNotAuthentic: the value is malformed, edited, or sealed for another place.
	ErrNotAuthentic = errors.New("does not authenticate in its place")
)

// Keyring holds the configured encryption keys, the sealing key first.
type Keyring struct {
	keys []key
}

type key struct {
	id   string
	aead cipher.AEAD
	prk  []byte // what Derive derives other keys from (derive.go)
}

// Parse reads comma-separated base64 keys of 32 bytes each (--encryption-keys): the first seals,
// every one opens. The error never contains key material.
func Parse(spec string) (*Keyring, error) {
	keys, err := Decode(spec)
	if err != nil {
		return nil, err
	}
	return New(keys...)
}

// New returns a keyring of keys: the first seals, every one opens. A key given again is kept once,
// where it first appears, so a ring can be assembled from several sources (the keys of a KMS,
// --encryption-keys).
func New(keys ...Material) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("a keyring needs at least one key")
	}
	kr := &Keyring{}
	seen := map[string]bool{}
	for i, m := range keys {
		if m.raw == nil || len(m.raw()) != KeySize {
			return nil, fmt.Errorf("encryption key #%d is not %d bytes", i+1, KeySize)
		}
		k, err := newKey(m.raw())
		if err != nil {
			return nil, fmt.Errorf("encryption key #%d: %w", i+1, err)
		}
		if seen[k.id] {
			continue
		}
		seen[k.id] = true
		kr.keys = append(kr.keys, k)
	}
	return kr, nil
}

// Generate returns a new random key, base64-encoded, for dev mode and tests.
func Generate() string {
	return base64.StdEncoding.EncodeToString(NewMaterial().Reveal())
}

// keyID is the id of the key raw: the first 8 bytes of a SHA-256 over it, in hex.
func keyID(raw []byte) string {
	sum := sha256.Sum256(append([]byte("resolverd encryption key id\x00"), raw...))
	return hex.EncodeToString(sum[:8])
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
	return key{id: keyID(raw), aead: aead, prk: extract(raw)}, nil
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

// Seal encrypts s under the first key with a random nonce, bound to its place (FormatBound). It
// returns the value to store and the id of the key that sealed it.
func (kr *Keyring) Seal(s secret.String, at Place) (string, string, error) {
	if err := at.valid(); err != nil {
		return "", "", err
	}
	var buf [128]byte
	return kr.seal(s, BoundPrefix, at.associatedData(buf[:0]))
}

// SealUnbound encrypts s in FormatUnbound, without associated data: what releases before schema
// version 10 read. Only `resolverd keys rotate --format 1` (before a downgrade) and tests of such
// values use it.
func (kr *Keyring) SealUnbound(s secret.String) (string, string, error) {
	return kr.seal(s, "", nil)
}

func (kr *Keyring) seal(s secret.String, prefix string, aad []byte) (string, string, error) {
	k := kr.keys[0]
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+s.Len()+k.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", "", fmt.Errorf("draw a nonce: %w", err)
	}
	sealed := k.aead.Seal(nonce, nonce, []byte(s.Reveal()), aad)
	return prefix + base64.StdEncoding.EncodeToString(sealed), k.id, nil
}

// Open decrypts a value sealed by key keyID for place at. A nil keyID means the value is plain text
// (legacy rows). A FormatBound value opens only in the place it was sealed for; a FormatUnbound one
// anywhere. The error wraps ErrKeyNotConfigured or ErrNotAuthentic and names the key id, never the
// value.
func (kr *Keyring) Open(sealed string, keyID *string, at Place) (secret.String, error) {
	if keyID == nil {
		return secret.New(sealed), nil
	}
	for _, k := range kr.keys {
		if k.id != *keyID {
			continue
		}
		var aad []byte
		var buf [128]byte
		text := sealed
		if Format(sealed) == FormatBound {
			text = sealed[len(BoundPrefix):]
			aad = at.associatedData(buf[:0])
		}
		raw, err := base64.StdEncoding.DecodeString(text)
		if err != nil || len(raw) < k.aead.NonceSize()+k.aead.Overhead() {
			return secret.String{}, fmt.Errorf("the value sealed by key %s is malformed: it %w", k.id, ErrNotAuthentic)
		}
		plain, err := k.aead.Open(raw[k.aead.NonceSize():k.aead.NonceSize()], raw[:k.aead.NonceSize()], raw[k.aead.NonceSize():], aad)
		if err != nil {
			return secret.String{}, fmt.Errorf("the value sealed by key %s %w", k.id, ErrNotAuthentic)
		}
		return secret.New(string(plain)), nil
	}
	return secret.String{}, fmt.Errorf("the value is %w: key %s", ErrKeyNotConfigured, *keyID)
}
