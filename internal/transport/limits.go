package transport

import (
	"fmt"
	"time"

	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/resolverd/resolverd/internal/cache"
	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/rbac"
)

// CallerLimits is a rate per caller — its token, or its workload identity's subject — on one
// replica, refused with RATE_LIMITED and a RetryInfo (docs/CONTRACT.md §9): serve's --rate-limit
// over every call, and the rate of a caller's credential reports (§17).
type CallerLimits struct {
	limit    RateLimit
	what     string // what is counted, for the refusal: "requests", "credential reports"
	limiters *cache.LRU[uuid.UUID, *rate.Limiter]
}

// NewCallerLimits returns limits of limit for each caller (a Burst of 0: twice the rate, at least
// one); what names what they count. Zero PerSecond means no limit.
func NewCallerLimits(limit RateLimit, what string) *CallerLimits {
	if limit.Burst <= 0 {
		limit.Burst = max(1, int(2*limit.PerSecond))
	}
	return &CallerLimits{limit: limit, what: what, limiters: cache.New[uuid.UUID, *rate.Limiter](10_000, time.Hour)}
}

// subjectLimits is the namespace of the keys of workload identities' limiters (a UUID derived
// from the subject, beside the token ids).
var subjectLimits = uuid.MustParse("6f1d6c8e-4b1f-4c55-9a51-0d6c2b1e7a30")

// Allow takes one from the caller's budget, or says how long until there is one.
func (l *CallerLimits) Allow(p *rbac.Principal) error {
	if l.limit.PerSecond <= 0 {
		return nil
	}
	key, who := p.TokenID, []string{"token_id", p.TokenID.String()}
	if p.Subject != "" {
		key, who = uuid.NewSHA1(subjectLimits, []byte(p.Subject)), []string{"subject", p.Subject}
	}
	lim, ok := l.limiters.Get(key)
	if !ok {
		lim = rate.NewLimiter(rate.Limit(l.limit.PerSecond), l.limit.Burst)
		l.limiters.Put(key, lim)
	}
	if lim.Allow() {
		return nil
	}
	wait := time.Duration(float64(time.Second) / l.limit.PerSecond)
	e := errs.New(errs.RateLimited, fmt.Sprintf("the caller is over its rate of %g %s per second; retry after %s",
		l.limit.PerSecond, l.what, wait.Round(time.Millisecond)), who...)
	e.RetryAfter = wait
	return e
}
