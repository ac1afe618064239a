package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/keyring"
)

// The audit phase's trail: resolutions as production writes them, from a fixed population of
// tokens, chats, configs, providers and keys.
const (
	auditTokens    = 50
	auditChats     = 100_000
	auditConfigs   = 200
	auditProviders = 20
	auditKeys      = 1_000
	// auditSeedBatch is the records of one COPY while seeding; two writers seed at once, as two
	// replicas would, each in its own chain.
	auditSeedBatch   = 5_000
	auditSeedWriters = 2
)

var auditPurposes = []string{"chat", "chat", "chat", "chat", "subagent", "subagent", "title", "compaction"}

// auditPopulation is who resolves what.
type auditPopulation struct {
	tokens, chats, configs, providers, keys []uuid.UUID
	fingerprints                            []string
}

func newAuditPopulation(r *rand.Rand) *auditPopulation {
	ids := func(n int) []uuid.UUID {
		out := make([]uuid.UUID, n)
		for i := range out {
			for j := range out[i] {
				out[i][j] = byte(r.UintN(256))
			}
			out[i][6], out[i][8] = out[i][6]&0x0f|0x40, out[i][8]&0x3f|0x80
		}
		return out
	}
	p := &auditPopulation{tokens: ids(auditTokens), chats: ids(auditChats), configs: ids(auditConfigs),
		providers: ids(auditProviders), keys: ids(auditKeys)}
	for range auditKeys {
		p.fingerprints = append(p.fingerprints, fmt.Sprintf("%016x", r.Uint64()))
	}
	return p
}

// resolution is the record of chat's resolution number k at t: the same k gives the same
// resolution (but for its time and request id), so a stream cycling through k repeats each.
func (p *auditPopulation) resolution(chat int, k int, t time.Time, requestID string) db.AuditEvent {
	cfg := (chat + k) % auditConfigs
	key := (chat*7 + k) % auditKeys
	source := "central"
	if key%3 == 0 {
		source = "user"
	}
	return db.AuditEvent{OccurredAt: t, Action: "ResolveModel", TokenID: p.tokens[chat%auditTokens], ChatID: p.chats[chat],
		Outcome: db.OutcomeOK, Resolution: &db.ResolutionDetails{Purpose: auditPurposes[k%len(auditPurposes)], RequestID: requestID,
			Resolved: true, ConfigID: p.configs[cfg], ProviderID: p.providers[cfg%auditProviders], CredentialSource: source,
			KeyID: p.keys[key], Fingerprint: p.fingerprints[key]}}
}

// requestID is a request id as a worker sends it (a UUID's text).
func requestID(r *rand.Rand) string {
	var u uuid.UUID
	for i := range u {
		u[i] = byte(r.UintN(256))
	}
	return u.String()
}

// seededTrail is what seedAuditTrail wrote.
type seededTrail struct {
	pop           *auditPopulation
	first         time.Time // the oldest seeded day
	days, records int
	elapsed       time.Duration // writing the records
	vacuum        time.Duration // VACUUM (ANALYZE) afterwards
}

// seedAuditTrail writes records over the days days before today (UTC), each in its own partition,
// through the store's COPY (db.Store.InsertAuditEvents: the records are chained as the writer
// chains them), two writers at once, day by day so that ids grow with time as in production.
func seedAuditTrail(ctx context.Context, pool *pgxpool.Pool, kr *keyring.Keyring, records, days int, logf func(string, ...any)) (*seededTrail, error) {
	today := time.Now().UTC().Truncate(24 * time.Hour)
	s := &seededTrail{pop: newAuditPopulation(rand.New(rand.NewPCG(1, 2))), first: today.AddDate(0, 0, -days), days: days}
	if _, err := db.New(pool, kr).EnsureAuditPartitions(ctx, s.first, days-1); err != nil {
		return nil, err
	}
	perDay := records / days
	batches := (perDay + auditSeedBatch - 1) / auditSeedBatch
	step := 24 * time.Hour / time.Duration(perDay)
	stores := make([]*db.Store, auditSeedWriters)
	for i := range stores {
		stores[i] = db.New(pool, kr)
	}
	start := time.Now()
	for d := range days {
		day := s.first.AddDate(0, 0, d)
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			first error
		)
		for w := range auditSeedWriters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(d), uint64(w)))
				events := make([]db.AuditEvent, 0, auditSeedBatch)
				for b := w; b < batches; b += auditSeedWriters {
					events = events[:0]
					for i := b * auditSeedBatch; i < min(perDay, (b+1)*auditSeedBatch); i++ {
						events = append(events, s.pop.resolution(r.IntN(auditChats), r.IntN(64), day.Add(time.Duration(i)*step), requestID(r)))
					}
					if err := stores[w].InsertAuditEvents(ctx, events); err != nil {
						mu.Lock()
						first = err
						mu.Unlock()
						return
					}
				}
			}()
		}
		wg.Wait()
		if first != nil {
			return nil, fmt.Errorf("seed the audit trail's day %s: %w", day.Format(time.DateOnly), first)
		}
		s.records += perDay
		if (d+1)%5 == 0 || d == days-1 {
			el := time.Since(start)
			logf("audit trail: %d of %d days seeded, %d records, %s (%.0f records/s)", d+1, days, s.records,
				el.Round(time.Second), float64(s.records)/el.Seconds())
		}
	}
	s.elapsed = time.Since(start)
	// Days-old partitions have long been vacuumed in production: vacuum them now, rather than
	// let autovacuum work through them during the measurements.
	t := time.Now()
	if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) audit_events"); err != nil {
		return nil, err
	}
	s.vacuum = time.Since(t)
	return s, nil
}
