// Package kms keeps resolverd's data-encryption keys wrapped by a root key held in a KMS
// (envelope encryption, docs/CONTRACT.md §7.1): `--kms-key-uri` instead of `--encryption-keys`.
//
// A data key is 32 random bytes, the same kind of key as one of --encryption-keys; it is stored in
// the table data_encryption_keys only wrapped (encrypted) by the KMS key, and unwrapped once, when a
// command starts, into an ordinary keyring. Nothing calls the KMS afterwards: a KMS outage at run
// time changes nothing for a running server, and one at start stops it with the reason.
//
// The KMS is reached through gocloud.dev/secrets, with only the drivers below linked in.
package kms

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"gocloud.dev/secrets"
	// The KMS drivers resolverd supports: importing one registers its URL scheme.
	_ "gocloud.dev/secrets/awskms"
	_ "gocloud.dev/secrets/azurekeyvault"
	_ "gocloud.dev/secrets/gcpkms"
	_ "gocloud.dev/secrets/hashivault"
	_ "gocloud.dev/secrets/localsecrets"

	"github.com/resolverd/resolverd/internal/keyring"
)

// Schemes are the URL schemes of the KMS keys resolverd supports, in the order the docs list them.
// base64key is a key held in the URL itself (gocloud.dev/secrets/localsecrets): for tests and
// development only, since whoever reads the configuration holds the root key.
var Schemes = []string{"awskms", "gcpkms", "azurekeyvault", "hashivault", "base64key"}

// Timeout bounds the KMS calls of one start (opening the key and unwrapping every data key): a KMS
// that does not answer fails the start with the reason instead of hanging it.
var Timeout = 30 * time.Second

// Key is a KMS key, opened. Close it when done.
type Key struct {
	name   string
	keeper *secrets.Keeper
}

// Name names the key without a secret: its URI, except for base64key://, whose URI is the key
// itself, named by a fingerprint ("base64key://sha256:<16 hex>"). data_encryption_keys.kms_key
// records it.
func (k *Key) Name() string { return k.name }

// Close releases the driver's resources.
func (k *Key) Close() error { return k.keeper.Close() }

// Open opens the KMS key uri. It checks the URI (an unknown scheme is an error naming the supported
// ones) and builds the driver's client; drivers reach the KMS only when a key is wrapped or
// unwrapped. Errors never quote a base64key:// URI, and do not name the flag: the caller does.
func Open(ctx context.Context, uri string) (*Key, error) {
	uri = strings.TrimSpace(uri)
	scheme, _, ok := strings.Cut(uri, "://")
	if !ok || scheme == "" {
		return nil, fmt.Errorf("not a URL of the form SCHEME://KEY; the schemes are %s", strings.Join(Schemes, ", "))
	}
	scheme = strings.ToLower(scheme)
	if !slices.Contains(Schemes, scheme) {
		return nil, fmt.Errorf("unknown scheme %q; the schemes are %s", scheme, strings.Join(Schemes, ", "))
	}
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("not a valid %s:// URL", scheme) // the URL may be a key: not quoted
	}
	if u.User != nil {
		return nil, fmt.Errorf("a KMS key URI must not carry credentials (user@): give them to the %s driver the usual way (docs/OPERATIONS.md)", scheme)
	}
	name := u.String()
	if scheme == "base64key" {
		if u.Host == "" {
			// localsecrets would draw a random key, lost when the process ends, with it every secret.
			return nil, errors.New("base64key:// needs the key: base64key://<32 random bytes in URL-safe base64>")
		}
		sum := sha256.Sum256([]byte("resolverd base64key name\x00" + u.Host))
		name = "base64key://sha256:" + hex.EncodeToString(sum[:8])
	}
	keeper, err := secrets.DefaultURLMux().OpenKeeperURL(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("open the KMS key %s: %w", name, err)
	}
	return &Key{name: name, keeper: keeper}, nil
}

// wrap encrypts a data key with the KMS key, and unwraps the result again before it is stored: a
// KMS key that encrypts but does not decrypt (a role granted kms:Encrypt alone) must not be left
// holding the only copy of a data key, so what it cannot open is never stored.
func (k *Key) wrap(ctx context.Context, m keyring.Material) ([]byte, error) {
	b, err := k.keeper.Encrypt(ctx, m.Reveal())
	if err != nil {
		return nil, fmt.Errorf("the KMS key %s cannot wrap a data-encryption key: %w", k.name, err)
	}
	if _, err := k.unwrap(ctx, m.ID(), b); err != nil {
		return nil, fmt.Errorf("nothing was stored, since the KMS key must unwrap what it wraps (grant decrypt as well as encrypt): %w", err)
	}
	return b, nil
}

// unwrap decrypts the data key id and checks that it is the key of that id.
func (k *Key) unwrap(ctx context.Context, id string, wrapped []byte) (keyring.Material, error) {
	raw, err := k.keeper.Decrypt(ctx, wrapped)
	if err != nil {
		return keyring.Material{}, fmt.Errorf("the KMS key %s cannot unwrap data-encryption key %s (unreachable, another key, or no permission to decrypt): %w", k.name, id, err)
	}
	m, err := keyring.MaterialFrom(raw)
	clear(raw)
	if err != nil {
		return keyring.Material{}, fmt.Errorf("data-encryption key %s, unwrapped by the KMS key %s, is not a key: %w", id, k.name, err)
	}
	if m.ID() != id {
		return keyring.Material{}, fmt.Errorf("data-encryption key %s, unwrapped by the KMS key %s, is the key %s: its row was altered", id, k.name, m.ID())
	}
	return m, nil
}
