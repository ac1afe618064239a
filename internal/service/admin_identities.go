package service

import (
	"context"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/identity"
	"github.com/resolverd/resolverd/internal/rbac"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// subject checks a workload identity's subject (identity.CheckSubject: docs/CONTRACT.md §3.6).
func (v *violations) subject(field, s string) {
	if problem := identity.CheckSubject(s); problem != "" {
		v.add(field, "%s", problem)
	}
}

// PutWorkloadIdentity binds a subject to scopes the caller itself holds (and, when it is bound
// already, whose previous scopes it holds too: dbauthz.PutWorkloadIdentity).
func (s *Admin) PutWorkloadIdentity(ctx context.Context, req *resolverv1.PutWorkloadIdentityRequest) (*resolverv1.WorkloadIdentity, error) {
	var v violations
	v.subject("subject", req.GetSubject())
	scopes, err := rbac.ParseScopes(req.GetScopes())
	switch {
	case err != nil:
		v.add("scopes", "%v", err)
	case len(scopes) == 0:
		v.add("scopes", "at least one scope is required")
	}
	v.text("description", req.GetDescription(), false)
	if err := v.err(); err != nil {
		return nil, s.fail(ctx, err)
	}
	w, _, err := s.store.PutWorkloadIdentity(ctx, req.GetSubject(), scopes, req.GetDescription())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return identityProto(w), nil
}

// DeleteWorkloadIdentity removes a binding whose scopes the caller holds.
func (s *Admin) DeleteWorkloadIdentity(ctx context.Context, req *resolverv1.DeleteWorkloadIdentityRequest) (*resolverv1.DeleteWorkloadIdentityResponse, error) {
	var v violations
	v.subject("subject", req.GetSubject())
	if err := v.err(); err != nil {
		return nil, s.fail(ctx, err)
	}
	if err := s.store.DeleteWorkloadIdentity(ctx, req.GetSubject()); err != nil {
		return nil, s.fail(ctx, err)
	}
	return &resolverv1.DeleteWorkloadIdentityResponse{}, nil
}

// ListWorkloadIdentities pages through the bindings by subject.
func (s *Admin) ListWorkloadIdentities(ctx context.Context, req *resolverv1.ListWorkloadIdentitiesRequest) (*resolverv1.ListWorkloadIdentitiesResponse, error) {
	var v violations
	size := v.pageSize("page_size", req.GetPageSize())
	pg := newPager[db.WorkloadIdentityPos](&v, s.pages, "ListWorkloadIdentities", "", size, req.GetPageToken())
	if err := v.err(); err != nil {
		return nil, s.fail(ctx, err)
	}
	out, next, err := serve(ctx, pg, s.store.ListWorkloadIdentities, db.WorkloadIdentity.Pos, identityProto)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &resolverv1.ListWorkloadIdentitiesResponse{WorkloadIdentities: out, NextPageToken: next}, nil
}

func identityProto(w db.WorkloadIdentity) *resolverv1.WorkloadIdentity {
	return &resolverv1.WorkloadIdentity{Subject: w.Subject, Scopes: w.Scopes, Description: w.Description,
		CreatedAt: timestamp(w.CreatedAt), UpdatedAt: timestamp(w.UpdatedAt)}
}
