package resolve

import (
	"testing"
	"time"
)

// docs/CONTRACT.md §17: what a report does to a key's stored health, as literal cases.
func TestApplyReport(t *testing.T) {
	now := t0
	never := HealthRecord{}
	cooling := HealthRecord{CoolingUntil: now.Add(time.Minute), LastOutcome: OutcomeRateLimited, LastReportAt: now.Add(-time.Second)}
	ended := HealthRecord{CoolingUntil: now.Add(-time.Minute), LastOutcome: OutcomeRateLimited, LastReportAt: now.Add(-2 * time.Minute)}
	suspended := HealthRecord{SuspendedAt: now.Add(-time.Hour), SuspendedReason: OutcomeUnauthorized, LastOutcome: OutcomeUnauthorized, LastReportAt: now.Add(-time.Hour)}
	cases := []struct {
		name        string
		in          HealthRecord
		central     bool
		outcome     Outcome
		retry       time.Duration
		wantCooling time.Time
		wantSusp    bool
		changed     bool
		write       bool
	}{
		{"rate limited, default 30s", never, true, OutcomeRateLimited, 0, now.Add(30 * time.Second), false, true, true},
		{"rate limited, retry_after", never, true, OutcomeRateLimited, 7 * time.Second, now.Add(7 * time.Second), false, true, true},
		{"rate limited, cut to 10 minutes", never, true, OutcomeRateLimited, time.Hour, now.Add(10 * time.Minute), false, true, true},
		{"quota, default 1h", never, true, OutcomeQuotaExhausted, 0, now.Add(time.Hour), false, true, true},
		{"quota, cut to 24h", never, true, OutcomeQuotaExhausted, 72 * time.Hour, now.Add(24 * time.Hour), false, true, true},
		{"a shorter cooldown keeps the longer", cooling, true, OutcomeRateLimited, 10 * time.Second, now.Add(time.Minute), false, false, false},
		{"less than a second longer keeps it (a burst of reports)", cooling, true, OutcomeRateLimited, time.Minute + 500*time.Millisecond, now.Add(time.Minute), false, false, false},
		{"a longer one extends it", cooling, true, OutcomeQuotaExhausted, 0, now.Add(time.Hour), false, true, true},
		{"after a cooldown ended, a new one", ended, true, OutcomeRateLimited, 5 * time.Second, now.Add(5 * time.Second), false, true, true},
		{"unauthorized suspends", cooling, true, OutcomeUnauthorized, 0, now.Add(time.Minute), true, true, true},
		{"unauthorized again: no change, the last report was an hour ago", suspended, true, OutcomeUnauthorized, 0, time.Time{}, true, false, true},
		{"ok ends a cooldown", cooling, true, OutcomeOK, 0, time.Time{}, false, true, true},
		{"ok on an available key: recorded when it is news", ended, true, OutcomeOK, 0, now.Add(-time.Minute), false, false, true},
		{"ok keeps a suspension", suspended, true, OutcomeOK, 0, time.Time{}, true, false, true},
		{"a user's key: unauthorized marks it invalid", never, false, OutcomeUnauthorized, 0, time.Time{}, true, true, true},
		{"a user's key: rate limited is recorded only", never, false, OutcomeRateLimited, time.Minute, time.Time{}, false, false, true},
		{"a user's key: ok keeps it invalid", suspended, false, OutcomeOK, 0, time.Time{}, true, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, changed, write := ApplyReport(c.in, c.central, c.outcome, c.retry, now)
			if !out.CoolingUntil.Equal(c.wantCooling) || out.SuspendedAt.IsZero() == c.wantSusp || changed != c.changed || write != c.write {
				t.Fatalf("ApplyReport = %+v changed=%v write=%v; want cooling %v suspended %v changed=%v write=%v",
					out, changed, write, c.wantCooling, c.wantSusp, c.changed, c.write)
			}
			if c.wantSusp && out.SuspendedReason != OutcomeUnauthorized {
				t.Errorf("suspended_reason %q", out.SuspendedReason)
			}
			if c.wantSusp && !c.in.SuspendedAt.IsZero() && !out.SuspendedAt.Equal(c.in.SuspendedAt) {
				t.Errorf("a suspension's time moved: %v → %v", c.in.SuspendedAt, out.SuspendedAt)
			}
			if write && (out.LastOutcome != c.outcome || !out.LastReportAt.Equal(now)) {
				t.Errorf("a written report's last report is %s at %v", out.LastOutcome, out.LastReportAt)
			}
			if !write && out != c.in {
				t.Errorf("nothing to write, yet the record changed: %+v → %+v", c.in, out)
			}
		})
	}
}

// A burst of identical reports on an available key writes once per LastReportEvery.
func TestApplyReportThrottlesTheLastReport(t *testing.T) {
	r := HealthRecord{}
	writes := 0
	for i := range 100 {
		now := t0.Add(time.Duration(i) * 200 * time.Millisecond) // 20 s of reports, 5 a second
		var write bool
		r, _, write = ApplyReport(r, true, OutcomeOK, 0, now)
		if write {
			writes++
		}
	}
	if writes != 2 {
		t.Fatalf("%d writes for 20 s of OK reports, want 2 (one per %s)", writes, LastReportEvery)
	}
	// Another outcome is news at once.
	if _, _, write := ApplyReport(r, false, OutcomeRateLimited, 0, r.LastReportAt.Add(time.Millisecond)); !write {
		t.Error("a different outcome was not written")
	}
}

func TestCooldownOf(t *testing.T) {
	for _, c := range []struct {
		o     Outcome
		retry time.Duration
		want  time.Duration
	}{
		{OutcomeRateLimited, 0, RateLimitedCooldown}, {OutcomeRateLimited, -time.Second, RateLimitedCooldown},
		{OutcomeRateLimited, time.Millisecond, time.Millisecond}, {OutcomeRateLimited, time.Hour, MaxRateLimitedCooldown},
		{OutcomeQuotaExhausted, 0, QuotaExhaustedCooldown}, {OutcomeQuotaExhausted, 1<<63 - 1, MaxQuotaExhaustedCooldown},
		{OutcomeUnauthorized, time.Hour, 0}, {OutcomeOK, time.Hour, 0}, {"", 0, 0},
	} {
		if got := CooldownOf(c.o, c.retry); got != c.want {
			t.Errorf("CooldownOf(%q, %v) = %v, want %v", c.o, c.retry, got, c.want)
		}
	}
}
