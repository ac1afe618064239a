package auditchain

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// ring is a Deriver over fixed keys, the first one current.
type ring struct{ ids []string }

func (r ring) Derive(label string) (string, []byte) { return r.ids[0], key(r.ids[0], label) }
func (r ring) DeriveFor(id, label string) ([]byte, bool) {
	for _, k := range r.ids {
		if k == id {
			return key(id, label), true
		}
	}
	return nil, false
}

func key(id, label string) []byte { return []byte(strings.Repeat(id+label, 2)[:32]) }

// write appends records with the given contents to c in one committed write and returns them as
// stored, with ids from next.
func write(t *testing.T, c *Chain, next *int64, contents ...string) []Record {
	t.Helper()
	if err := c.Begin(context.Background()); err != nil {
		t.Fatal(err)
	}
	var out []Record
	for _, s := range contents {
		l := c.Next([]byte(s))
		r := Record{ID: *next, Chain: l.Chain, Seq: l.Seq, KeyID: l.KeyID, MAC: append([]byte(nil), l.MAC[:]...), Content: []byte(s)}
		if l.HasPrev {
			r.Prev = append([]byte(nil), l.Prev[:]...)
		}
		*next++
		out = append(out, r)
	}
	c.Commit()
	return out
}

func verify(d Deriver, records []Record) (Stats, error) {
	v := NewVerifier(d)
	for _, r := range records {
		if err := v.Add(r); err != nil {
			return v.Stats, err
		}
	}
	return v.Stats, nil
}

func wantProblem(t *testing.T, err error, id int64, kind string) {
	t.Helper()
	var p *Problem
	if !errors.As(err, &p) || p.EventID != id || p.Kind != kind {
		t.Fatalf("got %v, want event %d %s", err, id, kind)
	}
}

// trail is two writers' chains interleaved, as two replicas write them, after two unchained
// events from before chaining.
func trail(t *testing.T, d Deriver) []Record {
	a, b := New(d), New(d)
	next := int64(1)
	out := []Record{{ID: next, Content: []byte("legacy 1")}, {ID: next + 1, Content: []byte("legacy 2")}}
	next += 2
	for i := range 5 {
		out = append(out, write(t, a, &next, fmt.Sprintf("a%d-1", i), fmt.Sprintf("a%d-2", i))...)
		out = append(out, write(t, b, &next, fmt.Sprintf("b%d", i))...)
	}
	return out
}

func TestAnUntouchedTrailVerifies(t *testing.T) {
	d := ring{ids: []string{"k1"}}
	st, err := verify(d, trail(t, d))
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != 15 || st.Chains != 2 || st.Unchained != 2 || st.Truncated != 0 {
		t.Fatalf("stats %+v, want 15 events in 2 chains, 2 unchained", st)
	}
}

func TestTamperingIsNamed(t *testing.T) {
	d := ring{ids: []string{"k1"}}
	for _, tc := range []struct {
		name   string
		tamper func([]Record) []Record
		id     int64
		kind   string
	}{
		{"content edited", func(r []Record) []Record { r[5].Content = []byte("a1-1 but different"); return r }, 6, "edited"},
		{"position edited", func(r []Record) []Record { r[5].Seq = 9; return r }, 6, "edited"},
		{"mac replaced", func(r []Record) []Record { r[5].MAC = bytes.Repeat([]byte{1}, MACSize); return r }, 6, "edited"},
		{"chain columns emptied", func(r []Record) []Record { r[5].Partial = true; return r }, 6, "edited"},
		{"deleted in the middle", func(r []Record) []Record { return append(r[:5:5], r[6:]...) }, 7, "deleted"},
		{"deleted, the rest renumbered", func(r []Record) []Record {
			chain := r[5].Chain
			r = append(r[:5:5], r[6:]...)
			for i := range r {
				if r[i].Chain == chain && r[i].Seq > 3 {
					r[i].Seq--
				}
			}
			return r
		}, 7, "edited"},
		{"a copy inserted", func(r []Record) []Record {
			dup := r[5]
			dup.ID = 100
			return append(r[:6:6], append([]Record{dup}, r[6:]...)...)
		}, 100, "inserted"},
		{"a forged event inserted", func(r []Record) []Record {
			f := r[6]
			f.ID, f.Content = 100, []byte("forged")
			return append(r[:6:6], append([]Record{f}, r[6:]...)...)
		}, 100, "edited"},
		{"an unchained event inserted", func(r []Record) []Record {
			return append(r[:6:6], append([]Record{{ID: 100, Content: []byte("psql")}}, r[6:]...)...)
		}, 100, "inserted"},
		{"two events swapped", func(r []Record) []Record { r[2], r[3] = r[3], r[2]; r[2].ID, r[3].ID = 3, 4; return r }, 4, "inserted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verify(d, tc.tamper(trail(t, d)))
			wantProblem(t, err, tc.id, tc.kind)
		})
	}
}

// TestARemovedPrefixIsAccepted: retention removes each chain's oldest events; what remains
// verifies, and the chains that lost events are counted.
func TestARemovedPrefixIsAccepted(t *testing.T) {
	d := ring{ids: []string{"k1"}}
	r := trail(t, d)
	st, err := verify(d, r[6:]) // the unchained events, a's first four and b's first
	if err != nil {
		t.Fatal(err)
	}
	if st.Truncated != 2 || st.Unchained != 0 || st.Events != int64(len(r)-6) {
		t.Fatalf("stats %+v", st)
	}
}

// TestAnAbortedWriteStartsANewChain: a write whose transaction failed neither advances its chain
// nor leaves a gap: the chain goes on as a new one.
func TestAnAbortedWriteStartsANewChain(t *testing.T) {
	d := ring{ids: []string{"k1"}}
	c := New(d)
	next := int64(1)
	records := write(t, c, &next, "one", "two")
	if err := c.Begin(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Next([]byte("rolled back"))
	c.Abort()
	records = append(records, write(t, c, &next, "three")...)
	if records[2].Chain == records[0].Chain || records[2].Seq != 1 {
		t.Fatalf("after an abort: chain %s position %d, want a new chain at 1", records[2].Chain, records[2].Seq)
	}
	st, err := verify(d, records)
	if err != nil || st.Chains != 2 || st.Events != 3 {
		t.Fatalf("stats %+v, %v", st, err)
	}
}

func TestKeysAfterRotation(t *testing.T) {
	old := ring{ids: []string{"k1"}}
	records := trail(t, old)
	rotated := ring{ids: []string{"k2", "k1"}}
	next := int64(len(records) + 1)
	records = append(records, write(t, New(rotated), &next, "after rotation")...)
	if _, err := verify(rotated, records); err != nil {
		t.Fatalf("with both keys: %v", err)
	}
	_, err := verify(ring{ids: []string{"k2"}}, records)
	var missing *MissingKeyError
	if !errors.As(err, &missing) || missing.KeyID != "k1" || missing.EventID != 3 {
		t.Fatalf("without the old key: %v", err)
	}
	// A key that was never used cannot verify anything.
	_, err = verify(ring{ids: []string{"k3", "k1x"}}, records)
	if !errors.As(err, &missing) {
		t.Fatalf("with other keys: %v", err)
	}
}

func TestStampNeverGoesBack(t *testing.T) {
	c := New(ring{ids: []string{"k1"}})
	// On a whole microsecond, so that 1.5 µs later truncates to exactly 1 µs later.
	now := time.Now().Truncate(time.Microsecond)
	_ = c.Begin(context.Background())
	a := c.Stamp(now)
	b := c.Stamp(now.Add(-time.Second))
	d := c.Stamp(now.Add(time.Nanosecond * 1500))
	c.Commit()
	_ = c.Begin(context.Background())
	e := c.Stamp(now.Add(-time.Hour))
	c.Commit()
	if !a.Equal(now.Truncate(time.Microsecond)) || !b.Equal(a) || d.Sub(a) != time.Microsecond || !e.Equal(d) {
		t.Fatalf("stamps %v %v %v %v", a, b, d, e)
	}
}

func TestBeginWaitsForTheWriteBeforeIt(t *testing.T) {
	c := New(ring{ids: []string{"k1"}})
	if err := c.Begin(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := c.Begin(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Begin while the first write is open: %v", err)
	}
	c.Commit()
	if err := c.Begin(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Abort()
}

func TestMACsDependOnTheKeyAndTheChain(t *testing.T) {
	d1, d2 := ring{ids: []string{"k1"}}, ring{ids: []string{"k2"}}
	a, b := New(d1), New(d2)
	_ = a.Begin(context.Background())
	_ = b.Begin(context.Background())
	la, lb := a.Next([]byte("x")), b.Next([]byte("x"))
	a.Commit()
	b.Commit()
	if la.MAC == lb.MAC || la.Chain == lb.Chain || la.Chain == uuid.Nil {
		t.Fatalf("links %+v %+v", la, lb)
	}
}

// BenchmarkNext is the chain's cost per record: one HMAC-SHA256 over a resolution record's
// content (about 300 bytes), what `make bench` reports.
func BenchmarkNext(b *testing.B) {
	c := New(ring{ids: []string{"0123456789abcdef"}})
	content := bytes.Repeat([]byte("r"), 300)
	_ = c.Begin(context.Background())
	b.ReportAllocs()
	for b.Loop() {
		c.Next(content)
	}
	c.Commit()
}

// TestAnUnchainedEventDatedAfterTheChainsIsInserted: ids are not covered by the MACs, so an event
// inserted with psql may take an id below every chained one; dated after the chains began it is
// named as inserted. A chained event whose MAC fails is named itself, however old its date makes
// the genuine unchained events look.
func TestAnUnchainedEventDatedAfterTheChainsIsInserted(t *testing.T) {
	d := ring{ids: []string{"k1"}}
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	dated := func(r []Record) []Record {
		for i := range r {
			r[i].OccurredAt = start.Add(time.Duration(r[i].ID) * time.Minute)
			if r[i].Chain != uuid.Nil {
				r[i].OccurredAt = r[i].OccurredAt.Add(24 * time.Hour) // the chains began a day later
			}
		}
		return r
	}
	if _, err := verify(d, dated(trail(t, d))); err != nil {
		t.Fatalf("the untouched trail: %v", err)
	}
	inserted := append([]Record{{ID: 0, Content: []byte("psql"), OccurredAt: start.Add(48 * time.Hour)}}, dated(trail(t, d))...)
	_, err := verify(d, inserted)
	wantProblem(t, err, 0, "inserted")

	// Within the hour of slack a chained record may wait in its writer's buffer: not a problem.
	late := dated(trail(t, d))
	late[1].OccurredAt = late[2].OccurredAt.Add(UnchainedSlack - time.Minute)
	if _, err := verify(d, late); err != nil {
		t.Fatalf("an unchained event within the slack: %v", err)
	}

	// A forged chained event dated long before the chains: it is the edited one.
	forged := dated(trail(t, d))
	forged[2].OccurredAt, forged[2].MAC = start.Add(-240*time.Hour), bytes.Repeat([]byte{7}, MACSize)
	_, err = verify(d, forged)
	wantProblem(t, err, forged[2].ID, "edited")
}
