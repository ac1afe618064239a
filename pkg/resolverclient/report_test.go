package resolverclient_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/testenv"
	rc "github.com/resolverd/resolverd/pkg/resolverclient"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

func TestOutcomeFromHTTP(t *testing.T) {
	inTwoMinutes := time.Now().Add(2 * time.Minute).UTC().Format(http.TimeFormat)
	past := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	cases := []struct {
		status     int
		retryAfter string
		want       rc.Outcome
		min, max   time.Duration
	}{
		{429, "", rc.OutcomeRateLimited, 0, 0},
		{429, "17", rc.OutcomeRateLimited, 17 * time.Second, 17 * time.Second},
		{429, " 3 ", rc.OutcomeRateLimited, 3 * time.Second, 3 * time.Second},
		{429, inTwoMinutes, rc.OutcomeRateLimited, 110 * time.Second, 2 * time.Minute},
		{429, past, rc.OutcomeRateLimited, 0, 0},
		{429, "soon", rc.OutcomeRateLimited, 0, 0},
		{429, "-5", rc.OutcomeRateLimited, 0, 0},
		{429, "1.5", rc.OutcomeRateLimited, 0, 0},
		{429, "99999999999999999999", rc.OutcomeRateLimited, 0, 0}, // not a number Go can hold: unreadable
		{429, "9999999999999", rc.OutcomeRateLimited, 1000 * time.Hour, 1 << 62},
		{402, "3600", rc.OutcomeQuotaExhausted, time.Hour, time.Hour},
		{402, "", rc.OutcomeQuotaExhausted, 0, 0},
		{401, "30", rc.OutcomeUnauthorized, 0, 0},
		{403, "", rc.OutcomeUnauthorized, 0, 0},
		{200, "30", rc.OutcomeOK, 0, 0},
		{204, "", rc.OutcomeOK, 0, 0},
		{299, "", rc.OutcomeOK, 0, 0},
		{300, "", rc.OutcomeNone, 0, 0},
		{400, "", rc.OutcomeNone, 0, 0},
		{404, "", rc.OutcomeNone, 0, 0},
		{500, "30", rc.OutcomeNone, 0, 0},
		{503, "30", rc.OutcomeNone, 0, 0},
		{0, "", rc.OutcomeNone, 0, 0},
	}
	for _, c := range cases {
		h := http.Header{}
		if c.retryAfter != "" {
			h.Set("Retry-After", c.retryAfter)
		}
		got, d := rc.OutcomeFromHTTP(c.status, h)
		if got != c.want || d < c.min || d > c.max {
			t.Errorf("OutcomeFromHTTP(%d, Retry-After %q) = %s, %v; want %s, %v..%v", c.status, c.retryAfter, got, d, c.want, c.min, c.max)
		}
	}
	if got, _ := rc.OutcomeFromHTTP(429, nil); got != rc.OutcomeRateLimited {
		t.Errorf("a nil header: %s", got)
	}
}

// TestReportAgainstTheRealServer: the loop a worker runs — resolve, call, report on failure,
// resolve again — against a real resolverd: the next resolution answers with another key.
func TestReportAgainstTheRealServer(t *testing.T) {
	e := testenv.New(t, testenv.Options{})
	w := &world{t: t, e: e}
	p := w.provider("openai", "rc-pool", resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL)
	var keys []string
	for _, k := range []string{"sk-rc-pool-1", "sk-rc-pool-2"} {
		added, err := e.Admin.AddProviderKey(e.AsAdmin(), &resolverv1.AddProviderKeyRequest{ProviderId: p.GetId(), ApiKey: k})
		w.must(err)
		keys = append(keys, added.GetId())
	}
	owner := w.user("rc-pool-owner")
	cfg := w.config(p.GetId(), "rc-pool-model", true)
	chat, err := e.Admin.PutChat(e.AsAdmin(), &resolverv1.PutChatRequest{Id: uuid.NewString(), OwnerId: owner, ModelConfigId: cfg.GetId()})
	w.must(err)
	c := dial(t, e.Addr, rc.WithToken(e.WorkerToken))
	ctx := context.Background()

	res, err := c.Resolve(ctx, chat.GetId(), "", rc.PurposeChat)
	if err != nil || res.Credential.KeyID != keys[0] {
		t.Fatalf("first resolution: %+v, %v", res, err)
	}
	outcome, retry := rc.OutcomeFromHTTP(http.StatusTooManyRequests, http.Header{"Retry-After": []string{"120"}})
	rep, err := c.Report(ctx, res.Credential.KeyID, outcome, retry)
	if err != nil {
		t.Fatal(err)
	}
	if rep.KeyID != keys[0] || rep.Source != rc.CredentialSourceCentral || rep.ProviderID != p.GetId() || rep.State != "cooling_down" || !rep.Changed ||
		time.Until(rep.CoolingUntil) < 110*time.Second || time.Until(rep.CoolingUntil) > 121*time.Second {
		t.Fatalf("report: %+v", rep)
	}
	if res, err = c.Resolve(ctx, chat.GetId(), "", rc.PurposeChat); err != nil || res.Credential.KeyID != keys[1] {
		t.Fatalf("after the report: %+v, %v", res, err)
	}
	// Both keys cooling down: CREDENTIALS_COOLING_DOWN, temporary, with the time to wait.
	if _, err := c.Report(ctx, keys[1], rc.OutcomeQuotaExhausted, 0); err != nil {
		t.Fatal(err)
	}
	_, err = c.Resolve(ctx, chat.GetId(), "", rc.PurposeChat)
	if e := asError(t, err); !errors.Is(err, rc.ErrCredentialsCoolingDown) || !e.Temporary() || e.RetryAfter < 100*time.Second || e.Attempts != 1 {
		t.Fatalf("every key cooling down: %+v", e)
	}
	// The owner's key reported refused: the central key again, and the decision says why.
	if _, err := c.Report(ctx, keys[0], rc.OutcomeOK, 0); err != nil {
		t.Fatal(err)
	}
	own, err := e.Admin.PutUserProviderKey(e.AsAdmin(), &resolverv1.PutUserProviderKeyRequest{UserId: owner, AiProviderId: p.GetId(), ApiKey: "sk-rc-pool-own"})
	w.must(err)
	if rep, err := c.Report(ctx, own.GetId(), rc.OutcomeUnauthorized, 0); err != nil || rep.Source != rc.CredentialSourceUser || rep.State != "suspended" {
		t.Fatalf("report on the owner's key: %+v, %v", rep, err)
	}
	if res, err = c.Resolve(ctx, chat.GetId(), "", rc.PurposeChat); err != nil || res.Credential.KeyID != keys[0] || res.Decision.UserKeySkippedReason != "USER_KEY_INVALID" {
		t.Fatalf("with the owner's key invalid: %+v, %v", res, err)
	}

	// Refusals: nothing to report, an unknown key, a token without credential:report.
	if _, err := c.Report(ctx, keys[0], rc.OutcomeNone, 0); err == nil {
		t.Error("OutcomeNone was reported")
	}
	if _, err := c.Report(ctx, uuid.NewString(), rc.OutcomeUnauthorized, 0); !errors.Is(err, rc.ErrNotFound) {
		t.Errorf("an unknown key: %v", err)
	}
	reader := dial(t, e.Addr, rc.WithToken(e.Token(t, "rc-reader", "chat:read")))
	if _, err := reader.Report(ctx, keys[0], rc.OutcomeUnauthorized, 0); !errors.Is(err, rc.ErrMissingScope) || asError(t, err).Scope() != "credential:report" {
		t.Errorf("without credential:report: %v", err)
	}
}
