package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/resolverd/resolverd/internal/keyring"
	"github.com/resolverd/resolverd/internal/kms"
)

// keyFlags say where a command's encryption keys come from (docs/CONTRACT.md §7.1, §8.1). The
// target, one of --encryption-keys and --kms-key-uri, seals (its first key, or the KMS key's
// sealing data key) and opens; the sources, --from-encryption-keys and --from-kms-key-uri, only
// open: what `keys rotate` moves secrets away from, and what serve still reads while it runs.
type keyFlags struct {
	enc, kmsURI, fromEnc, fromKMS *string
}

// keyUse is what a command does with its keys.
type keyUse int

const (
	// sealing: exactly one target (serve, token create, keys rotate).
	sealing keyUse = iota
	// verifying: every flag only opens, at least one is needed (audit verify).
	verifying
)

func addKeyFlags(f *flags, use keyUse, encUsage string) *keyFlags {
	kmsUsage := "the KMS key that wraps the data-encryption keys, instead of --encryption-keys: awskms://, gcpkms://, azurekeyvault://, hashivault:// or base64key:// (docs/OPERATIONS.md)"
	fromEncUsage := "older keys that only open, never seal: what is being moved away from (keys rotate), or still read while moving (serve)"
	fromKMSUsage := "an older KMS key whose data-encryption keys only open, never seal (with --kms-key-uri, keys rotate re-wraps them under the new KMS key)"
	if use == verifying {
		kmsUsage = "a KMS key whose data-encryption keys keyed events (docs/OPERATIONS.md); may be given with --encryption-keys"
		fromEncUsage = "more keys that keyed events still in the trail"
		fromKMSUsage = "another KMS key whose data-encryption keys keyed events still in the trail"
	}
	return &keyFlags{
		enc:     f.string("encryption-keys", "", encUsage),
		kmsURI:  f.string("kms-key-uri", "", kmsUsage),
		fromEnc: f.string("from-encryption-keys", "", fromEncUsage),
		fromKMS: f.string("from-kms-key-uri", "", fromKMSUsage),
	}
}

// errNoKeys is the error of a command given no keys at all.
var errNoKeys = errors.New("no encryption keys given: set --encryption-keys (RESOLVER_ENCRYPTION_KEYS) to comma-separated base64 of 32 random bytes each (e.g. from `openssl rand -base64 32`), or --kms-key-uri (RESOLVER_KMS_KEY_URI) to a KMS key")

// errBothTargets: two sealing sources would be ambiguous.
var errBothTargets = errors.New("give --encryption-keys or --kms-key-uri, not both (check RESOLVER_ENCRYPTION_KEYS and RESOLVER_KMS_KEY_URI): the first seals; to move secrets from one to the other, give the old one as --from-encryption-keys or --from-kms-key-uri (`resolverd keys rotate`, docs/OPERATIONS.md)")

// keySources are the keyFlags, checked and opened: the --encryption-keys keys decoded, the KMS
// keys opened (no KMS call yet). Close them when done.
type keySources struct {
	target, from       []keyring.Material
	targetKMS, fromKMS *kms.Key
	use                keyUse
}

func (kf *keyFlags) given(p *string) bool { return strings.TrimSpace(*p) != "" }

// open checks the flags and opens what they name, before the command reaches the database: a
// malformed key or an unknown KMS scheme fails at once.
func (kf *keyFlags) open(ctx context.Context, use keyUse) (_ *keySources, err error) {
	s := &keySources{use: use}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	enc, kmsURI := kf.given(kf.enc), kf.given(kf.kmsURI)
	switch {
	case use == sealing && enc && kmsURI:
		return nil, errBothTargets
	case use == sealing && !enc && !kmsURI:
		return nil, errNoKeys
	case !enc && !kmsURI && !kf.given(kf.fromEnc) && !kf.given(kf.fromKMS):
		return nil, errNoKeys
	}
	if enc {
		if s.target, err = keyring.Decode(*kf.enc); err != nil {
			return nil, err
		}
	}
	if kf.given(kf.fromEnc) {
		if s.from, err = keyring.Decode(*kf.fromEnc); err != nil {
			return nil, fmt.Errorf("--from-encryption-keys: %s", strings.TrimPrefix(err.Error(), "no encryption keys given: "))
		}
	}
	if kmsURI {
		if s.targetKMS, err = kms.Open(ctx, *kf.kmsURI); err != nil {
			return nil, fmt.Errorf("--kms-key-uri: %w", err)
		}
	}
	if kf.given(kf.fromKMS) {
		if s.fromKMS, err = kms.Open(ctx, *kf.fromKMS); err != nil {
			return nil, fmt.Errorf("--from-kms-key-uri: %w", err)
		}
	}
	return s, nil
}

// Close closes the KMS keys.
func (s *keySources) Close() {
	for _, k := range []*kms.Key{s.targetKMS, s.fromKMS} {
		if k != nil {
			_ = k.Close()
		}
	}
}

// usesKMS reports whether a KMS key is given: the keys are then read from the database.
func (s *keySources) usesKMS() bool { return s.targetKMS != nil || s.fromKMS != nil }

// ringInfo says where a ring's keys came from, for logs and output.
type ringInfo struct {
	// created is the id of the data-encryption key the KMS target got on this start, if any.
	created string
	// kmsKey names the target KMS key ("" for --encryption-keys).
	kmsKey string
	// fromIDs are the ids of the keys that only open.
	fromIDs []string
}

// ring unwraps what must be (one round of KMS calls, now and never again) and returns the keyring:
// the target's keys first (the sealing one first of all), then the sources'. pool may be nil when
// no KMS key is given.
func (s *keySources) ring(ctx context.Context, pool *pgxpool.Pool) (*keyring.Keyring, ringInfo, error) {
	var info ringInfo
	keys := append([]keyring.Material(nil), s.target...)
	if s.targetKMS != nil {
		mode := kms.Seal
		if s.use == verifying {
			mode = kms.OpenOnly
		}
		l, err := kms.Load(ctx, pool, s.targetKMS, mode)
		if err != nil {
			return nil, info, err
		}
		keys = append(keys, l.Keys...)
		info.created, info.kmsKey = l.Created, s.targetKMS.Name()
	}
	targets := len(keys)
	keys = append(keys, s.from...)
	if s.fromKMS != nil {
		l, err := kms.Load(ctx, pool, s.fromKMS, kms.OpenOnly)
		if err != nil {
			return nil, info, err
		}
		keys = append(keys, l.Keys...)
	}
	for _, m := range keys[targets:] {
		info.fromIDs = append(info.fromIDs, m.ID())
	}
	if len(keys) == 0 {
		return nil, info, errors.New("no key to open anything with: the KMS key given wraps no data-encryption key (data_encryption_keys)")
	}
	kr, err := keyring.New(keys...)
	if err != nil {
		return nil, info, err
	}
	return kr, info, nil
}

// keysAdvice ends serve's refusal when stored secrets are sealed by a key it was not given
// (server.CheckKeysGiven): which source lacks it, and what to do.
func keysAdvice(s *keySources) string {
	if s.targetKMS == nil {
		return "--encryption-keys does not include (it has %s); add the old key after the new one, or give it as --from-encryption-keys (--from-kms-key-uri if a KMS key wrapped it)"
	}
	return "the data-encryption keys of --kms-key-uri " + strings.ReplaceAll(s.targetKMS.Name(), "%", "%%") +
		" do not include (it has %s); give the old keys as --from-encryption-keys or --from-kms-key-uri until `resolverd keys rotate` has moved every secret (docs/OPERATIONS.md)"
}
