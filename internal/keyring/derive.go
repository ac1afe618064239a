package keyring

import (
	"crypto/hkdf"
	"crypto/sha256"
)

// DerivedKeySize is the size of a key Derive returns.
const DerivedKeySize = 32

// extractSalt separates the keys derived here from any other use of the encryption keys.
var extractSalt = []byte("resolverd keyring derive v1")

// extract is HKDF-Extract over an encryption key: what every derived key is expanded from.
func extract(raw []byte) []byte {
	prk, err := hkdf.Extract(sha256.New, raw, extractSalt)
	if err != nil {
		panic("keyring: HKDF-Extract: " + err.Error()) // never for SHA-256
	}
	return prk
}

func expand(prk []byte, label string) []byte {
	k, err := hkdf.Expand(sha256.New, prk, label, DerivedKeySize)
	if err != nil {
		panic("keyring: HKDF-Expand: " + err.Error()) // never for 32 bytes of SHA-256
	}
	return k
}

// Derive returns a key for label (HKDF-SHA256 of the sealing key, label as the info) and the id of
// the encryption key it comes from. Different labels give independent keys; none of them reveals
// the encryption key or opens a sealed value. The audit trail's chains are keyed this way
// (internal/auditchain), so that a database writer without the keys cannot forge them.
func (kr *Keyring) Derive(label string) (id string, key []byte) {
	k := kr.keys[0]
	return k.id, expand(k.prk, label)
}

// DeriveFor returns label's key derived from encryption key id, as Derive did when that key
// sealed; ok is false when the keyring does not hold it.
func (kr *Keyring) DeriveFor(id, label string) (key []byte, ok bool) {
	for _, k := range kr.keys {
		if k.id == id {
			return expand(k.prk, label), true
		}
	}
	return nil, false
}
