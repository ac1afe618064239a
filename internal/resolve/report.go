package resolve

import "time"

// Outcome is what happened when a worker called a provider with a key a resolution gave it
// (ResolverService/ReportCredentialOutcome, docs/CONTRACT.md §17). The values are the stored ones
// (ai_provider_keys.last_report_outcome), CredentialOutcome's names without their prefix.
type Outcome string

const (
	OutcomeRateLimited    Outcome = "RATE_LIMITED"
	OutcomeQuotaExhausted Outcome = "QUOTA_EXHAUSTED"
	OutcomeUnauthorized   Outcome = "UNAUTHORIZED"
	OutcomeOK             Outcome = "OK"
)

// How long a reported key cools down (docs/CONTRACT.md §17): the report's retry_after, or the
// default when it gives none, cut to the most.
const (
	RateLimitedCooldown       = 30 * time.Second
	MaxRateLimitedCooldown    = 10 * time.Minute
	QuotaExhaustedCooldown    = time.Hour
	MaxQuotaExhaustedCooldown = 24 * time.Hour
)

// Writes a report may skip: a cooldown is extended only by at least CooldownStep, and a report
// that changes nothing resolutions see rewrites the stored last report only when its outcome
// differs or the stored one is LastReportEvery old. Every write of a key row is published to every
// replica (and drops its cache entry there), so a burst of identical reports must not become a
// burst of writes; each report is still in the audit trail.
const (
	CooldownStep    = time.Second
	LastReportEvery = 10 * time.Second
)

// HealthRecord is a key's stored health: its health columns (migration 15).
type HealthRecord struct {
	// CoolingUntil: a central key is skipped until then; zero when it never cooled down (a time
	// in the past is a cooldown that ended).
	CoolingUntil time.Time
	// SuspendedAt: when a central key was suspended, or a user's key marked invalid; zero when
	// it is not. SuspendedReason is the outcome that did it.
	SuspendedAt     time.Time
	SuspendedReason Outcome
	// LastOutcome is the last report's outcome ("" when there was none), LastReportAt its time.
	LastOutcome  Outcome
	LastReportAt time.Time
}

// Health is what the rules use of r.
func (r HealthRecord) Health() Health {
	return Health{CoolingUntil: r.CoolingUntil, Suspended: !r.SuspendedAt.IsZero()}
}

// CooldownOf is how long a central key reported with outcome cools down, given the report's
// retryAfter (0: the outcome's default); 0 for the outcomes that do not cool a key down.
func CooldownOf(outcome Outcome, retryAfter time.Duration) time.Duration {
	def, most := time.Duration(0), time.Duration(0)
	switch outcome {
	case OutcomeRateLimited:
		def, most = RateLimitedCooldown, MaxRateLimitedCooldown
	case OutcomeQuotaExhausted:
		def, most = QuotaExhaustedCooldown, MaxQuotaExhaustedCooldown
	default:
		return 0
	}
	if retryAfter <= 0 {
		return def
	}
	return min(retryAfter, most)
}

// ApplyReport is what a report does to a key's stored health at now (docs/CONTRACT.md §17):
//
//   - a central key: RATE_LIMITED and QUOTA_EXHAUSTED make it cool down until now + CooldownOf
//     (a cooldown already lasting longer stays); UNAUTHORIZED suspends it; OK ends a cooldown (a
//     suspension stays);
//   - a user's key (central false): UNAUTHORIZED marks it invalid; other outcomes are only recorded.
//
// changed says whether resolutions see a difference; write whether the row must be written at all
// (changed, or a last report worth recording: see LastReportEvery).
func ApplyReport(r HealthRecord, central bool, outcome Outcome, retryAfter time.Duration, now time.Time) (out HealthRecord, changed, write bool) {
	out = r
	switch {
	case outcome == OutcomeUnauthorized && r.SuspendedAt.IsZero():
		out.SuspendedAt, out.SuspendedReason, changed = now, OutcomeUnauthorized, true
	case !central:
	case outcome == OutcomeRateLimited || outcome == OutcomeQuotaExhausted:
		if until := now.Add(CooldownOf(outcome, retryAfter)); !until.Before(r.CoolingUntil.Add(CooldownStep)) {
			out.CoolingUntil, changed = until, true
		}
	case outcome == OutcomeOK && now.Before(r.CoolingUntil):
		out.CoolingUntil, changed = time.Time{}, true
	}
	write = changed || r.LastOutcome != outcome || !now.Before(r.LastReportAt.Add(LastReportEvery))
	if write {
		out.LastOutcome, out.LastReportAt = outcome, now
	}
	return out, changed, write
}
