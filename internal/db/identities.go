package db

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/resolverd/resolverd/internal/errs"
)

// WorkloadIdentity is a workload_identities row: a subject a caller proves with a verified
// credential (JWT, client certificate), bound to the scopes it may use (docs/CONTRACT.md §3.1).
type WorkloadIdentity struct {
	Subject     string
	Scopes      []string
	Description string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// WorkloadIdentityPos is a binding's place in ListWorkloadIdentities' order: by subject.
type WorkloadIdentityPos struct {
	Subject string
}

// Pos is w's place in ListWorkloadIdentities' order.
func (w WorkloadIdentity) Pos() WorkloadIdentityPos { return WorkloadIdentityPos{Subject: w.Subject} }

const identityCols = `subject, scopes, description, created_at, updated_at`

func scanIdentity(row pgx.Row) (WorkloadIdentity, error) {
	var w WorkloadIdentity
	err := row.Scan(&w.Subject, &w.Scopes, &w.Description, &w.CreatedAt, &w.UpdatedAt)
	return w, err
}

// errNoIdentity is the NOT_FOUND of a binding that does not exist (metadata "subject", the
// request field).
func errNoIdentity(subject string) error {
	return errs.New(errs.NotFound, fmt.Sprintf("no workload identity binds subject %q", subject), "subject", subject)
}

// PutWorkloadIdentity binds subject to scopes, creating the binding or replacing the scopes and
// description of the one there is. When there is one, allowed (when not nil) first decides, given
// the scopes it carries (read under a row lock), whether the caller may change it. created says
// which happened.
func (s *Store) PutWorkloadIdentity(ctx context.Context, subject string, scopes []string, description string,
	allowed func(previous []string) error) (w WorkloadIdentity, isNew bool, err error) {
	err = s.change(ctx, "PutWorkloadIdentity", func(tx pgx.Tx) (changed, error) {
		details := map[string]string{"subject": subject, "scopes": strings.Join(scopes, " ")}
		after := identityFields(subject, scopes, description)
		// Insert first: a binding created by a racing writer is then seen below, locked, and held to
		// allowed like any other existing one.
		w, err = scanIdentity(tx.QueryRow(ctx, `INSERT INTO workload_identities (subject, scopes, description)
VALUES ($1, $2, $3) ON CONFLICT (subject) DO NOTHING RETURNING `+identityCols, subject, scopes, description))
		if err == nil {
			isNew = true
			return changed{details, created(after)}, nil
		}
		if !notFound(err) {
			return changed{}, classify(err)
		}
		var previous []string
		var previousDescription string
		if err := tx.QueryRow(ctx, `SELECT scopes, description FROM workload_identities WHERE subject = $1 FOR UPDATE`, subject).Scan(&previous, &previousDescription); err != nil {
			return changed{}, classify(err) // the row exists: the insert conflicted on it and nothing deletes under our lock
		}
		if allowed != nil {
			if err := allowed(previous); err != nil {
				return changed{}, err
			}
		}
		w, err = scanIdentity(tx.QueryRow(ctx, `UPDATE workload_identities SET scopes = $2, description = $3, updated_at = now()
WHERE subject = $1 RETURNING `+identityCols, subject, scopes, description))
		if err != nil {
			return changed{}, classify(err)
		}
		details["previous_scopes"] = strings.Join(previous, " ")
		return changed{details, diff(identityFields(subject, previous, previousDescription), after)}, nil
	})
	if err != nil {
		return WorkloadIdentity{}, false, fmt.Errorf("put workload identity %q: %w", subject, err)
	}
	return w, isNew, nil
}

// DeleteWorkloadIdentity removes the binding of subject if allowed (when not nil) says so, given the
// scopes it carries (read under a row lock). A missing binding is NOT_FOUND (metadata "subject").
func (s *Store) DeleteWorkloadIdentity(ctx context.Context, subject string, allowed func(scopes []string) error) error {
	err := s.change(ctx, "DeleteWorkloadIdentity", func(tx pgx.Tx) (changed, error) {
		var scopes []string
		var description string
		err := tx.QueryRow(ctx, `SELECT scopes, description FROM workload_identities WHERE subject = $1 FOR UPDATE`, subject).Scan(&scopes, &description)
		if notFound(err) {
			return changed{}, errNoIdentity(subject)
		}
		if err != nil {
			return changed{}, classify(err)
		}
		if allowed != nil {
			if err := allowed(scopes); err != nil {
				return changed{}, err
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM workload_identities WHERE subject = $1`, subject); err != nil {
			return changed{}, classify(err)
		}
		return changed{map[string]string{"subject": subject, "scopes": strings.Join(scopes, " ")},
			deleted(identityFields(subject, scopes, description))}, nil
	})
	if err != nil {
		return fmt.Errorf("delete workload identity %q: %w", subject, err)
	}
	return nil
}

// identityFields are a binding's fields as its audit records list them.
func identityFields(subject string, scopes []string, description string) []field {
	return []field{{"subject", subject}, {"scopes", strings.Join(scopes, " ")}, {"description", description}}
}

// ListWorkloadIdentities returns a page of the bindings, by subject.
func (s *Store) ListWorkloadIdentities(ctx context.Context, p Page[WorkloadIdentityPos]) ([]WorkloadIdentity, error) {
	var after *string
	if p.After != nil {
		after = &p.After.Subject
	}
	return list(ctx, s, "workload identities", `SELECT `+identityCols+` FROM workload_identities
WHERE $1::text IS NULL OR subject > $1 ORDER BY subject LIMIT $2`, scanIdentity, after, p.limit())
}

// WorkloadIdentity returns the binding of subject; ok is false when there is none. The
// authenticator reads it (through the cache) on every call a workload identity makes.
func (s *Store) WorkloadIdentity(ctx context.Context, subject string) (w WorkloadIdentity, ok bool, err error) {
	w, err = scanIdentity(s.pool.QueryRow(ctx, `SELECT `+identityCols+` FROM workload_identities WHERE subject = $1`, subject))
	if notFound(err) {
		return WorkloadIdentity{}, false, nil
	}
	if err != nil {
		return WorkloadIdentity{}, false, fmt.Errorf("look up workload identity %q: %w", subject, classify(err))
	}
	return w, true, nil
}
