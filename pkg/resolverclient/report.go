package resolverclient

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// Outcome is what happened when the worker called a provider with a credential a resolution gave it
// (docs/CONTRACT.md §17). Report tells resolverd, which then stops handing out a key the provider
// rate limits, has no quota left for, or refuses, on every replica within a second.
type Outcome int

const (
	// OutcomeNone: nothing to report (a 5xx, a 400, a network failure: they say nothing about the key).
	OutcomeNone Outcome = iota
	// OutcomeRateLimited: the provider refused the call for the key's rate (HTTP 429). A central key
	// cools down for the Retry-After (default 30 s, at most 10 minutes).
	OutcomeRateLimited
	// OutcomeQuotaExhausted: the key's quota or credit is spent (HTTP 402). A central key cools down
	// for the Retry-After (default 1 hour, at most 24 hours).
	OutcomeQuotaExhausted
	// OutcomeUnauthorized: the provider refused the key itself (HTTP 401, 403). A central key is
	// suspended until an admin enables it again or rotates; the owner's own key is marked invalid
	// until they put a new one.
	OutcomeUnauthorized
	// OutcomeOK: the call succeeded (HTTP 2xx). It ends a central key's cooldown early; report it
	// only for a call you started after the key was reported (say, a probe): a call that was
	// already in flight when another worker was rate limited would end that cooldown at once.
	OutcomeOK
)

var outcomeProto = map[Outcome]resolverv1.CredentialOutcome{
	OutcomeRateLimited:    resolverv1.CredentialOutcome_CREDENTIAL_OUTCOME_RATE_LIMITED,
	OutcomeQuotaExhausted: resolverv1.CredentialOutcome_CREDENTIAL_OUTCOME_QUOTA_EXHAUSTED,
	OutcomeUnauthorized:   resolverv1.CredentialOutcome_CREDENTIAL_OUTCOME_UNAUTHORIZED,
	OutcomeOK:             resolverv1.CredentialOutcome_CREDENTIAL_OUTCOME_OK,
}

// String is none, rate_limited, quota_exhausted, unauthorized or ok.
func (o Outcome) String() string {
	switch o {
	case OutcomeRateLimited:
		return "rate_limited"
	case OutcomeQuotaExhausted:
		return "quota_exhausted"
	case OutcomeUnauthorized:
		return "unauthorized"
	case OutcomeOK:
		return "ok"
	}
	return "none"
}

// OutcomeFromHTTP maps a provider's HTTP answer to what to report: 429 → OutcomeRateLimited, 402 →
// OutcomeQuotaExhausted, 401 and 403 → OutcomeUnauthorized, 2xx → OutcomeOK, anything else →
// OutcomeNone. retryAfter is the answer's Retry-After (delay-seconds, or an HTTP date from now;
// 0 when absent, unreadable or past) for the outcomes that cool a key down.
//
// Some providers say "quota exhausted" with a 429 and a code in the body (OpenAI's
// insufficient_quota): a worker that reads the body can report OutcomeQuotaExhausted itself.
func OutcomeFromHTTP(status int, header http.Header) (outcome Outcome, retryAfter time.Duration) {
	switch {
	case status == http.StatusTooManyRequests:
		outcome = OutcomeRateLimited
	case status == http.StatusPaymentRequired:
		outcome = OutcomeQuotaExhausted
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return OutcomeUnauthorized, 0
	case status >= 200 && status <= 299:
		return OutcomeOK, 0
	default:
		return OutcomeNone, 0
	}
	return outcome, parseRetryAfter(header.Get("Retry-After"), time.Now())
}

// parseRetryAfter reads an HTTP Retry-After value (RFC 9110 §10.2.3): delay-seconds or an
// HTTP-date, as a delay from now; 0 when it is absent, malformed or in the past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseUint(v, 10, 63); err == nil {
		if n > uint64(1<<62/time.Second) { // would overflow: the server cuts it anyway
			n = uint64(1 << 62 / time.Second)
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// KeyReport is what resolverd made of a report.
type KeyReport struct {
	KeyID      string
	Source     CredentialSource // central or user
	ProviderID string
	// State is available, cooling_down or suspended (a user's key: marked invalid).
	State string
	// CoolingUntil is when the key's cooldown ends; zero when it is not cooling down.
	CoolingUntil time.Time
	// Changed is false when the report changed nothing resolutions see (it is recorded anyway).
	Changed bool
}

// Report tells resolverd what happened when the worker used the key keyID (Credential.KeyID of a
// Resolution): outcome, and for rate limits and spent quotas the provider's Retry-After (0: the
// outcome's default). It needs the scope credential:report. Errors are *Error, retried like
// Resolve's (UNAVAILABLE only); a report over the caller's rate is RATE_LIMITED, which a worker may
// ignore: other workers' reports of the same key have the same effect.
//
// Ambient credentials have no key: there is nothing to report for them.
func (c *Client) Report(ctx context.Context, keyID string, outcome Outcome, retryAfter time.Duration) (*KeyReport, error) {
	o, ok := outcomeProto[outcome]
	if !ok {
		return nil, errors.New("resolverclient: Report needs an outcome other than OutcomeNone")
	}
	req := &resolverv1.ReportCredentialOutcomeRequest{KeyId: keyID, Outcome: o}
	if retryAfter > 0 {
		req.RetryAfter = durationpb.New(retryAfter)
	}
	resp, err := call(ctx, c, func(ctx context.Context) (*resolverv1.ReportCredentialOutcomeResponse, error) {
		return c.rpc.ReportCredentialOutcome(ctx, req)
	})
	if err != nil {
		return nil, err
	}
	h := resp.GetHealth()
	r := &KeyReport{KeyID: resp.GetKeyId(), ProviderID: resp.GetProviderId(), Changed: resp.GetChanged(),
		State: strings.ToLower(strings.TrimPrefix(h.GetState().String(), "KEY_STATE_"))}
	switch resp.GetSource() {
	case resolverv1.CredentialSource_CREDENTIAL_SOURCE_CENTRAL:
		r.Source = CredentialSourceCentral
	case resolverv1.CredentialSource_CREDENTIAL_SOURCE_USER:
		r.Source = CredentialSourceUser
	}
	if h.GetCoolingUntil() != nil {
		r.CoolingUntil = h.GetCoolingUntil().AsTime()
	}
	return r, nil
}
