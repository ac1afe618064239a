package resolve

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/pkg/secret"
)

// The key pools of docs/CONTRACT.md §2.2 and the health workers report (§17): the pure rules, with
// the moment and the round-robin turn passed in.

var t0 = time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)

func poolKey(h Health) *Key {
	k := OpenedKey(uuid.New(), secret.New("k-"+uuid.NewString()), "")
	k.Health = h
	return k
}

func TestHealthAvailable(t *testing.T) {
	cases := []struct {
		h    Health
		want bool
	}{
		{Health{}, true},
		{Health{CoolingUntil: t0.Add(-time.Nanosecond)}, true}, // a cooldown that ended
		{Health{CoolingUntil: t0}, true},                       // ends at now: back
		{Health{CoolingUntil: t0.Add(time.Nanosecond)}, false},
		{Health{Suspended: true}, false},
		{Health{Suspended: true, CoolingUntil: t0.Add(-time.Hour)}, false},
	}
	for _, c := range cases {
		if got := c.h.Available(t0); got != c.want {
			t.Errorf("%+v.Available(t0) = %v, want %v", c.h, got, c.want)
		}
	}
}

func TestChooseCentralKeyOldestSkipsUnavailableKeys(t *testing.T) {
	cooling, susp, ended, ok1, ok2 := poolKey(Health{CoolingUntil: t0.Add(time.Minute)}), poolKey(Health{Suspended: true}),
		poolKey(Health{CoolingUntil: t0.Add(-time.Minute)}), poolKey(Health{}), poolKey(Health{})
	for _, policy := range []CentralKeyPolicy{"", PolicyOldest} {
		turn := func() uint64 { t.Fatalf("policy %q took a round-robin turn", policy); return 0 }
		got, back := ChooseCentralKey([]*Key{cooling, susp, ended, ok1, ok2}, policy, t0, turn)
		if got != ended || !back.IsZero() {
			t.Errorf("policy %q: chose %v (back %v), want the oldest available (a cooldown that ended)", policy, got, back)
		}
		if got, _ := ChooseCentralKey([]*Key{cooling, susp, ok2, ok1}, policy, t0, turn); got != ok2 {
			t.Errorf("policy %q: chose %v, want the first available in the order given", policy, got)
		}
	}
}

func TestChooseCentralKeyRoundRobinIsEven(t *testing.T) {
	keys := []*Key{poolKey(Health{}), poolKey(Health{Suspended: true}), poolKey(Health{}),
		poolKey(Health{CoolingUntil: t0.Add(time.Second)}), poolKey(Health{})}
	count := map[*Key]int{}
	var prev *Key
	for turn := range uint64(3000) {
		got, _ := ChooseCentralKey(keys, PolicyRoundRobin, t0, func() uint64 { return turn })
		if got == nil || !got.Health.Available(t0) {
			t.Fatalf("turn %d chose %v", turn, got)
		}
		if got == prev {
			t.Fatalf("turn %d chose the same key as the turn before", turn)
		}
		prev = got
		count[got]++
	}
	for _, i := range []int{0, 2, 4} {
		if count[keys[i]] != 1000 {
			t.Errorf("key %d answered %d of 3000 turns, want 1000", i, count[keys[i]])
		}
	}
	// One available key: no turn is taken.
	one := []*Key{poolKey(Health{Suspended: true}), poolKey(Health{})}
	if got, _ := ChooseCentralKey(one, PolicyRoundRobin, t0, func() uint64 { t.Fatal("took a turn for one key"); return 0 }); got != one[1] {
		t.Errorf("chose %v, want the only available key", got)
	}
	// No turn function: the first available.
	if got, _ := ChooseCentralKey(keys, PolicyRoundRobin, t0, nil); got != keys[0] {
		t.Errorf("without turns chose %v, want the oldest available", got)
	}
}

func TestChooseCentralKeyWhenEveryKeyIsOut(t *testing.T) {
	soon, later := poolKey(Health{CoolingUntil: t0.Add(10 * time.Second)}), poolKey(Health{CoolingUntil: t0.Add(time.Minute)})
	// A suspended key's cooldown does not count: it does not come back when it ends.
	suspendedCooling := poolKey(Health{Suspended: true, CoolingUntil: t0.Add(time.Second)})
	for _, policy := range []CentralKeyPolicy{PolicyOldest, PolicyRoundRobin} {
		got, back := ChooseCentralKey([]*Key{later, suspendedCooling, soon}, policy, t0, nil)
		if got != nil || !back.Equal(t0.Add(10*time.Second)) {
			t.Errorf("%s: all cooling: %v, back %v; want none, back at the earliest end", policy, got, back)
		}
		got, back = ChooseCentralKey([]*Key{poolKey(Health{Suspended: true}), suspendedCooling}, policy, t0, nil)
		if got != nil || !back.IsZero() {
			t.Errorf("%s: all suspended: %v, back %v; want none, never back", policy, got, back)
		}
		if got, back := ChooseCentralKey(nil, policy, t0, nil); got != nil || !back.IsZero() {
			t.Errorf("%s: no keys: %v, %v", policy, got, back)
		}
	}
}

// Literal cases of docs/CONTRACT.md §2.2 with reports.
func TestChooseCredentialWithReports(t *testing.T) {
	type tc struct {
		name       string
		typ        string
		policy     BYOKPolicy
		user       *Key
		central    []*Key
		wantSource CredentialSource
		wantKey    int // index into central; -1 the user key
		wantErr    errs.Reason
		wantMeta   map[string]string
		wantRetry  time.Duration
		wantSkip   errs.Reason
	}
	invalid := poolKey(Health{Suspended: true})
	ok := poolKey(Health{})
	cooling := poolKey(Health{CoolingUntil: t0.Add(90 * time.Second)})
	coolingSoon := poolKey(Health{CoolingUntil: t0.Add(1500 * time.Millisecond)})
	susp := poolKey(Health{Suspended: true})
	cases := []tc{
		{name: "every key cooling", typ: "openai", policy: BYOKDisabled, central: []*Key{cooling, coolingSoon, susp},
			wantErr: errs.CredentialsCoolingDown, wantRetry: 1500 * time.Millisecond},
		{name: "bedrock cooling is not ambient", typ: "bedrock", policy: BYOKDisabled, central: []*Key{cooling},
			wantErr: errs.CredentialsCoolingDown, wantRetry: 90 * time.Second},
		{name: "bedrock, every key suspended: ambient", typ: "bedrock", policy: BYOKDisabled, central: []*Key{susp},
			wantSource: SourceAmbient},
		{name: "every key suspended", typ: "openai", policy: BYOKDisabled, central: []*Key{susp}, wantErr: errs.NoCredentials},
		{name: "every key suspended, BYOK optional", typ: "openai", policy: BYOKOptional, central: []*Key{susp}, wantErr: errs.UserKeyRequired},
		{name: "optional, the owner's key invalid: central", typ: "openai", policy: BYOKOptional, user: invalid, central: []*Key{susp, ok},
			wantSource: SourceCentral, wantKey: 1, wantSkip: errs.UserKeyInvalid},
		{name: "optional, the owner's key invalid, keys cooling", typ: "openai", policy: BYOKOptional, user: invalid, central: []*Key{cooling},
			wantErr: errs.CredentialsCoolingDown, wantRetry: 90 * time.Second},
		{name: "optional, the owner's key invalid, no central key", typ: "openai", policy: BYOKOptional, user: invalid,
			wantErr: errs.UserKeyInvalid, wantMeta: map[string]string{"key_id": invalid.ID.String()}},
		{name: "optional bedrock, the owner's key invalid: ambient", typ: "bedrock", policy: BYOKOptional, user: invalid,
			wantSource: SourceAmbient, wantSkip: errs.UserKeyInvalid},
		{name: "required, the owner's key invalid", typ: "openai", policy: BYOKRequired, user: invalid, central: []*Key{ok},
			wantErr: errs.UserKeyInvalid, wantMeta: map[string]string{"key_id": invalid.ID.String()}},
		{name: "required, the owner's key valid", typ: "openai", policy: BYOKRequired, user: ok, central: []*Key{cooling},
			wantSource: SourceUser, wantKey: -1},
		{name: "disabled policy ignores an invalid user key", typ: "openai", policy: BYOKDisabled, user: invalid, central: []*Key{ok},
			wantSource: SourceCentral},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := &Provider{ID: uuid.New(), Type: c.typ, Name: "p", Enabled: true, BYOKPolicy: c.policy}
			user := func() (*Key, error) { return c.user, nil }
			central := func() ([]*Key, error) { return c.central, nil }
			cred, err := ChooseCredential(context.Background(), p, Choice{AllowBYOK: true, Now: t0}, user, central)
			if c.wantErr != "" {
				var e *errs.Error
				if !errors.As(err, &e) || e.Reason != c.wantErr {
					t.Fatalf("ChooseCredential = %+v, %v; want %s", cred, err, c.wantErr)
				}
				if e.Metadata["provider_id"] != p.ID.String() || e.RetryAfter != c.wantRetry {
					t.Errorf("metadata %v, RetryAfter %v; want provider_id %s, %v", e.Metadata, e.RetryAfter, p.ID, c.wantRetry)
				}
				for k, v := range c.wantMeta {
					if e.Metadata[k] != v {
						t.Errorf("metadata[%s] = %q, want %q", k, e.Metadata[k], v)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			wantID := uuid.Nil
			switch {
			case c.wantSource == SourceUser:
				wantID = c.user.ID
			case c.wantSource == SourceCentral:
				wantID = c.central[c.wantKey].ID
			}
			if cred.Source != c.wantSource || cred.KeyID != wantID || cred.UserKeySkipped != c.wantSkip {
				t.Errorf("credential %s %s skipped %q, want %s %s skipped %q", cred.Source, cred.KeyID, cred.UserKeySkipped, c.wantSource, wantID, c.wantSkip)
			}
		})
	}
}

// Every combination of provider type, BYOK policy, the owner's key, the health of up to three
// central keys, the key policy and a few turns, against the oracle of fake_test.go.
func TestChooseCredentialPoolMatrix(t *testing.T) {
	healths := []Health{{}, {CoolingUntil: t0.Add(-time.Second)}, {CoolingUntil: t0.Add(time.Minute)},
		{CoolingUntil: t0.Add(5 * time.Second)}, {Suspended: true}}
	var pools [][]Health
	pools = append(pools, nil)
	for _, a := range healths {
		pools = append(pools, []Health{a})
		for _, b := range healths {
			pools = append(pools, []Health{a, b})
			for _, c := range healths {
				pools = append(pools, []Health{a, b, c})
			}
		}
	}
	n := 0
	for _, typ := range []string{"openai", "bedrock"} {
		for _, policy := range []BYOKPolicy{BYOKDisabled, BYOKOptional, BYOKRequired} {
			for _, user := range []specUser{userNone, userValid, userInvalid} {
				for _, keyPolicy := range []CentralKeyPolicy{PolicyOldest, PolicyRoundRobin} {
					for _, pool := range pools {
						for _, turn := range []uint64{0, 1, 5} {
							n++
							checkPoolChoice(t, typ, policy, user, pool, keyPolicy, turn)
						}
					}
				}
			}
		}
	}
	if n < 5000 {
		t.Fatalf("only %d combinations", n)
	}
}

func checkPoolChoice(t *testing.T, typ string, policy BYOKPolicy, user specUser, pool []Health, keyPolicy CentralKeyPolicy, turn uint64) {
	t.Helper()
	name := fmt.Sprintf("%s/%s/user=%d/%s/%v/turn=%d", typ, policy, user, keyPolicy, pool, turn)
	p := &Provider{ID: uuid.New(), Type: typ, Name: "p", Enabled: true, BYOKPolicy: policy, CentralKeyPolicy: keyPolicy}
	var uk *Key
	if user != userNone {
		uk = poolKey(Health{Suspended: user == userInvalid})
	}
	var keys []*Key
	var spec []specKey
	for _, h := range pool {
		keys = append(keys, poolKey(h))
		spec = append(spec, specKey{suspended: h.Suspended, coolingUntil: h.CoolingUntil})
	}
	turns := 0
	c := Choice{AllowBYOK: true, Now: t0, Turn: func() uint64 { turns++; return turn }}
	cred, err := ChooseCredential(context.Background(), p, c, func() (*Key, error) { return uk, nil }, func() ([]*Key, error) { return keys, nil })
	want := specChoose(typ, policy, true, user, spec, keyPolicy, t0, turn)
	if want.err != "" {
		var e *errs.Error
		if !errors.As(err, &e) || e.Reason != want.err || e.RetryAfter != want.retryAfter {
			t.Fatalf("%s: got %+v, %v; want %s (retry after %v)", name, cred, err, want.err, want.retryAfter)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s: %v, want %s", name, err, want.source)
	}
	wantID := uuid.Nil
	switch want.source {
	case SourceUser:
		wantID = uk.ID
	case SourceCentral:
		wantID = keys[want.central].ID
	}
	if cred.Source != want.source || cred.KeyID != wantID || cred.UserKeySkipped != want.skipped || (turns == 1) != want.turned || turns > 1 {
		t.Fatalf("%s: got %s %s skipped %q turns %d; want %s %s skipped %q turned %v", name,
			cred.Source, cred.KeyID, cred.UserKeySkipped, turns, want.source, wantID, want.skipped, want.turned)
	}
}

func TestTurns(t *testing.T) {
	tr := NewTurns()
	a, b := uuid.New(), uuid.New()
	first := tr.Next(a)
	for i := range uint64(10) {
		if got := tr.Next(a); got != first+i+1 {
			t.Fatalf("turn %d of a = %d, want %d", i, got, first+i+1)
		}
	}
	bFirst := tr.Next(b)
	if got := tr.Next(a); got != first+11 {
		t.Errorf("b's first turn moved a's counter: %d", got)
	}
	if got := tr.Next(b); got != bFirst+1 {
		t.Errorf("b's second turn = %d, want %d", got, bFirst+1)
	}
	// Concurrent first turns of many providers: every turn is taken once.
	var wg sync.WaitGroup
	ids := make([]uuid.UUID, 50)
	for i := range ids {
		ids[i] = uuid.New()
	}
	seen := make([]map[uint64]bool, len(ids))
	var mu sync.Mutex
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, id := range ids {
				v := tr.Next(id)
				mu.Lock()
				if seen[i] == nil {
					seen[i] = map[uint64]bool{}
				}
				if seen[i][v] {
					t.Errorf("goroutine %d: turn %d of provider %d taken twice", g, v, i)
				}
				seen[i][v] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for i := range ids {
		if len(seen[i]) != 8 {
			t.Errorf("provider %d: %d distinct turns, want 8", i, len(seen[i]))
		}
	}
}

func BenchmarkChooseRoundRobin(b *testing.B) {
	keys := []*Key{poolKey(Health{}), poolKey(Health{CoolingUntil: t0.Add(time.Minute)}), poolKey(Health{}), poolKey(Health{})}
	tr, id := NewTurns(), uuid.New()
	turn := func() uint64 { return tr.Next(id) }
	b.ReportAllocs()
	for b.Loop() {
		if k, _ := ChooseCentralKey(keys, PolicyRoundRobin, t0, turn); k == nil {
			b.Fatal("no key")
		}
	}
}
