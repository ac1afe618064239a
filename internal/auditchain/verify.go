package auditchain

import (
	"crypto/hmac"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Record is a stored audit event as the verifier sees it.
type Record struct {
	ID         int64
	OccurredAt time.Time
	// Chain is uuid.Nil for an event outside every chain (written before chaining existed).
	Chain uuid.UUID
	Seq   int64
	KeyID string
	MAC   []byte
	Prev  []byte // empty for a chain's first record
	// Partial is set when some chain columns are set and others are not: no writer does that.
	Partial bool
	// Content is the record's content in the encoding its writer MACed; the verifier does not
	// keep it after Add returns.
	Content []byte
}

// Problem is what verification found wrong, naming the event.
type Problem struct {
	EventID int64
	// Kind is "edited", "deleted" or "inserted".
	Kind   string
	Detail string
}

func (p *Problem) Error() string {
	return fmt.Sprintf("event %d: %s: %s", p.EventID, p.Kind, p.Detail)
}

// MissingKeyError means an event is keyed by an encryption key the verifier was not given: it
// cannot say whether the event is intact.
type MissingKeyError struct {
	EventID int64
	KeyID   string
}

func (e *MissingKeyError) Error() string {
	return fmt.Sprintf("event %d is keyed by encryption key %s, which --encryption-keys does not include: add it (after the current key) to verify", e.EventID, e.KeyID)
}

// Stats is what a verification covered.
type Stats struct {
	// Events is the number of chained events verified, Chains the number of chains they are in.
	Events, Chains int64
	// Unchained counts events outside every chain, all older than the first chained one.
	Unchained int64
	// Truncated counts chains whose first remaining event is not their first: their oldest events
	// were removed (retention, or a --since that starts after them).
	Truncated int64
}

// Verifier checks records given in the order of their ids, which within a chain is the order in
// which they were appended (a chain's writes are serialised until each commits).
type Verifier struct {
	d      Deriver
	macers map[string]*macer
	chains map[uuid.UUID]*tail
	// firstChained is the id of the first chained event seen: no unchained event may follow it.
	firstChained int64
	// latestUnchained is the unchained event that occurred last: it must have occurred before
	// every chained event (up to UnchainedSlack), like every event from before the chains.
	latestUnchained struct {
		id int64
		at time.Time
	}
	Stats
}

// UnchainedSlack is how much later than a chained event an unchained one (from before the chains)
// may have occurred: the time a chained record may wait in its writer's buffer before it is
// written, and the clocks of replicas disagreeing. An unchained event that occurred later still
// was not written before the chains began, whatever its id says: it was inserted.
const UnchainedSlack = time.Hour

type tail struct {
	id  int64
	seq int64
	mac [MACSize]byte
}

// NewVerifier returns a verifier that derives the chains' keys from d.
func NewVerifier(d Deriver) *Verifier {
	return &Verifier{d: d, macers: map[string]*macer{}, chains: map[uuid.UUID]*tail{}}
}

// Add checks the next record. It returns a *Problem naming the first event that shows tampering,
// or a *MissingKeyError.
func (v *Verifier) Add(r Record) error {
	if r.Partial {
		return &Problem{r.ID, "edited", "its chain columns are partly empty, which no writer leaves them"}
	}
	if r.Chain == uuid.Nil {
		if v.firstChained != 0 {
			return &Problem{r.ID, "inserted", fmt.Sprintf("it is in no chain but comes after chained event %d: "+
				"inserted (e.g. with psql), or written by a resolverd older than the chains (during an upgrade; "+
				"if so, verify with --since after the upgrade)", v.firstChained)}
		}
		if v.Unchained == 0 || r.OccurredAt.After(v.latestUnchained.at) {
			v.latestUnchained.id, v.latestUnchained.at = r.ID, r.OccurredAt
		}
		v.Unchained++
		return nil
	}
	m, ok := v.macers[r.KeyID]
	if !ok {
		key, ok := v.d.DeriveFor(r.KeyID, Label)
		if !ok {
			return &MissingKeyError{EventID: r.ID, KeyID: r.KeyID}
		}
		m = newMacer(key)
		v.macers[r.KeyID] = m
	}
	var want [MACSize]byte
	m.mac(r.Chain, r.Seq, r.Prev, r.KeyID, r.Content, &want)
	if !hmac.Equal(want[:], r.MAC) {
		return &Problem{r.ID, "edited", fmt.Sprintf("it does not match its MAC (chain %s, position %d): "+
			"its content or chain columns were changed, or it was inserted by someone without the encryption keys", r.Chain, r.Seq)}
	}
	if v.firstChained == 0 {
		v.firstChained = r.ID
	}
	t := v.chains[r.Chain]
	switch {
	case t == nil:
		// The first remaining event of a chain starts it: its predecessors may have been removed
		// by retention (or lie before --since).
		if r.Seq != 1 {
			v.Truncated++
		}
		t = &tail{}
		v.chains[r.Chain] = t
		v.Chains++
	case r.Seq <= t.seq:
		return &Problem{r.ID, "inserted", fmt.Sprintf("it claims position %d of chain %s, which event %d already passed (position %d)",
			r.Seq, r.Chain, t.id, t.seq)}
	case r.Seq > t.seq+1:
		return &Problem{r.ID, "deleted", fmt.Sprintf("%d event(s) of chain %s are missing before it: positions %d to %d, after event %d",
			r.Seq-t.seq-1, r.Chain, t.seq+1, r.Seq-1, t.id)}
	case !hmac.Equal(r.Prev, t.mac[:]):
		return &Problem{r.ID, "inserted", fmt.Sprintf("it does not follow event %d, its predecessor in chain %s: the chain was rewritten", t.id, r.Chain)}
	}
	// Only against an event whose MAC and place in its chain hold: an edited or made-up chained
	// event must be named itself, not make a genuine older event look inserted.
	if u := v.latestUnchained; v.Unchained > 0 && u.at.After(r.OccurredAt.Add(UnchainedSlack)) {
		// Ids are not covered by the MACs: an event inserted with psql can take one below every
		// chained event's. Its time (which it chose too) must then be as old as the chains'.
		return &Problem{u.id, "inserted", fmt.Sprintf("it is in no chain, as only events from before the chains are, "+
			"but occurred at %s, after chained event %d (%s): inserted (e.g. with psql) with an id below the chained events'",
			u.at.UTC().Format(time.RFC3339Nano), r.ID, r.OccurredAt.UTC().Format(time.RFC3339Nano))}
	}
	t.id, t.seq = r.ID, r.Seq
	copy(t.mac[:], r.MAC)
	v.Events++
	return nil
}
