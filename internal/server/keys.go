package server

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/keyring"
)

// CheckKeys fails when a stored secret is sealed by an encryption key the keyring lacks: serving
// would fail on that row at the worst moment, so refuse to start instead. A row that fails to open
// later (written by another replica or psql at run time) fails only the resolutions that answer
// with it, with SECRET_UNREADABLE (docs/CONTRACT.md §7.1).
func CheckKeys(ctx context.Context, pool *pgxpool.Pool, kr *keyring.Keyring) error {
	return CheckKeysGiven(ctx, pool, kr, "--encryption-keys does not include (it has %s); add the old key after the new one")
}

// CheckKeysGiven is CheckKeys with the end of its message: given says which source lacks the keys
// and what to do, with one %s for the ids the keyring has. The keyring may come from
// --encryption-keys or from the data-encryption keys of a KMS key (--kms-key-uri): the check is the
// same.
func CheckKeysGiven(ctx context.Context, pool *pgxpool.Pool, kr *keyring.Keyring, given string) error {
	ids, err := db.SealingKeyIDs(ctx, pool)
	if err != nil {
		return err
	}
	var missing []string
	for _, id := range ids {
		if !kr.Has(id) {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("stored secrets are sealed by encryption key id(s) %s, which "+given,
			strings.Join(missing, ", "), strings.Join(kr.IDs(), ", "))
	}
	return nil
}
