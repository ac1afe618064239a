package cachedstore

import (
	"context"

	"github.com/resolverd/resolverd/internal/db"
)

// identityEntry caches a workload identity's binding; a nil binding caches "there is none", so a
// workload whose binding was deleted is refused from memory too. Subjects come only from verified
// credentials (a JWT signed by the configured issuer, a certificate chaining to the client CA), so
// unlike unknown bearer tokens they cannot be made up by anyone on the network; the bound of the
// cache still holds whatever arrives.
type identityEntry struct{ w *db.WorkloadIdentity }

// WorkloadIdentity serves the binding of subject (or its absence) from memory when it can. A change
// of workload_identities names the subject (migration 13), and drops it on every replica.
func (s *Store) WorkloadIdentity(ctx context.Context, subject string) (db.WorkloadIdentity, bool, error) {
	if s.live.Load() {
		if e, ok := s.identities.Get(subject); ok {
			s.hits.Add(1)
			if e.w == nil {
				return db.WorkloadIdentity{}, false, nil
			}
			return *e.w, true, nil
		}
	}
	s.misses.Add(1)
	gen0 := s.gen.Current()
	w, ok, err := s.Store.WorkloadIdentity(ctx, subject)
	if err != nil {
		return db.WorkloadIdentity{}, false, err
	}
	e := identityEntry{}
	if ok {
		e.w = &w
	}
	s.store(gen0, func() { s.identities.Put(subject, e) })
	return w, ok, nil
}

// PutWorkloadIdentity writes through and drops the subject's entry on this replica at once.
func (s *Store) PutWorkloadIdentity(ctx context.Context, subject string, scopes []string, description string,
	allowed func(previous []string) error) (db.WorkloadIdentity, bool, error) {
	w, created, err := s.Store.PutWorkloadIdentity(ctx, subject, scopes, description, allowed)
	if err == nil {
		s.invalidate(db.Change{Table: "workload_identities", Subject: subject})
	}
	return w, created, err
}

// DeleteWorkloadIdentity writes through and drops the subject's entry on this replica at once.
func (s *Store) DeleteWorkloadIdentity(ctx context.Context, subject string, allowed func(scopes []string) error) error {
	err := s.Store.DeleteWorkloadIdentity(ctx, subject, allowed)
	if err == nil {
		s.invalidate(db.Change{Table: "workload_identities", Subject: subject})
	}
	return err
}

// invalidateIdentity drops the binding a change names, or every binding when it names none. The
// caller holds s.mu.
func (s *Store) invalidateIdentity(c db.Change) {
	if c.Subject == "" {
		s.identities.Clear()
		return
	}
	s.identities.Delete(c.Subject)
}
