package resolution_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/service"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// Workers' reports on the keys they were given, and what resolutions make of them
// (docs/CONTRACT.md §2.2, §17), through the real server. The three-replica suites are in
// internal/e2e/operations/key_pools_test.go.

const (
	reRateLimited  = resolverv1.CredentialOutcome_CREDENTIAL_OUTCOME_RATE_LIMITED
	reQuota        = resolverv1.CredentialOutcome_CREDENTIAL_OUTCOME_QUOTA_EXHAUSTED
	reUnauthorized = resolverv1.CredentialOutcome_CREDENTIAL_OUTCOME_UNAUTHORIZED
	reOKOutcome    = resolverv1.CredentialOutcome_CREDENTIAL_OUTCOME_OK
)

// reRetryInfo is the RetryInfo delay of err's status (0 when it has none).
func reRetryInfo(err error) time.Duration {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	return 0
}

// TestEveryKeyCoolingDown: with every enabled central key cooling down (or suspended), PURPOSE_CHAT
// fails with RESOURCE_EXHAUSTED / CREDENTIALS_COOLING_DOWN and a RetryInfo of the first cooldown's
// end; soft overrides fall back to the chat's own model; every key suspended is NO_CREDENTIALS.
func TestEveryKeyCoolingDown(t *testing.T) {
	w := reNew(t, testenv.Options{})
	s := w.reSetup("openai", reDisabled)
	k1, k2, k3 := w.central(s.p.Id), w.central(s.p.Id), w.central(s.p.Id)
	other := w.prov("anthropic", reDisabled)
	otherKey := w.central(other.Id)
	override := w.cfg(other.Id)
	s.ok(w, k1)

	w.MustReport(k1.keyID, reRateLimited, 5*time.Minute)
	s.ok(w, k2)
	w.MustReport(k2.keyID, reQuota, 90*time.Second)
	w.MustReport(k3.keyID, reUnauthorized, 0)

	// The chat's own model: no fallback for PURPOSE_CHAT, a RetryInfo of the first end (k2's).
	_, err := w.res(s.chat.Id, "", reChat)
	info := testenv.WantReason(t, err, codes.ResourceExhausted, "CREDENTIALS_COOLING_DOWN")
	if info.GetMetadata()["provider_id"] != s.p.Id || info.GetMetadata()["model_config_id"] != s.cfg.Id {
		t.Errorf("metadata %v", info.GetMetadata())
	}
	if d := reRetryInfo(err); d <= 80*time.Second || d > 90*time.Second {
		t.Errorf("RetryInfo delay %v, want just under 90s (the first cooldown's end)", d)
	}

	// A soft override on the cooling provider falls back to the chat's model — here on another
	// provider; the chat's model on the cooling provider is an override the other way round.
	chat2 := w.Chat(s.owner.Id, override.Id)
	for _, p := range reSoft {
		res, err := w.res(chat2.Id, s.cfg.Id, p)
		reOK(t, res, err, reWant{config: override, provider: other, cred: otherKey, requested: s.cfg.Id, fallback: true, reason: "CREDENTIALS_COOLING_DOWN"})
	}
	_, err = w.res(chat2.Id, s.cfg.Id, reTitle)
	testenv.WantReason(t, err, codes.ResourceExhausted, "CREDENTIALS_COOLING_DOWN")

	// Suspended, not cooling: the cooling keys suspended too leaves nothing that comes back.
	w.MustReport(k1.keyID, reUnauthorized, 0)
	w.MustReport(k2.keyID, reUnauthorized, 0)
	s.fail(w, "NO_CREDENTIALS")

	// An admin enabling one again: served at once.
	w.setKeyEnabled(k2.keyID, true)
	s.ok(w, k2)
}

// TestAnOKReportEndsACooldown: OK ends a cooldown early; the other outcomes keep the longest one.
func TestAnOKReportEndsACooldown(t *testing.T) {
	w := reNew(t, testenv.Options{})
	s := w.reSetup("openai", reDisabled)
	k1, k2 := w.central(s.p.Id), w.central(s.p.Id)
	r := w.MustReport(k1.keyID, reRateLimited, 0) // the default: 30 s
	if d := time.Until(r.GetHealth().GetCoolingUntil().AsTime()); d < 25*time.Second || d > 31*time.Second {
		t.Errorf("default cooldown ends in %v, want about 30s", d)
	}
	// A longer retry_after than the most is cut to 10 minutes.
	r = w.MustReport(k1.keyID, reRateLimited, 3*time.Hour)
	if d := time.Until(r.GetHealth().GetCoolingUntil().AsTime()); d < 9*time.Minute || d > 10*time.Minute+time.Second {
		t.Errorf("a 3h retry_after cools down for %v, want 10 minutes", d)
	}
	// A shorter one keeps the longer cooldown.
	if r := w.MustReport(k1.keyID, reRateLimited, time.Second); r.GetChanged() || time.Until(r.GetHealth().GetCoolingUntil().AsTime()) < 9*time.Minute {
		t.Errorf("a shorter report changed the cooldown: %v", r)
	}
	s.ok(w, k2)
	if r := w.MustReport(k1.keyID, reOKOutcome, 0); !r.GetChanged() || r.GetHealth().GetState() != resolverv1.KeyState_KEY_STATE_AVAILABLE ||
		r.GetHealth().GetCoolingUntil() != nil || r.GetHealth().GetLastReportOutcome() != reOKOutcome {
		t.Fatalf("OK report answer %v", r)
	}
	s.ok(w, k1)
	keys, err := w.Admin.ListProviderKeys(w.AsAdmin(), &resolverv1.ListProviderKeysRequest{ProviderId: s.p.Id})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys.GetKeys() {
		h := k.GetHealth()
		switch k.GetId() {
		case k1.keyID:
			if h.GetState() != resolverv1.KeyState_KEY_STATE_AVAILABLE || h.GetLastReportOutcome() != reOKOutcome || h.GetLastReportAt() == nil {
				t.Errorf("ListProviderKeys shows the reported key as %v", h)
			}
		case k2.keyID:
			if h.GetState() != resolverv1.KeyState_KEY_STATE_AVAILABLE || h.GetLastReportAt() != nil || h.GetLastReportOutcome() != 0 {
				t.Errorf("ListProviderKeys shows a key nobody reported as %v", h)
			}
		}
	}
}

// TestAUserKeyReportedUnauthorized: the owner's key reported UNAUTHORIZED is marked invalid; with
// byok_policy optional the central key answers and the Decision says why, with required the call
// fails with USER_KEY_INVALID naming the key; putting a new key ends it.
func TestAUserKeyReportedUnauthorized(t *testing.T) {
	w := reNew(t, testenv.Options{})
	for _, policy := range []resolverv1.ByokPolicy{reOptional, reRequired} {
		t.Run(policy.String(), func(t *testing.T) {
			w := w.in(t)
			s := w.reSetup("openai", policy)
			central := w.central(s.p.Id)
			own := w.own(s.owner.Id, s.p.Id)
			s.ok(w, own)
			r := w.MustReport(own.keyID, reUnauthorized, 0)
			if r.GetSource() != resolverv1.CredentialSource_CREDENTIAL_SOURCE_USER || r.GetHealth().GetState() != resolverv1.KeyState_KEY_STATE_SUSPENDED || !r.GetChanged() {
				t.Fatalf("report answer %v", r)
			}
			res, err := w.res(s.chat.Id, "", reChat)
			if policy == reOptional {
				reOK(t, res, err, reWant{config: s.cfg, provider: s.p, cred: central, requested: s.cfg.Id})
				if got := res.GetDecision().GetUserKeySkippedReason(); got != "USER_KEY_INVALID" {
					t.Errorf("decision.user_key_skipped_reason = %q, want USER_KEY_INVALID", got)
				}
			} else {
				reFail(t, err, reFP, "USER_KEY_INVALID", map[string]string{"provider_id": s.p.Id, "key_id": own.keyID, "model_config_id": s.cfg.Id})
			}
			listed, err := w.Admin.ListUserProviderKeys(w.AsAdmin(), &resolverv1.ListUserProviderKeysRequest{UserId: s.owner.Id})
			if err != nil || len(listed.GetKeys()) != 1 || listed.GetKeys()[0].GetHealth().GetState() != resolverv1.KeyState_KEY_STATE_SUSPENDED ||
				listed.GetKeys()[0].GetFingerprint() != own.fp {
				t.Fatalf("ListUserProviderKeys: %v, %v", listed, err)
			}
			// A rate-limited user's key is recorded, not cooled down: it is the owner's, not a pool.
			if r := w.MustReport(own.keyID, reRateLimited, time.Minute); r.GetChanged() || r.GetHealth().GetCoolingUntil() != nil {
				t.Errorf("a RATE_LIMITED report on a user's key: %v", r)
			}
			// The owner puts a new key: used again, no longer invalid.
			fresh := w.own(s.owner.Id, s.p.Id)
			s.ok(w, fresh)
			res, _ = w.res(s.chat.Id, "", reChat)
			if res.GetDecision().GetUserKeySkippedReason() != "" {
				t.Errorf("user_key_skipped_reason after a new key: %q", res.GetDecision().GetUserKeySkippedReason())
			}
		})
	}
}

// TestReportRefusals: a report needs credential:report (and nothing else), names a key that
// exists, and is valid; a report names one key and changes no other; one caller's reports are
// limited; and each report is in the audit trail.
func TestReportRefusals(t *testing.T) {
	w := reNew(t, testenv.Options{})
	s := w.reSetup("openai", reDisabled)
	k1, k2 := w.central(s.p.Id), w.central(s.p.Id)
	report := func(ctx context.Context, req *resolverv1.ReportCredentialOutcomeRequest) error {
		_, err := w.Resolver.ReportCredentialOutcome(ctx, req)
		return err
	}

	t.Run("without credential:report", func(t *testing.T) {
		without := w.reWithout(rbac.CredentialReport)
		before := w.TablesSnapshot(t)
		err := report(without, &resolverv1.ReportCredentialOutcomeRequest{KeyId: k1.keyID, Outcome: reUnauthorized})
		reDenied(t, err, rbac.CredentialReport)
		if after := w.TablesSnapshot(t); after != before {
			t.Errorf("a refused report changed the tables")
		}
		s.ok(w, k1)
		// credential:report alone is enough.
		only := w.As(w.Token(t, "re-report-only", rbac.CredentialReport))
		if err := report(only, &resolverv1.ReportCredentialOutcomeRequest{KeyId: k2.keyID, Outcome: reOKOutcome}); err != nil {
			t.Fatalf("with credential:report alone: %v", err)
		}
		// The refusal is in the audit trail, with the key it named.
		reAudited(t, w, func(ev *resolverv1.AuditEvent) bool {
			return ev.GetOutcome() == "MISSING_SCOPE" && ev.GetDetails()["key_id"] == k1.keyID && ev.GetDetails()["scope"] == "credential:report"
		})
	})

	t.Run("unknown key", func(t *testing.T) {
		id := uuid.NewString()
		err := report(w.AsWorker(), &resolverv1.ReportCredentialOutcomeRequest{KeyId: id, Outcome: reRateLimited})
		reFail(t, err, codes.NotFound, "NOT_FOUND", map[string]string{"key_id": id})
		// A chat id, a config id, a provider id: not keys.
		for _, notKey := range []string{s.chat.Id, s.cfg.Id, s.p.Id, s.owner.Id} {
			err := report(w.AsWorker(), &resolverv1.ReportCredentialOutcomeRequest{KeyId: notKey, Outcome: reUnauthorized})
			testenv.WantReason(t, err, codes.NotFound, "NOT_FOUND")
		}
	})

	t.Run("invalid", func(t *testing.T) {
		cases := []struct {
			req    *resolverv1.ReportCredentialOutcomeRequest
			fields []string
		}{
			{&resolverv1.ReportCredentialOutcomeRequest{KeyId: k1.keyID}, []string{"outcome"}},
			{&resolverv1.ReportCredentialOutcomeRequest{KeyId: k1.keyID, Outcome: 9}, []string{"outcome"}},
			{&resolverv1.ReportCredentialOutcomeRequest{Outcome: reOKOutcome}, []string{"key_id"}},
			{&resolverv1.ReportCredentialOutcomeRequest{KeyId: "k1", Outcome: reOKOutcome, ChatId: "c"}, []string{"key_id", "chat_id"}},
			{&resolverv1.ReportCredentialOutcomeRequest{KeyId: k1.keyID, Outcome: reRateLimited, RetryAfter: durationpb.New(-time.Second)}, []string{"retry_after"}},
			{&resolverv1.ReportCredentialOutcomeRequest{KeyId: k1.keyID, Outcome: reRateLimited, RetryAfter: &durationpb.Duration{Seconds: 1, Nanos: -5}}, []string{"retry_after"}},
		}
		for i, c := range cases {
			err := report(w.AsWorker(), c.req)
			testenv.WantReason(t, err, codes.InvalidArgument, "INVALID_ARGUMENT")
			var got []string
			for _, v := range testenv.BadRequest(err).GetFieldViolations() {
				got = append(got, v.GetField())
			}
			if fmt.Sprint(got) != fmt.Sprint(c.fields) {
				t.Errorf("case %d: violations on %v, want %v", i, got, c.fields)
			}
		}
		s.ok(w, k1)
	})

	t.Run("one key only", func(t *testing.T) {
		w.MustReport(k1.keyID, reUnauthorized, 0)
		var n int
		if err := w.Pool.QueryRow(t.Context(), `SELECT count(*) FROM ai_provider_keys WHERE suspended_at IS NOT NULL OR cooling_until IS NOT NULL`).Scan(&n); err != nil || n != 1 {
			t.Fatalf("%d keys out after one report (%v), want 1", n, err)
		}
		s.ok(w, k2)
		w.setKeyEnabled(k1.keyID, true)
	})

	t.Run("audited", func(t *testing.T) {
		w.MustReport(k2.keyID, reRateLimited, 3*time.Second)
		reAudited(t, w, func(ev *resolverv1.AuditEvent) bool {
			d := ev.GetDetails()
			return ev.GetOutcome() == "OK" && ev.GetTokenId() != "" && d["key_id"] == k2.keyID && d["reported_outcome"] == "RATE_LIMITED" &&
				d["retry_after"] == "3s" && d["state"] == "KEY_STATE_COOLING_DOWN" && d["provider_id"] == s.p.Id && d["credential_source"] == "central" &&
				d["changed"] == "true" && d["cooling_until"] != ""
		})
		w.MustReport(k2.keyID, reOKOutcome, 0)
	})

	t.Run("rate limited", func(t *testing.T) {
		// One token's reports beyond its burst are refused; another token is not held up.
		tok := w.Token(t, "re-reporter-"+reShort(), rbac.WorkerScopes...)
		var limited error
		for range service.ReportBurst + 20 {
			if err := report(w.As(tok), &resolverv1.ReportCredentialOutcomeRequest{KeyId: k2.keyID, Outcome: reOKOutcome}); err != nil {
				limited = err
				break
			}
		}
		info := testenv.WantReason(t, limited, codes.ResourceExhausted, "RATE_LIMITED")
		if info.GetMetadata()["token_id"] == "" || reRetryInfo(limited) <= 0 {
			t.Errorf("RATE_LIMITED metadata %v, RetryInfo %v", info.GetMetadata(), reRetryInfo(limited))
		}
		if _, err := w.Report(k2.keyID, reOKOutcome, 0); err != nil {
			t.Errorf("another token's report: %v", err)
		}
		// Resolutions of the limited token are not limited by its reports.
		if _, err := w.call(w.As(tok), s.chat.Id, "", reChat); err != nil {
			t.Errorf("a resolution of the token over its report rate: %v", err)
		}
	})
}

// reAudited waits (the audit writer batches, at least every 100 ms) until a ReportCredentialOutcome
// event matching want is in the audit trail.
func reAudited(t *testing.T, w *reWorld, want func(*resolverv1.AuditEvent) bool) {
	t.Helper()
	var last []*resolverv1.AuditEvent
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := w.Admin.ListAuditEvents(w.AsAdmin(), &resolverv1.ListAuditEventsRequest{Action: "ReportCredentialOutcome"})
		if err != nil {
			t.Fatal(err)
		}
		last = resp.GetEvents()
		for _, ev := range last {
			if want(ev) {
				return
			}
		}
	}
	t.Errorf("no such report in the audit trail; the reports recorded: %v", last)
}
