package service

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/resolve"
	"github.com/resolverd/resolverd/internal/transport"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// The rate of ReportCredentialOutcome calls one caller (a token, or a workload identity's subject)
// may make on one replica (docs/CONTRACT.md §17), on top of serve's --rate-limit: a fleet sharing
// a token reports a provider's refusals, not every call it makes, and a report that changes nothing
// costs a row lock and an audit record all the same.
const (
	ReportsPerSecond = 20
	ReportBurst      = 40
)

// report is a validated ReportCredentialOutcome request; the fields it could not read are zero.
type report struct {
	keyID, chatID uuid.UUID
	outcome       resolve.Outcome
	retryAfter    time.Duration
	retryGiven    bool
}

func reportOf(req *resolverv1.ReportCredentialOutcomeRequest) (report, error) {
	var v violations
	r := report{
		keyID:      v.id("key_id", req.GetKeyId()),
		outcome:    v.outcome("outcome", req.GetOutcome()),
		retryAfter: v.retryAfter("retry_after", req.GetRetryAfter()),
		chatID:     v.optionalID("chat_id", req.GetChatId()),
		retryGiven: req.GetRetryAfter() != nil,
	}
	return r, v.err()
}

// ReportCredentialOutcome applies a worker's report on one key (docs/CONTRACT.md §17): over the
// caller's report rate it is refused (and not recorded); otherwise it is validated, applied to the
// key row through the scope-checked store (credential:report), and recorded in the audit trail
// whatever its outcome.
func (s *Resolver) ReportCredentialOutcome(ctx context.Context, req *resolverv1.ReportCredentialOutcomeRequest) (*resolverv1.ReportCredentialOutcomeResponse, error) {
	if p, ok := rbac.FromContext(ctx); ok {
		if err := s.reports.Allow(&p); err != nil {
			s.obs.Limited()
			return nil, transport.ToStatus(ctx, s.log, err)
		}
	}
	r, err := reportOf(req)
	if err == nil {
		if h, ok := s.audit.(interface{ Room() bool }); ok && !h.Room() {
			// The record of the report would be refused once the key had changed: refuse before
			// changing it, so that DATABASE_UNAVAILABLE means "not applied" and the worker (the Go
			// client retries UNAVAILABLE) may send it again without doubling it.
			return nil, transport.ToStatus(ctx, s.log, errs.New(errs.DatabaseUnavailable,
				"the audit trail cannot record this report right now; it was not applied; try again"))
		}
	}
	var rep db.KeyReport
	if err == nil {
		rep, err = s.store.ReportCredentialOutcome(ctx, r.keyID, r.outcome, r.retryAfter)
	}
	// No report is applied without its record — but for one that finds the buffer filled in the
	// moment between the check above and this record, as an outage of the trail begins: that one
	// is logged whole at error level instead (ids and states, never a secret), as the writer logs
	// a record PostgreSQL refuses.
	ev := reportEvent(ctx, r, rep, err)
	if aerr := s.audit.Record(ev); aerr != nil {
		if err == nil && rep.Written {
			s.log.ErrorContext(ctx, "audit: a report was applied but the audit trail could not take its record, so it is logged here instead",
				"request_id", transport.RequestID(ctx), "action", ev.Action, "token_id", ev.TokenID.String(), "subject", ev.Subject, "chat_id", ev.ChatID.String(),
				"outcome", ev.Outcome, "details", ev.Details)
		}
		return nil, transport.ToStatus(ctx, s.log, aerr)
	}
	if err != nil {
		return nil, transport.ToStatus(ctx, s.log, err)
	}
	s.obs.Reported(string(r.outcome))
	source := resolverv1.CredentialSource_CREDENTIAL_SOURCE_CENTRAL
	if rep.Source == resolve.SourceUser {
		source = resolverv1.CredentialSource_CREDENTIAL_SOURCE_USER
	}
	return &resolverv1.ReportCredentialOutcomeResponse{
		KeyId: rep.KeyID.String(), Source: source, ProviderId: rep.ProviderID.String(),
		Health: healthProto(rep.Health, rep.At), Changed: rep.Changed,
	}, nil
}

// reportEvent is the audit record of one report: who reported what about which key, and what
// resolverd made of it.
func reportEvent(ctx context.Context, r report, rep db.KeyReport, err error) db.AuditEvent {
	d := map[string]string{"request_id": transport.RequestID(ctx)}
	put := func(k, v string) {
		if v != "" {
			d[k] = v
		}
	}
	if r.keyID != uuid.Nil {
		d["key_id"] = r.keyID.String()
	}
	put("reported_outcome", string(r.outcome))
	if r.retryGiven {
		d["retry_after"] = strconv.FormatFloat(r.retryAfter.Seconds(), 'f', -1, 64) + "s"
	}
	e := db.AuditEvent{OccurredAt: time.Now(), Action: "ReportCredentialOutcome", ChatID: r.chatID, Outcome: outcomeOf(err), Details: d}
	if p, ok := rbac.FromContext(ctx); ok {
		e.TokenID, e.Subject = p.TokenID, p.Subject
	}
	if err != nil {
		for k, v := range errMetadata(err) {
			if _, taken := d[k]; !taken {
				d[k] = v
			}
		}
		return e
	}
	d["credential_source"] = rep.Source.String()
	d["provider_id"] = rep.ProviderID.String()
	if rep.UserID != uuid.Nil {
		d["user_id"] = rep.UserID.String()
	}
	h := healthProto(rep.Health, rep.At)
	d["state"] = h.GetState().String()
	d["changed"] = strconv.FormatBool(rep.Changed)
	if h.GetCoolingUntil() != nil {
		d["cooling_until"] = rep.Health.CoolingUntil.UTC().Format(time.RFC3339Nano)
	}
	return e
}

// errMetadata is the ErrorInfo metadata err carries, if any.
func errMetadata(err error) map[string]string {
	var e *errs.Error
	if errors.As(err, &e) {
		return e.Metadata
	}
	return nil
}
