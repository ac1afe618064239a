package service

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/dbauthz"
	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/resolve"
	"github.com/resolverd/resolverd/internal/transport"
	"github.com/resolverd/resolverd/pkg/secret"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// Recorder takes audit records without waiting; it refuses (DATABASE_UNAVAILABLE) when it cannot
// keep up, and then the call fails rather than go unrecorded.
type Recorder interface {
	Record(db.AuditEvent) error
}

// Observer hears of every resolution and every report applied, for metrics. Its methods must be
// cheap and never block.
type Observer interface {
	Resolved(purpose, source, outcome string, fallback bool, fallbackReason string)
	// Reported counts a report applied, by its outcome (RATE_LIMITED, ..., OK).
	Reported(outcome string)
	// Limited counts a report refused for the caller's report rate.
	Limited()
}

type nopObserver struct{}

func (nopObserver) Resolved(string, string, string, bool, string) {}
func (nopObserver) Reported(string)                               {}
func (nopObserver) Limited()                                      {}

// Resolver serves resolver.v1.ResolverService.
type Resolver struct {
	resolverv1.UnimplementedResolverServiceServer
	store *dbauthz.Store
	opts  resolve.Options
	fpKey []byte
	audit Recorder
	log   *slog.Logger
	// renders keeps the messages of configs and providers across answers.
	renders *renders
	obs     Observer
	// reports limits each caller's ReportCredentialOutcome calls (reports.go).
	reports *transport.CallerLimits
}

// NewResolver returns the ResolverService handler. fpKey keys the credential fingerprints; every
// call is recorded with audit.
func NewResolver(store *dbauthz.Store, opts resolve.Options, fpKey []byte, audit Recorder, log *slog.Logger, obs Observer) *Resolver {
	if obs == nil {
		obs = nopObserver{}
	}
	return &Resolver{store: store, opts: opts, fpKey: fpKey, audit: audit, log: log, renders: newRenders(), obs: obs, reports: transport.NewCallerLimits(transport.RateLimit{PerSecond: ReportsPerSecond, Burst: ReportBurst}, "credential reports")}
}

// ResolveModel validates the request, applies the decision rules over the scope-checked store and
// answers with one config, its provider and one credential.
func (s *Resolver) ResolveModel(ctx context.Context, req *resolverv1.ResolveModelRequest) (*resolverv1.ResolveModelResponse, error) {
	r, err := requestOf(req)
	var res *resolve.Result
	if err == nil {
		res, err = resolve.Resolve(ctx, s.store, s.opts, r)
	}
	var (
		out  *answerMessages
		cred *resolverv1.Credential
	)
	if err == nil {
		out = new(answerMessages)
		cred = fillCredential(&out.credential, res.Credential, s.fpKey)
	}
	// No answer leaves without its record.
	ev := resolutionEvent(ctx, r, res, cred, err)
	if aerr := s.audit.Record(ev); aerr != nil {
		s.obs.Resolved(r.Purpose.String(), "", string(errs.DatabaseUnavailable), false, "")
		return nil, transport.ToStatus(ctx, s.log, aerr)
	}
	if res != nil {
		s.obs.Resolved(r.Purpose.String(), res.Credential.Source.String(), ev.Outcome, res.Fallback, string(res.FallbackReason))
	} else {
		s.obs.Resolved(r.Purpose.String(), "", ev.Outcome, false, "")
	}
	if err != nil {
		return nil, transport.ToStatus(ctx, s.log, err)
	}
	return s.renders.answer(out, res.Config, res.Provider, res), nil
}

// RecordRefusal records a ResolveModel call the authenticator refused once it knew the caller — a
// token without one of the scopes every resolution needs — so the audit trail shows what a token
// tried, not only what it got (and so a ReportCredentialOutcome call without credential:report) (refusals inside the handler, such as a missing key scope, are
// recorded by ResolveModel itself). Calls without a valid token are not recorded: anyone could
// fill the trail with them. Nor are calls over the rate limit: their volume is the problem, and
// resolverd_rate_limited_total counts them. The refusal stands whether or not it could be recorded.
func (s *Resolver) RecordRefusal(ctx context.Context, method string, req any, err error) {
	if errs.ReasonOf(err) != errs.MissingScope {
		return
	}
	if _, ok := rbac.FromContext(ctx); !ok {
		return
	}
	if method == resolverv1.ResolverService_ReportCredentialOutcome_FullMethodName {
		in, _ := req.(*resolverv1.ReportCredentialOutcomeRequest)
		r, _ := reportOf(in) // malformed fields are recorded as absent
		if aerr := s.audit.Record(reportEvent(ctx, r, db.KeyReport{}, err)); aerr != nil {
			s.log.WarnContext(ctx, "audit: a refused call could not be recorded", "request_id", transport.RequestID(ctx), "method", method, "error", aerr)
		}
		return
	}
	if method != resolverv1.ResolverService_ResolveModel_FullMethodName {
		return
	}
	in, _ := req.(*resolverv1.ResolveModelRequest)
	r, _ := requestOf(in) // malformed ids are recorded as absent
	ev := resolutionEvent(ctx, r, nil, nil, err)
	s.obs.Resolved(r.Purpose.String(), "", ev.Outcome, false, "")
	if aerr := s.audit.Record(ev); aerr != nil {
		s.log.WarnContext(ctx, "audit: a refused call could not be recorded", "request_id", transport.RequestID(ctx), "method", method, "outcome", ev.Outcome, "error", aerr)
	}
}

// requestOf validates a request; the fields it could not read are zero in the result.
func requestOf(req *resolverv1.ResolveModelRequest) (resolve.Request, error) {
	var v violations
	r := resolve.Request{
		ChatID:        v.id("chat_id", req.GetChatId()),
		ModelConfigID: v.optionalID("model_config_id", req.GetModelConfigId()),
		Purpose:       purposeOf(&v, req.GetPurpose()),
	}
	return r, v.err()
}

// resolutionEvent is the audit record of one call: who asked, for what, and what they got (the
// key by id and fingerprint, never the key).
func resolutionEvent(ctx context.Context, r resolve.Request, res *resolve.Result, cred *resolverv1.Credential, err error) db.AuditEvent {
	d := &db.ResolutionDetails{Purpose: r.Purpose.String(), RequestID: transport.RequestID(ctx), RequestedConfigID: r.ModelConfigID}
	e := db.AuditEvent{OccurredAt: time.Now(), Action: "ResolveModel", ChatID: r.ChatID, Outcome: outcomeOf(err), Resolution: d}
	if p, ok := rbac.FromContext(ctx); ok {
		e.TokenID, e.Subject = p.TokenID, p.Subject
	}
	if res == nil {
		return e
	}
	d.Resolved = true
	d.RequestedConfigID = res.RequestedConfigID
	d.ConfigID, d.ProviderID = res.Config.ID, res.Provider.ID
	d.CredentialSource = res.Credential.Source.String()
	d.Fallback, d.FallbackReason = res.Fallback, string(res.FallbackReason)
	d.KeyID, d.Fingerprint = res.Credential.KeyID, cred.GetFingerprint()
	return e
}

// outcomeOf is OK or the reason a call failed with.
func outcomeOf(err error) string {
	switch {
	case err == nil:
		return db.OutcomeOK
	case errs.ReasonOf(err) != "":
		return string(errs.ReasonOf(err))
	case errors.Is(err, context.Canceled):
		return "CANCELLED"
	case errors.Is(err, context.DeadlineExceeded):
		return "DEADLINE_EXCEEDED"
	}
	return string(errs.Internal)
}

func credentialProto(c resolve.Credential, fpKey []byte) *resolverv1.Credential {
	return fillCredential(&resolverv1.Credential{}, c, fpKey)
}

// fillCredential sets out, a zero Credential, to c and returns it.
func fillCredential(out *resolverv1.Credential, c resolve.Credential, fpKey []byte) *resolverv1.Credential {
	switch c.Source {
	case resolve.SourceCentral:
		out.Source = resolverv1.CredentialSource_CREDENTIAL_SOURCE_CENTRAL
	case resolve.SourceUser:
		out.Source = resolverv1.CredentialSource_CREDENTIAL_SOURCE_USER
	case resolve.SourceAmbient:
		out.Source = resolverv1.CredentialSource_CREDENTIAL_SOURCE_AMBIENT
		return out
	}
	out.KeyId = c.KeyID.String()
	// The one response field that carries a secret.
	out.ApiKey = c.Secret.Reveal()
	out.Fingerprint = c.Fingerprint
	if out.Fingerprint == "" {
		out.Fingerprint = secret.Fingerprint(fpKey, c.Secret)
	}
	return out
}
