package service

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/resolverd/resolverd/internal/resolve"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// Key pools (docs/CONTRACT.md §2.2, §17): the provider's central_key_policy, the outcomes workers
// report, and each key's health as the API shows it.

// centralKeyPolicy validates a policy; CENTRAL_KEY_POLICY_UNSPECIFIED gives unset ("").
func (v *violations) centralKeyPolicy(field string, p resolverv1.CentralKeyPolicy) resolve.CentralKeyPolicy {
	switch p {
	case resolverv1.CentralKeyPolicy_CENTRAL_KEY_POLICY_UNSPECIFIED:
		return ""
	case resolverv1.CentralKeyPolicy_CENTRAL_KEY_POLICY_OLDEST:
		return resolve.PolicyOldest
	case resolverv1.CentralKeyPolicy_CENTRAL_KEY_POLICY_ROUND_ROBIN:
		return resolve.PolicyRoundRobin
	}
	v.add(field, "must be CENTRAL_KEY_POLICY_OLDEST or CENTRAL_KEY_POLICY_ROUND_ROBIN")
	return ""
}

func centralKeyPolicyProto(p resolve.CentralKeyPolicy) resolverv1.CentralKeyPolicy {
	if p == resolve.PolicyRoundRobin {
		return resolverv1.CentralKeyPolicy_CENTRAL_KEY_POLICY_ROUND_ROBIN
	}
	return resolverv1.CentralKeyPolicy_CENTRAL_KEY_POLICY_OLDEST
}

var outcomes = map[resolverv1.CredentialOutcome]resolve.Outcome{
	resolverv1.CredentialOutcome_CREDENTIAL_OUTCOME_RATE_LIMITED:    resolve.OutcomeRateLimited,
	resolverv1.CredentialOutcome_CREDENTIAL_OUTCOME_QUOTA_EXHAUSTED: resolve.OutcomeQuotaExhausted,
	resolverv1.CredentialOutcome_CREDENTIAL_OUTCOME_UNAUTHORIZED:    resolve.OutcomeUnauthorized,
	resolverv1.CredentialOutcome_CREDENTIAL_OUTCOME_OK:              resolve.OutcomeOK,
}

// outcome validates a reported outcome: UNSPECIFIED, or a value this server does not know, is
// invalid.
func (v *violations) outcome(field string, o resolverv1.CredentialOutcome) resolve.Outcome {
	if out, ok := outcomes[o]; ok {
		return out
	}
	v.add(field, "must be CREDENTIAL_OUTCOME_RATE_LIMITED, CREDENTIAL_OUTCOME_QUOTA_EXHAUSTED, CREDENTIAL_OUTCOME_UNAUTHORIZED or CREDENTIAL_OUTCOME_OK")
	return ""
}

func outcomeProto(o resolve.Outcome) resolverv1.CredentialOutcome {
	for p, out := range outcomes {
		if out == o {
			return p
		}
	}
	return resolverv1.CredentialOutcome_CREDENTIAL_OUTCOME_UNSPECIFIED
}

// retryAfter validates an optional duration: unset is 0; a malformed or negative one is invalid.
func (v *violations) retryAfter(field string, d *durationpb.Duration) time.Duration {
	if d == nil {
		return 0
	}
	if err := d.CheckValid(); err != nil || d.GetSeconds() < 0 || d.GetNanos() < 0 {
		v.add(field, "must be a valid duration of 0 or more (like 30s); 0 or unset means the outcome's default")
		return 0
	}
	return d.AsDuration() // saturates; the cooldown is cut to its most anyway
}

// healthProto shows a key's stored health at now: cooling_until only while it lasts.
func healthProto(r resolve.HealthRecord, now time.Time) *resolverv1.KeyHealth {
	h := &resolverv1.KeyHealth{State: resolverv1.KeyState_KEY_STATE_AVAILABLE}
	if now.Before(r.CoolingUntil) {
		h.State, h.CoolingUntil = resolverv1.KeyState_KEY_STATE_COOLING_DOWN, timestamp(r.CoolingUntil)
	}
	if !r.SuspendedAt.IsZero() {
		h.State, h.SuspendedAt = resolverv1.KeyState_KEY_STATE_SUSPENDED, timestamp(r.SuspendedAt)
		h.SuspendedReason = outcomeProto(r.SuspendedReason).String()
	}
	if r.LastOutcome != "" {
		h.LastReportOutcome, h.LastReportAt = outcomeProto(r.LastOutcome), timestamp(r.LastReportAt)
	}
	return h
}
