package operations_test

import (
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/resolverd/resolverd/internal/metrics"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/internal/server"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// Key pools across replicas (docs/CONTRACT.md §2.2, §17): three servers on one database, as three
// replicas behind one Service. A worker's report on one replica reaches the others within a second
// (the key row's change notification), and a cooldown ends by the clock on every replica.

const (
	rateLimited  = resolverv1.CredentialOutcome_CREDENTIAL_OUTCOME_RATE_LIMITED
	unauthorized = resolverv1.CredentialOutcome_CREDENTIAL_OUTCOME_UNAUTHORIZED
)

// replicas starts three servers on one fresh database; the first is the World that builds fixtures.
func replicas(t *testing.T) (a *testenv.World, all []*testenv.Env) {
	t.Helper()
	url := pgtest.NewDatabase(t)
	a = &testenv.World{T: t, Env: testenv.New(t, testenv.Options{DatabaseURL: url})}
	b := testenv.New(t, testenv.Options{DatabaseURL: url})
	c := testenv.New(t, testenv.Options{DatabaseURL: url})
	return a, []*testenv.Env{a.Env, b, c}
}

// keyOn resolves the chat's own model on e as e's worker and returns the central key's id.
func keyOn(e *testenv.Env, chatID string) (string, error) {
	res, err := e.Resolver.ResolveModel(e.AsWorker(), &resolverv1.ResolveModelRequest{ChatId: chatID, Purpose: resolverv1.Purpose_PURPOSE_CHAT})
	if err != nil {
		return "", err
	}
	return res.GetCredential().GetKeyId(), nil
}

// everyReplicaServes waits (at most limit) until every replica answers with key want, and returns
// how long the slowest took.
func everyReplicaServes(t *testing.T, all []*testenv.Env, chatID, want string, limit time.Duration, what string) time.Duration {
	t.Helper()
	var slowest time.Duration
	for i, e := range all {
		took := testenv.Within(t, limit, fmt.Sprintf("replica %c: %s", 'A'+i, what), func() error {
			got, err := keyOn(e, chatID)
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("serves key %s, want %s", got, want)
			}
			return nil
		})
		slowest = max(slowest, took)
	}
	return slowest
}

// TestAReportOnOneReplicaReachesEveryReplica: replicas B and C have the pool warm in memory; a
// RATE_LIMITED report through A makes every replica serve the next key within a second, and the
// reported key comes back on every replica once retry_after has passed, with no change written.
// An UNAUTHORIZED report suspends a key on every replica until an admin enables it again, and
// touches no other key.
func TestAReportOnOneReplicaReachesEveryReplica(t *testing.T) {
	a, all := replicas(t)
	p := a.Provider("pool-3r", "openai", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	k1 := a.CentralKey(p.Id, "sk-pool-3r-one")
	k2 := a.CentralKey(p.Id, "sk-pool-3r-two")
	k3 := a.CentralKey(p.Id, "sk-pool-3r-three")
	owner := a.User("pool-3r-owner")
	chat := a.Chat(owner.Id, a.Config(p.Id, "pool-3r-model", true).Id)

	// Warm every replica: the oldest key, served from memory.
	for range 2 {
		everyReplicaServes(t, all, chat.Id, k1.Id, time.Second, "warm-up")
	}
	for i, e := range all {
		if st := e.Server.CacheStats(); !st.Live || st.Hits == 0 {
			t.Fatalf("replica %c is not serving from memory: %+v", 'A'+i, st)
		}
	}

	t.Run("rate limited: the next key everywhere within a second, back after retry_after", func(t *testing.T) {
		const retry = 4 * time.Second // room for the propagation check below on a slow machine
		reported := time.Now()
		r := (&testenv.World{T: t, Env: a.Env}).MustReport(k1.Id, rateLimited, retry)
		if r.GetHealth().GetState() != resolverv1.KeyState_KEY_STATE_COOLING_DOWN || !r.GetChanged() ||
			r.GetSource() != resolverv1.CredentialSource_CREDENTIAL_SOURCE_CENTRAL || r.GetProviderId() != p.Id {
			t.Fatalf("report answer %v", r)
		}
		if until := r.GetHealth().GetCoolingUntil().AsTime(); until.Before(reported.Add(retry-time.Second)) || until.After(reported.Add(retry+time.Second)) {
			t.Errorf("cooling_until %v, want about %v after the report", until, retry)
		}
		// Replica A drops its entry at once; B and C when the notification comes.
		if got, err := keyOn(all[0], chat.Id); err != nil || got != k2.Id {
			t.Fatalf("replica A right after the report: key %s, %v; want %s", got, err, k2.Id)
		}
		took := everyReplicaServes(t, all, chat.Id, k2.Id, time.Second, "stop serving the reported key")
		t.Logf("every replica served the next key %s after the report", took.Round(time.Millisecond))
		if since := time.Since(reported); since >= retry {
			t.Fatalf("the check took %s, longer than retry_after: the rest proves nothing", since)
		}
		// The cooldown ends by the clock: no write, no notification, and the key is back everywhere.
		time.Sleep(time.Until(reported.Add(retry)))
		everyReplicaServes(t, all, chat.Id, k1.Id, 1500*time.Millisecond, "serve the key again after retry_after")
	})

	t.Run("unauthorized: suspended everywhere until enabled again, no other key touched", func(t *testing.T) {
		before := keysOf(t, a.Env, p.Id)
		r := (&testenv.World{T: t, Env: a.Env}).MustReport(k1.Id, unauthorized, 0)
		if h := r.GetHealth(); h.GetState() != resolverv1.KeyState_KEY_STATE_SUSPENDED || h.GetSuspendedAt() == nil ||
			h.GetSuspendedReason() != "CREDENTIAL_OUTCOME_UNAUTHORIZED" {
			t.Fatalf("report answer %v", r)
		}
		everyReplicaServes(t, all, chat.Id, k2.Id, time.Second, "stop serving the suspended key")
		after := keysOf(t, a.Env, p.Id)
		for _, k := range []string{k2.Id, k3.Id} {
			if !proto.Equal(before[k], after[k]) {
				t.Errorf("key %s changed with another key's report: %v → %v", k, before[k], after[k])
			}
		}
		if after[k1.Id].GetHealth().GetState() != resolverv1.KeyState_KEY_STATE_SUSPENDED || !after[k1.Id].GetEnabled() {
			t.Fatalf("ListProviderKeys shows the reported key as %v", after[k1.Id])
		}
		// A suspension does not end by the clock, nor by an OK report.
		(&testenv.World{T: t, Env: a.Env}).MustReport(k1.Id, resolverv1.CredentialOutcome_CREDENTIAL_OUTCOME_OK, 0)
		time.Sleep(300 * time.Millisecond)
		everyReplicaServes(t, all, chat.Id, k2.Id, time.Second, "keep the key suspended")
		// An admin enabling it on replica C ends the suspension on every replica.
		c := all[2]
		if k, err := c.Admin.SetProviderKeyEnabled(c.AsAdmin(), &resolverv1.SetProviderKeyEnabledRequest{Id: k1.Id, Enabled: proto.Bool(true)}); err != nil ||
			k.GetHealth().GetState() != resolverv1.KeyState_KEY_STATE_AVAILABLE || k.GetHealth().GetSuspendedAt() != nil {
			t.Fatalf("SetProviderKeyEnabled: %v, %v", k, err)
		}
		everyReplicaServes(t, all, chat.Id, k1.Id, time.Second, "serve the key enabled again")
	})

	t.Run("rotating ends what reports did", func(t *testing.T) {
		w := &testenv.World{T: t, Env: a.Env}
		w.MustReport(k1.Id, unauthorized, 0)
		w.MustReport(k2.Id, rateLimited, time.Minute)
		everyReplicaServes(t, all, chat.Id, k3.Id, time.Second, "serve the only key left")
		rotated, err := a.Admin.RotateProviderKey(a.AsAdmin(), &resolverv1.RotateProviderKeyRequest{ProviderId: p.Id, ApiKey: "sk-pool-3r-four"})
		if err != nil {
			t.Fatal(err)
		}
		everyReplicaServes(t, all, chat.Id, rotated.Id, time.Second, "serve the rotated key")
		for id, k := range keysOf(t, a.Env, p.Id) {
			if id != rotated.Id && (k.GetEnabled() || k.GetHealth().GetState() != resolverv1.KeyState_KEY_STATE_AVAILABLE) {
				t.Errorf("after the rotation key %s is %v", id, k)
			}
		}
	})
}

// keysOf lists the provider's central keys by id.
func keysOf(t *testing.T, e *testenv.Env, providerID string) map[string]*resolverv1.ProviderKey {
	t.Helper()
	resp, err := e.Admin.ListProviderKeys(e.AsAdmin(), &resolverv1.ListProviderKeysRequest{ProviderId: providerID})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*resolverv1.ProviderKey{}
	for _, k := range resp.GetKeys() {
		out[k.GetId()] = k
	}
	return out
}

// TestRoundRobinSpreadsOverThreeKeysAcrossReplicas: with CENTRAL_KEY_POLICY_ROUND_ROBIN, resolutions
// spread evenly over the provider's keys, on every replica (each counts its own turns) and in all;
// a key cooling down is skipped and the others share its part.
func TestRoundRobinSpreadsOverThreeKeysAcrossReplicas(t *testing.T) {
	a, all := replicas(t)
	p := a.RoundRobinProvider("pool-rr", "anthropic", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	if p.GetCentralKeyPolicy() != resolverv1.CentralKeyPolicy_CENTRAL_KEY_POLICY_ROUND_ROBIN {
		t.Fatalf("CreateProvider answered %v", p)
	}
	keys := []string{a.CentralKey(p.Id, "sk-pool-rr-1").Id, a.CentralKey(p.Id, "sk-pool-rr-2").Id, a.CentralKey(p.Id, "sk-pool-rr-3").Id}
	owner := a.User("pool-rr-owner")
	chat := a.Chat(owner.Id, a.Config(p.Id, "pool-rr-model", true).Id)

	spread := func(n int, want []string) {
		t.Helper()
		total := map[string]int{}
		for i, e := range all {
			mine := map[string]int{}
			for range n {
				k, err := keyOn(e, chat.Id)
				if err != nil {
					t.Fatal(err)
				}
				mine[k]++
				total[k]++
			}
			// One replica takes the keys in turn: no key is more than one answer ahead.
			for _, k := range want {
				if d := mine[k] - n/len(want); d < -1 || d > 1 {
					t.Errorf("replica %c: key %s answered %d of %d, want %d±1 (%v)", 'A'+i, k, mine[k], n, n/len(want), mine)
				}
			}
		}
		all3 := n * len(all)
		for k, got := range total {
			exp := float64(all3) / float64(len(want))
			if !slices.Contains(want, k) || float64(got) < 0.9*exp || float64(got) > 1.1*exp {
				t.Errorf("key %s answered %d of %d, want %d ±10%% (%v)", k, got, all3, int(exp), total)
			}
		}
	}
	spread(300, keys)

	// keys[1] cooling down: the other two share the answers, on every replica within a second.
	(&testenv.World{T: t, Env: a.Env}).MustReport(keys[1], rateLimited, time.Minute)
	for i, e := range all {
		testenv.Within(t, time.Second, fmt.Sprintf("replica %c skips the cooling key", 'A'+i), func() error {
			for range 4 {
				if k, err := keyOn(e, chat.Id); err != nil || k == keys[1] {
					return fmt.Errorf("key %s, %v", k, err)
				}
			}
			return nil
		})
	}
	spread(200, []string{keys[0], keys[2]})
}

// TestKeyPoolMetrics: resolverd_credential_reports_total counts applied reports by outcome, and
// resolverd_keys_unavailable shows, per provider name, the enabled central keys out.
func TestKeyPoolMetrics(t *testing.T) {
	m := metrics.New()
	w := testenv.NewWorld(t, testenv.Options{Configure: func(c *server.Config) { c.Metrics = m }})
	p := w.Provider("pool-metrics", "openai", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	k1, k2 := w.CentralKey(p.Id, "sk-pool-m-1"), w.CentralKey(p.Id, "sk-pool-m-2")
	w.CentralKey(p.Id, "sk-pool-m-3")
	w.MustReport(k1.Id, rateLimited, time.Minute)
	w.MustReport(k2.Id, unauthorized, 0)
	w.MustReport(k2.Id, unauthorized, 0)
	testenv.Within(t, 5*time.Second, "the metrics", func() error {
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		text := rec.Body.String()
		for _, want := range []string{
			`resolverd_credential_reports_total{outcome="RATE_LIMITED"} 1`,
			`resolverd_credential_reports_total{outcome="UNAUTHORIZED"} 2`,
			`resolverd_credential_reports_total{outcome="OK"} 0`,
			`resolverd_keys_unavailable{provider_name="pool-metrics"} 2`,
		} {
			if !strings.Contains(text, want+"\n") {
				return fmt.Errorf("no line %q", want)
			}
		}
		if strings.Contains(text, k1.Id) || strings.Contains(text, "sk-pool-m") {
			t.Fatal("/metrics shows a key id or a secret")
		}
		return nil
	})
}
