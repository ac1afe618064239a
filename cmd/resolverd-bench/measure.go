package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/resolverd/resolverd/internal/db"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

func dial(addr string, n int) ([]*grpc.ClientConn, error) {
	var out []*grpc.ClientConn
	for range n {
		c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func closeAll(cs []*grpc.ClientConn) {
	for _, c := range cs {
		c.Close()
	}
}

// txCount is the database's committed and rolled-back transactions so far.
func txCount(ctx context.Context, conn *pgx.Conn) (int64, error) {
	// Statistics reach pg_stat_database when backends flush them (about once a second).
	time.Sleep(1500 * time.Millisecond)
	var n int64
	err := conn.QueryRow(ctx, `SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()`).Scan(&n)
	return n, err
}

// workerClient mints a token with the worker scopes and opens four connections to r.
func workerClient(ctx context.Context, url string, r *replica, name string) (context.Context, []*grpc.ClientConn, error) {
	token, err := createToken(ctx, r, name, "chat:read", "model_config:read", "ai_provider:read", "ai_provider_key:read", "user_ai_provider_key:read",
		"credential:report")
	if err != nil {
		return nil, nil, err
	}
	conns, err := dial(r.addr, 4)
	if err != nil {
		return nil, nil, err
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), conns, nil
}

func measure(ctx context.Context, o options, url string, set *seedSet, servers []*replica, r *report, logf func(string, ...any)) error {
	auth, conns, err := workerClient(ctx, url, servers[0], "bench-worker")
	if err != nil {
		return err
	}
	defer closeAll(conns)
	bin := servers[0].cmd.Path
	resolveChat := func(chats []uuid.UUID) func(context.Context, *grpc.ClientConn, int) error {
		return func(_ context.Context, c *grpc.ClientConn, i int) error {
			_, err := resolverv1.NewResolverServiceClient(c).ResolveModel(auth, &resolverv1.ResolveModelRequest{
				ChatId: chats[i%len(chats)].String(), Purpose: resolverv1.Purpose_PURPOSE_CHAT})
			return err
		}
	}
	health := func(_ context.Context, c *grpc.ClientConn, _ int) error {
		_, err := healthpb.NewHealthClient(c).Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	pid := servers[0].cmd.Process.Pid
	r.rssIdle, _ = rssMiB(pid)

	logf("warming %d chats, and %d of a round-robin provider", len(set.warmChats), len(set.pools.rrChats))
	if s := drive(ctx, conns, 8, 0, len(set.warmChats)*2, resolveChat(set.warmChats)); s.errors > 0 {
		return fmt.Errorf("warm-up: %d errors, first: %v", s.errors, s.firstErr)
	}
	if s := drive(ctx, conns, 8, 0, len(set.pools.rrChats)*2, resolveChat(set.pools.rrChats)); s.errors > 0 {
		return fmt.Errorf("warm-up (round robin): %d errors, first: %v", s.errors, s.firstErr)
	}
	// Alternate the phases twice so that neither gets the quieter half of the machine.
	for round := range 2 {
		logf("round %d: health and ResolveModel at c=%d, then c=1; round robin at c=%d and c=1", round+1, o.concurrency, o.concurrency)
		c0 := sampleCPU(pid)
		h := drive(ctx, conns, o.concurrency, o.duration, 0, health)
		c1 := sampleCPU(pid)
		res := drive(ctx, conns, o.concurrency, o.duration, 0, resolveChat(set.warmChats))
		c2 := sampleCPU(pid)
		r.cpuHealth, r.cpuResolve = append(r.cpuHealth, c0.perCall(c1, h.calls)), append(r.cpuResolve, c1.perCall(c2, res.calls))
		h1 := drive(ctx, conns[:1], 1, o.duration/2, 0, health)
		res1 := drive(ctx, conns[:1], 1, o.duration/2, 0, resolveChat(set.warmChats))
		for _, s := range []stats{h, res, h1, res1} {
			if s.errors > 0 {
				return fmt.Errorf("%d errors, first: %v", s.errors, s.firstErr)
			}
		}
		r.health, r.resolve, r.health1, r.resolve1 = append(r.health, h), append(r.resolve, res), append(r.health1, h1), append(r.resolve1, res1)
		// The same warm resolution on a provider whose three keys are taken in turn (pools.go).
		if err := roundRobinPhases(ctx, o, conns, resolveChat(set.pools.rrChats), r); err != nil {
			return err
		}
	}
	r.rssWarm, _ = rssMiB(pid)
	if o.profile != "" {
		// The health checks' profile beside it shows what the two calls share (gRPC, HTTP/2, the
		// interceptors), so that the difference is what a resolution adds.
		healthProfile := strings.TrimSuffix(o.profile, ".prof") + ".health.prof"
		if err := profile(ctx, servers[0].debug, o, o.profile, conns, resolveChat(set.warmChats)); err != nil {
			return err
		}
		if err := profile(ctx, servers[0].debug, o, healthProfile, conns, health); err != nil {
			return err
		}
		logf("wrote CPU profiles of the serving replica to %s (ResolveModel) and %s (Health/Check): go tool pprof %s %s",
			o.profile, healthProfile, bin, o.profile)
	}

	// Database transactions per warm resolution (the audit trail's batches included).
	pg, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer pg.Close(ctx)
	before, err := txCount(ctx, pg)
	if err != nil {
		return err
	}
	tx := drive(ctx, conns, o.concurrency, o.duration, 0, resolveChat(set.warmChats))
	after, err := txCount(ctx, pg)
	if err != nil {
		return err
	}
	r.txResolutions, r.txCount = tx.calls, after-before-1 // the first txCount's own query

	// The cold path: chats no replica has resolved (with -big, their configs are new too).
	cold := set.coldChats
	if len(cold) == 0 {
		cold = set.warmChats // without -big: measured after a restart would be better; say so
		r.coldNote = "no -big data: measured on warm chats"
	}
	n := min(2000, len(cold))
	r.cold = drive(ctx, conns[:1], 1, 0, n, resolveChat(cold[:n]))
	if r.cold.errors > 0 {
		return fmt.Errorf("cold path: %d errors, first: %v", r.cold.errors, r.cold.firstErr)
	}

	// Memory with the cache filled to its bound: every chat of the big set once.
	if set.big {
		logf("touching %d chats to fill the cache", len(set.coldChats))
		s := drive(ctx, conns, 8, 0, len(set.coldChats), resolveChat(set.coldChats))
		if s.errors > 0 {
			return fmt.Errorf("fill: %d errors, first: %v", s.errors, s.firstErr)
		}
		r.rssFull, _ = rssMiB(pid)
		r.fillRPS = s.rps()
	}

	if err := propagation(ctx, o, pg, auth, set, servers, r, logf); err != nil {
		return err
	}
	if err := reportPropagation(ctx, o, auth, set.pools, servers, r, logf); err != nil {
		return err
	}
	return plans(ctx, pg, set, r)
}

// propagation toggles a config with plain SQL (as psql would) and times until every replica's
// answer reflects it.
func propagation(ctx context.Context, o options, pg *pgx.Conn, auth context.Context, set *seedSet, servers []*replica, r *report, logf func(string, ...any)) error {
	logf("propagation: %d trials across %d replicas", o.trials, len(servers))
	clients := make([]resolverv1.ResolverServiceClient, len(servers))
	for i, s := range servers {
		cs, err := dial(s.addr, 1)
		if err != nil {
			return err
		}
		defer closeAll(cs)
		clients[i] = resolverv1.NewResolverServiceClient(cs[0])
	}
	req := &resolverv1.ResolveModelRequest{ChatId: set.propChat.String(), Purpose: resolverv1.Purpose_PURPOSE_CHAT}
	state := func(c resolverv1.ResolverServiceClient) (bool, error) { // true: the chat's own config answers
		res, err := c.ResolveModel(auth, req)
		if err != nil {
			return false, err
		}
		return res.GetModelConfig().GetId() == set.propChatConfig.String(), nil
	}
	enabled := true
	for trial := range o.trials {
		for _, c := range clients { // warm: every replica answers from memory
			for range 3 {
				if got, err := state(c); err != nil || got != enabled {
					return fmt.Errorf("trial %d: replica not in the expected state before the change (%v, %v)", trial, got, err)
				}
			}
		}
		enabled = !enabled
		start := time.Now()
		if _, err := pg.Exec(ctx, `UPDATE chat_model_configs SET enabled = $1 WHERE id = $2`, enabled, set.propChatConfig); err != nil {
			return err
		}
		worst, err := untilEveryReplica(clients, start, func(c resolverv1.ResolverServiceClient) (bool, error) {
			got, err := state(c)
			return err == nil && got == enabled, err
		})
		if err != nil {
			return fmt.Errorf("trial %d: %w", trial, err)
		}
		r.propagation = append(r.propagation, worst)
		time.Sleep(50 * time.Millisecond)
	}
	slices.Sort(r.propagation)
	return nil
}

// untilEveryReplica asks every replica (at once) until done says its answer is the new one, and
// returns how long after start the slowest took; it gives up after 5 s.
func untilEveryReplica(clients []resolverv1.ResolverServiceClient, start time.Time, done func(resolverv1.ResolverServiceClient) (bool, error)) (time.Duration, error) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		worst time.Duration
		fail  error
	)
	for _, c := range clients {
		wg.Add(1)
		go func(c resolverv1.ResolverServiceClient) {
			defer wg.Done()
			for {
				ok, err := done(c)
				if ok {
					break
				}
				if time.Since(start) > 5*time.Second {
					mu.Lock()
					fail = fmt.Errorf("a replica still answered the old state after 5s (%v)", err)
					mu.Unlock()
					return
				}
				time.Sleep(200 * time.Microsecond)
			}
			mu.Lock()
			worst = max(worst, time.Since(start))
			mu.Unlock()
		}(c)
	}
	wg.Wait()
	return worst, fail
}

// plans shows how PostgreSQL runs the cold path's batch on the seeded tables.
func plans(ctx context.Context, pg *pgx.Conn, set *seedSet, r *report) error {
	chat := set.propChat
	if len(set.coldChats) > 0 {
		chat = set.coldChats[len(set.coldChats)/2]
	}
	p, err := db.ResolutionLoadPlans(ctx, pg, chat)
	r.plans = p
	return err
}

// profile records the serving replica's CPU into path while call runs at full concurrency.
func profile(ctx context.Context, debug string, o options, path string, conns []*grpc.ClientConn, call func(context.Context, *grpc.ClientConn, int) error) error {
	done := make(chan error, 1)
	go func() {
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", debug, int(o.duration.Seconds())))
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(path)
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		_, err = io.Copy(f, resp.Body)
		done <- err
	}()
	if s := drive(ctx, conns, o.concurrency, o.duration+time.Second, 0, call); s.errors > 0 {
		// Failed calls cost differently: a profile with many of them misleads.
		fmt.Fprintf(os.Stderr, "bench: %d of %d calls failed while profiling, first: %v\n", s.errors, s.calls, s.firstErr)
	}
	return <-done
}
