package dbauthz

import (
	"context"
	"time"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/rbac"
)

// The system actors: resolverd's own components that read or write with no caller's token behind
// them. Each holds only the scopes its work needs; system scopes cannot be put on a token, and `*`
// does not include them (see rbac.System).
//
// Each is built once and shared by every context that acts as it (the authenticator acts as
// SystemAuthenticator on every call): nothing may change one.
var (
	// SystemAuthenticator looks bearer tokens up by hash, before the caller is known.
	SystemAuthenticator = system("authenticator", rbac.TokenAuthenticate)
	// SystemIdentityAuthenticator looks workload identities' bindings up by subject, once the
	// caller's JWT or client certificate is verified and before its scopes are known.
	SystemIdentityAuthenticator = system("identity-authenticator", rbac.IdentityAuthenticate)
	// SystemAuditWriter writes records in batches (internal/audit): resolutions, failed admin calls.
	SystemAuditWriter = system("audit-writer", rbac.AuditAppend)
	// SystemAuditRetention removes audit events older than --audit-retention.
	SystemAuditRetention = system("audit-retention", rbac.AuditExpire)
	// SystemStartup reads the fingerprint key once when a server is built.
	SystemStartup = system("startup", rbac.FingerprintKeyRead)
	// SystemKeyHealth counts each provider's central keys that are cooling down or suspended, for
	// the resolverd_keys_unavailable gauge.
	SystemKeyHealth = system("key-health", rbac.KeyHealthRead)
	// SystemDevSeed seeds `resolverd dev`'s demo and writes its tokens: an operator's work on a
	// private database, so every ordinary scope, and token lookups to keep the token files.
	SystemDevSeed = system("dev-seed", rbac.All, rbac.TokenAuthenticate)
)

func system(name string, scopes ...rbac.Scope) *rbac.Principal {
	p := rbac.System(name, scopes...)
	return &p
}

// AsSystemRestricted returns ctx acting as actor, one of the System* principals above (in the
// spirit of Coder's dbauthz.AsSystemRestricted). It is the only way code reaches the store without
// a caller's token: `grep -rn AsSystemRestricted` lists every such read and write. The store still
// checks the actor's scopes, so each component can do only its own work. The context carries the
// actor itself, not a copy, so acting as the system costs a call one context and nothing else.
func AsSystemRestricted(ctx context.Context, actor *rbac.Principal) context.Context {
	if actor == nil || actor.System == "" {
		name := "nil"
		if actor != nil {
			name = actor.Name
		}
		panic("dbauthz.AsSystemRestricted: " + name + " is not a system actor")
	}
	return rbac.WithShared(ctx, actor)
}

// ActiveToken looks a token up by hash (api_tokens), for the authenticator.
func (s *Store) ActiveToken(ctx context.Context, hash []byte) (db.Token, bool, error) {
	if err := rbac.Require(ctx, rbac.TokenAuthenticate); err != nil {
		return db.Token{}, false, err
	}
	return s.q.ActiveToken(ctx, hash)
}

// InsertAuditEvents writes a batch of records (audit_events), for the audit writer.
func (s *Store) InsertAuditEvents(ctx context.Context, events []db.AuditEvent) error {
	if err := rbac.Require(ctx, rbac.AuditAppend); err != nil {
		return err
	}
	return s.q.InsertAuditEvents(ctx, events)
}

// DeleteAuditEventsBefore removes up to limit audit events older than cutoff, for retention.
func (s *Store) DeleteAuditEventsBefore(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	if err := rbac.Require(ctx, rbac.AuditExpire); err != nil {
		return 0, err
	}
	return s.q.DeleteAuditEventsBefore(ctx, cutoff, limit)
}

// EnsureAuditPartitions creates the audit trail's partitions ahead, for the audit writer: room
// for what it appends.
func (s *Store) EnsureAuditPartitions(ctx context.Context, now time.Time, ahead int) ([]string, error) {
	if err := rbac.Require(ctx, rbac.AuditAppend); err != nil {
		return nil, err
	}
	return s.q.EnsureAuditPartitions(ctx, now, ahead)
}

// DropAuditPartitionsBefore drops the audit trail's expired days, for retention.
func (s *Store) DropAuditPartitionsBefore(ctx context.Context, cutoff time.Time) (db.AuditExpiry, error) {
	if err := rbac.Require(ctx, rbac.AuditExpire); err != nil {
		return db.AuditExpiry{}, err
	}
	return s.q.DropAuditPartitionsBefore(ctx, cutoff)
}

// FingerprintKey reads the key of credential fingerprints, once at start.
func (s *Store) FingerprintKey(ctx context.Context) ([]byte, error) {
	if err := rbac.Require(ctx, rbac.FingerprintKeyRead); err != nil {
		return nil, err
	}
	return s.q.FingerprintKey(ctx)
}

// UnavailableCentralKeys counts the cooling or suspended central keys of each provider, for metrics.
func (s *Store) UnavailableCentralKeys(ctx context.Context) (map[string]int, error) {
	if err := rbac.Require(ctx, rbac.KeyHealthRead); err != nil {
		return nil, err
	}
	return s.q.UnavailableCentralKeys(ctx)
}
