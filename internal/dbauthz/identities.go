package dbauthz

import (
	"context"
	"fmt"
	"time"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/rbac"
)

// identityQuerier is the part of Querier that holds workload identities (docs/CONTRACT.md §3.1).
type identityQuerier interface {
	PutWorkloadIdentity(ctx context.Context, subject string, scopes []string, description string, allowed func(previous []string) error) (db.WorkloadIdentity, bool, error)
	DeleteWorkloadIdentity(ctx context.Context, subject string, allowed func(scopes []string) error) error
	ListWorkloadIdentities(ctx context.Context, p db.Page[db.WorkloadIdentityPos]) ([]db.WorkloadIdentity, error)
	WorkloadIdentity(ctx context.Context, subject string) (db.WorkloadIdentity, bool, error)
}

// PutWorkloadIdentity binds subject to scopes under the rules of tokens (docs/CONTRACT.md §3.4):
// token:write, every scope it grants, and, when the subject is bound already, every scope its
// binding carries, so a narrow administrator can neither widen a workload beyond its own scopes
// nor take scopes from a wider one. A binding never expires, so a caller whose credential does (a
// token with a TTL, a JWT, a client certificate) cannot make or change one: through a second
// identity it controls, it would keep its scopes past its own expiry.
func (s *Store) PutWorkloadIdentity(ctx context.Context, subject string, scopes []rbac.Scope, description string) (db.WorkloadIdentity, bool, error) {
	if err := rbac.Require(ctx, rbac.TokenWrite); err != nil {
		return db.WorkloadIdentity{}, false, err
	}
	if err := rbac.CanGrant(ctx, scopes); err != nil {
		return db.WorkloadIdentity{}, false, err
	}
	if p, ok := rbac.FromContext(ctx); ok && p.ExpiresAt != nil {
		return db.WorkloadIdentity{}, false, errs.New(errs.InvalidArgument, fmt.Sprintf(
			"a workload identity's binding does not expire, and your credential does (at %s): a binding cannot outlive "+
				"the caller that makes it, as a token cannot; bind identities with a token that does not expire",
			p.ExpiresAt.UTC().Format(time.RFC3339)))
	}
	names := make([]string, len(scopes))
	for i, sc := range scopes {
		names[i] = string(sc)
	}
	return s.q.PutWorkloadIdentity(ctx, subject, names, description, canTakeAway(ctx))
}

// DeleteWorkloadIdentity removes a binding whose every scope the caller holds (as RevokeToken).
func (s *Store) DeleteWorkloadIdentity(ctx context.Context, subject string) error {
	if err := rbac.Require(ctx, rbac.TokenWrite); err != nil {
		return err
	}
	return s.q.DeleteWorkloadIdentity(ctx, subject, canTakeAway(ctx))
}

// ListWorkloadIdentities needs token:write, as ListTokens: who may call with which scopes is for
// the administrators of callers.
func (s *Store) ListWorkloadIdentities(ctx context.Context, p db.Page[db.WorkloadIdentityPos]) ([]db.WorkloadIdentity, error) {
	if err := rbac.Require(ctx, rbac.TokenWrite); err != nil {
		return nil, err
	}
	return s.q.ListWorkloadIdentities(ctx, p)
}

// WorkloadIdentity looks a binding up by subject, for the authenticator (a system actor).
func (s *Store) WorkloadIdentity(ctx context.Context, subject string) (db.WorkloadIdentity, bool, error) {
	if err := rbac.Require(ctx, rbac.IdentityAuthenticate); err != nil {
		return db.WorkloadIdentity{}, false, err
	}
	return s.q.WorkloadIdentity(ctx, subject)
}

// canTakeAway checks, given the scopes a stored binding carries, that the caller holds them all.
func canTakeAway(ctx context.Context) func(scopes []string) error {
	return func(scopes []string) error {
		parsed, err := rbac.ParseScopes(scopes)
		if err != nil {
			return err
		}
		return rbac.CanGrant(ctx, parsed)
	}
}
