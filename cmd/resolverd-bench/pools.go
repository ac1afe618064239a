package main

// Key pools (docs/CONTRACT.md §2.2, §17) in `make bench`: a round-robin provider in the seeded data,
// resolved in phases of their own beside the oldest-key phases (the warm cost should not move), and
// the time a worker's report on one replica takes to reach every replica.

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/resolve"
	"github.com/resolverd/resolverd/pkg/secret"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// poolSet is the seeded data of the key-pool phases.
type poolSet struct {
	rrChats []uuid.UUID // chats on a config of a round-robin provider with three central keys
	// The report trials rate-limit reportKeys[0] and watch every replica move to reportKeys[1].
	reportChat uuid.UUID
	reportKeys [2]uuid.UUID
}

// seedPools adds a round-robin provider with three keys and warmChats chats on it, and an
// oldest-key provider with two keys and one chat for the report trials. The round-robin provider
// is BYOK-optional like the warm set's (its owners have no key of their own), so a resolution does
// the same work in both phases but for the choice among the keys.
func seedPools(ctx context.Context, s *db.Store, pool *pgxpool.Pool) (*poolSet, error) {
	ps := &poolSet{}
	rr, err := s.CreateProvider(ctx, resolve.Provider{ID: uuid.New(), Type: "anthropic", Name: "bench-rr", Enabled: true,
		BYOKPolicy: resolve.BYOKOptional, CentralKeyPolicy: resolve.PolicyRoundRobin})
	if err != nil {
		return nil, err
	}
	for i := range 3 {
		if _, err := s.AddProviderKey(ctx, uuid.New(), rr.ID, secret.New(fmt.Sprintf("sk-bench-rr-%d", i)), true); err != nil {
			return nil, err
		}
	}
	rrCfg, err := s.CreateModelConfig(ctx, resolve.ModelConfig{ID: uuid.New(), ProviderID: rr.ID, Model: "bench-rr", Enabled: true,
		ContextLimit: 200000, CompressionThreshold: 70, Options: []byte(`{"temperature": 0.2, "max_tokens": 4096}`)})
	if err != nil {
		return nil, err
	}
	rep, err := s.CreateProvider(ctx, resolve.Provider{ID: uuid.New(), Type: "openai", Name: "bench-report", Enabled: true, BYOKPolicy: resolve.BYOKDisabled})
	if err != nil {
		return nil, err
	}
	for i := range ps.reportKeys {
		k, err := s.AddProviderKey(ctx, uuid.New(), rep.ID, secret.New(fmt.Sprintf("sk-bench-report-%d", i)), true)
		if err != nil {
			return nil, err
		}
		ps.reportKeys[i] = k.ID
	}
	repCfg, err := s.CreateModelConfig(ctx, resolve.ModelConfig{ID: uuid.New(), ProviderID: rep.ID, Model: "bench-report", Enabled: true,
		ContextLimit: 128000, CompressionThreshold: 70, Options: []byte(`{}`)})
	if err != nil {
		return nil, err
	}
	var users, chats [][]any
	for i := range warmChats + 1 {
		u, c := uuid.New(), uuid.New()
		users = append(users, []any{u, fmt.Sprintf("pool%d", i)})
		cfg := rrCfg.ID
		if i == warmChats {
			cfg, ps.reportChat = repCfg.ID, c
		} else {
			ps.rrChats = append(ps.rrChats, c)
		}
		chats = append(chats, []any{c, u, cfg})
	}
	conn := pool.Config().ConnConfig.ConnString()
	if err := copyRows(ctx, conn, "users", []string{"id", "username"}, users); err != nil {
		return nil, err
	}
	if err := copyRows(ctx, conn, "chats", []string{"id", "owner_id", "last_model_config_id"}, chats); err != nil {
		return nil, err
	}
	return ps, nil
}

// reportPropagation times, over o.trials, how long after a RATE_LIMITED report answered on one
// replica (each trial another) every replica answers the report chat with the provider's other key.
// An OK report ends the cooldown between trials.
func reportPropagation(ctx context.Context, o options, auth context.Context, ps *poolSet, servers []*replica, r *report, logf func(string, ...any)) error {
	logf("report propagation: %d trials across %d replicas", o.trials, len(servers))
	clients := make([]resolverv1.ResolverServiceClient, len(servers))
	for i, s := range servers {
		cs, err := dial(s.addr, 1)
		if err != nil {
			return err
		}
		defer closeAll(cs)
		clients[i] = resolverv1.NewResolverServiceClient(cs[0])
	}
	req := &resolverv1.ResolveModelRequest{ChatId: ps.reportChat.String(), Purpose: resolverv1.Purpose_PURPOSE_CHAT}
	keyOf := func(c resolverv1.ResolverServiceClient) (string, error) {
		res, err := c.ResolveModel(auth, req)
		return res.GetCredential().GetKeyId(), err
	}
	// everyReplica waits until every replica answers with key want and returns the slowest's time
	// since start.
	everyReplica := func(start time.Time, want string) (time.Duration, error) {
		return untilEveryReplica(clients, start, func(c resolverv1.ResolverServiceClient) (bool, error) {
			got, err := keyOf(c)
			return err == nil && got == want, err
		})
	}
	first, second := ps.reportKeys[0].String(), ps.reportKeys[1].String()
	report := func(c resolverv1.ResolverServiceClient, outcome resolverv1.CredentialOutcome) error {
		_, err := c.ReportCredentialOutcome(auth, &resolverv1.ReportCredentialOutcomeRequest{KeyId: first, Outcome: outcome,
			RetryAfter: durationpb.New(time.Minute)})
		return err
	}
	for trial := range o.trials {
		if _, err := everyReplica(time.Now(), first); err != nil { // warm, and back from the last trial
			return fmt.Errorf("trial %d, before the report: %w", trial, err)
		}
		for _, c := range clients {
			for range 3 {
				if _, err := keyOf(c); err != nil {
					return err
				}
			}
		}
		reporter := clients[trial%len(clients)]
		start := time.Now()
		if err := report(reporter, resolverv1.CredentialOutcome_CREDENTIAL_OUTCOME_RATE_LIMITED); err != nil {
			return fmt.Errorf("trial %d: report: %w", trial, err)
		}
		worst, err := everyReplica(start, second)
		if err != nil {
			return fmt.Errorf("trial %d: %w", trial, err)
		}
		r.reportPropagation = append(r.reportPropagation, worst)
		if err := report(reporter, resolverv1.CredentialOutcome_CREDENTIAL_OUTCOME_OK); err != nil {
			return fmt.Errorf("trial %d: end the cooldown: %w", trial, err)
		}
		time.Sleep(50 * time.Millisecond) // under the reporter's rate of reports
	}
	slices.Sort(r.reportPropagation)
	return nil
}

// roundRobinPhases resolves the round-robin chats at c = o.concurrency and c = 1, as the oldest-key
// phases of the same round do.
func roundRobinPhases(ctx context.Context, o options, conns []*grpc.ClientConn, call func(context.Context, *grpc.ClientConn, int) error, r *report) error {
	rr := drive(ctx, conns, o.concurrency, o.duration, 0, call)
	rr1 := drive(ctx, conns[:1], 1, o.duration/2, 0, call)
	for _, s := range []stats{rr, rr1} {
		if s.errors > 0 {
			return fmt.Errorf("round robin: %d errors, first: %v", s.errors, s.firstErr)
		}
	}
	r.resolveRR, r.resolveRR1 = append(r.resolveRR, rr), append(r.resolveRR1, rr1)
	return nil
}

// reportPoolsCost prints the key-pool figures: the round-robin phases beside the oldest-key ones of
// each round, and the report propagation.
func reportPoolsCost(w io.Writer, r *report) {
	if len(r.resolveRR) == 0 {
		return
	}
	var thr, p50 []string
	for i := range r.resolveRR {
		thr = append(thr, fmt.Sprintf("%.2f", r.resolveRR[i].rps()/r.resolve[i].rps()))
		p50 = append(p50, fmt.Sprintf("%+.3f ms", float64(r.resolveRR1[i].pct(50)-r.resolve1[i].pct(50))/1e6))
	}
	fmt.Fprintf(w, "%-50s %-39s %s\n", "round robin / oldest key throughput, c=32", strings.Join(thr, ", "), "~ 1 (noise)")
	fmt.Fprintf(w, "%-50s %-39s %s\n", "round robin p50 - oldest key p50, c=1", strings.Join(p50, ", "), "~ 0 (noise)")
	if n := len(r.reportPropagation); n > 0 {
		fmt.Fprintf(w, "%-50s %-39s %s\n", fmt.Sprintf("report seen by all replicas (%d trials)", n),
			fmt.Sprintf("worst %s, median %s", ms(r.reportPropagation[n-1]), ms(r.reportPropagation[n/2])), "< 50 ms median, < 1000 ms worst")
	}
}

// printRoundRobinRounds adds the round-robin phases to the table of rounds.
func printRoundRobinRounds(w io.Writer, r *report, i int) {
	if i >= len(r.resolveRR) {
		return
	}
	rr, rr1 := r.resolveRR[i], r.resolveRR1[i]
	fmt.Fprintf(w, "%-8d %-22s %12.0f %12s %12s\n", i+1, "RR ResolveModel c=32", rr.rps(), ms(rr.pct(50)), ms(rr.pct(99)))
	fmt.Fprintf(w, "%-8d %-22s %12.0f %12s %12s\n", i+1, "RR ResolveModel c=1", rr1.rps(), ms(rr1.pct(50)), ms(rr1.pct(99)))
}
