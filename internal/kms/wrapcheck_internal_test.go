package kms

import (
	"context"
	"errors"
	"strings"
	"testing"

	"gocloud.dev/gcerrors"
	"gocloud.dev/secrets"
	"gocloud.dev/secrets/localsecrets"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/pgtest"
)

// encryptOnly is a KMS key resolverd may encrypt with but not decrypt with: a role or Vault policy
// granted kms:Encrypt (transit/encrypt) on the key and not kms:Decrypt (transit/decrypt).
type encryptOnly struct{}

var errDenied = errors.New("AccessDeniedException: not authorized to perform kms:Decrypt")

func (encryptOnly) Encrypt(_ context.Context, p []byte) ([]byte, error) {
	return append([]byte("wrapped:"), p...), nil // what it returns is of no matter: it never opens
}
func (encryptOnly) Decrypt(context.Context, []byte) ([]byte, error) { return nil, errDenied }
func (encryptOnly) Close() error                                    { return nil }
func (encryptOnly) ErrorAs(error, any) bool                         { return false }
func (encryptOnly) ErrorCode(error) gcerrors.ErrorCode              { return gcerrors.PermissionDenied }

func encryptOnlyKey() *Key {
	return &Key{name: "hashivault://encrypt-only", keeper: secrets.NewKeeper(encryptOnly{})}
}

// TestAKeyThatDoesNotUnwrapWrapsNothing: a KMS key that wraps but cannot unwrap must not be left
// holding the installation's data keys. Making the first data key stores nothing, and re-wrapping
// the data keys under it changes nothing: the old KMS key still opens them. Each fails in one line
// naming the key and why.
func TestAKeyThatDoesNotUnwrapWrapsNothing(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	bad := encryptOnlyKey()

	_, err := Load(ctx, pool, bad, Seal)
	if err == nil || !strings.Contains(err.Error(), "hashivault://encrypt-only") || !strings.Contains(err.Error(), "kms:Decrypt") ||
		strings.Contains(err.Error(), "\n") {
		t.Fatalf("making the first data key with an encrypt-only KMS key: %v", err)
	}
	if keys, err := db.DataKeys(ctx, pool); err != nil || len(keys) != 0 {
		t.Fatalf("%d data keys stored by a KMS key that cannot unwrap them (%v)", len(keys), err)
	}

	mk, err := localsecrets.NewRandomKey()
	if err != nil {
		t.Fatal(err)
	}
	good := &Key{name: "base64key://sha256:0000000000000000", keeper: localsecrets.NewKeeper(mk)}
	before, err := Load(ctx, pool, good, Seal)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Rewrap(ctx, pool, good, bad); err == nil || !strings.Contains(err.Error(), "kms:Decrypt") {
		t.Fatalf("re-wrapping under an encrypt-only KMS key: %v", err)
	}
	after, err := Load(ctx, pool, good, Seal)
	if err != nil || len(after.Keys) != 1 || after.Keys[0].ID() != before.Keys[0].ID() {
		t.Fatalf("after the refused re-wrap, the old KMS key no longer opens the data key: %v", err)
	}
}
