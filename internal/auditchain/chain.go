// Package auditchain makes the audit trail tamper-evident (docs/CONTRACT.md §7.4).
//
// A writer is one resolverd process's store (a serving replica, or one run of a command). Each
// writer appends to its own chains: one for the records of the batching audit writer (resolutions
// and refused calls) and one for the admin changes it commits. A chain is a random id and the
// records appended to it, numbered 1, 2, 3, …; each record carries
//
//	mac = HMAC-SHA256(K, domain ‖ chain id ‖ seq ‖ previous record's mac ‖ key id ‖ content)
//
// truncated to 16 bytes, and the previous record's mac itself, so that a record can be checked on
// its own and against its predecessor. K is derived from the first encryption key (HKDF, label
// Label); the record names that key's id, so verification works after the key is rotated, as long
// as it is given the old key too. Without the encryption keys nobody can compute a mac, so a
// database writer can delete, edit or insert records but cannot hide that it did: a deleted record
// leaves a gap in the numbers, an edited one no longer matches its mac, an inserted one has no
// valid mac. What it can still do undetected is remove a chain's newest records or a whole chain
// (the chain simply looks shorter), and remove its oldest records, as retention does.
//
// A chain is taken for each write (Begin) and released when the write's transaction committed
// (Commit) or failed (Abort). It advances only on Commit; after an Abort it starts over as a new
// chain, since a failed commit may still have committed (the connection broke before the answer):
// continuing would risk two records with the same number, a fork. Within a chain, occurred_at
// never decreases (Stamp), so removing every record older than some time removes a prefix of each
// chain.
package auditchain

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"time"

	"github.com/google/uuid"
)

// Label is the HKDF label of the chains' MAC key.
const Label = "resolverd audit chain v1"

// MACSize is the size of a record's mac: HMAC-SHA256 truncated to 128 bits.
const MACSize = 16

// domain starts every MAC input, so a chain's mac can never be mistaken for another use of K.
var domain = []byte("resolverd audit record v1\x00")

// Deriver derives keys from the encryption keys: *keyring.Keyring.
type Deriver interface {
	Derive(label string) (id string, key []byte)
	DeriveFor(id, label string) (key []byte, ok bool)
}

// Link is what a record carries to place it in its chain.
type Link struct {
	Chain   uuid.UUID
	Seq     int64
	KeyID   string
	MAC     [MACSize]byte
	Prev    [MACSize]byte
	HasPrev bool // false for a chain's first record
}

// macer computes records' macs under one key, reusing its buffers.
type macer struct {
	h   hash.Hash
	hdr []byte
	sum [sha256.Size]byte
}

func newMacer(key []byte) *macer {
	return &macer{h: hmac.New(sha256.New, key), hdr: make([]byte, 0, 128)}
}

// mac computes the mac of one record into out.
func (m *macer) mac(chain uuid.UUID, seq int64, prev []byte, keyID string, content []byte, out *[MACSize]byte) {
	b := append(m.hdr[:0], domain...)
	b = append(b, chain[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(seq))
	b = append(b, byte(len(prev)))
	b = append(b, prev...)
	b = append(b, byte(len(keyID)))
	b = append(b, keyID...)
	m.hdr = b
	m.h.Reset()
	m.h.Write(b)
	m.h.Write(content)
	copy(out[:], m.h.Sum(m.sum[:0]))
}

// Chain is one writer's chain. Its methods other than Begin may only be called between Begin and
// Commit or Abort, by the goroutine that called Begin.
type Chain struct {
	lock  chan struct{} // a one-slot semaphore: waiting for it respects the caller's context
	keyID string
	m     *macer

	id   uuid.UUID
	seq  int64 // the last committed record's number; 0 for none
	prev [MACSize]byte
	last time.Time // the last committed record's occurred_at

	// The write in progress.
	wseq  int64
	wprev [MACSize]byte
	wlast time.Time
}

// New returns a chain keyed by the key d derives from its first encryption key.
func New(d Deriver) *Chain {
	id, key := d.Derive(Label)
	c := &Chain{lock: make(chan struct{}, 1), keyID: id, m: newMacer(key)}
	c.restart()
	return c
}

func (c *Chain) restart() {
	c.id = uuid.Must(uuid.NewV7())
	c.seq = 0
	c.prev = [MACSize]byte{}
}

// Begin takes the chain for one write; it waits for the write before it to end, or for ctx.
func (c *Chain) Begin(ctx context.Context) error {
	select {
	case c.lock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	c.wseq, c.wprev, c.wlast = c.seq, c.prev, c.last
	return nil
}

// Stamp returns the occurred_at a record of this write gets: t to the microsecond (PostgreSQL's
// precision), or the previous record's time if t is older — records reach a chain slightly out
// of order (a batch of resolutions buffered while an admin change committed).
func (c *Chain) Stamp(t time.Time) time.Time {
	t = t.Truncate(time.Microsecond)
	if t.Before(c.wlast) {
		t = c.wlast
	}
	c.wlast = t
	return t
}

// Next links the next record of this write, whose content (the encoding the verifier rebuilds
// from the stored row) is given.
func (c *Chain) Next(content []byte) Link {
	l := Link{Chain: c.id, Seq: c.wseq + 1, KeyID: c.keyID, Prev: c.wprev, HasPrev: c.wseq > 0}
	var prev []byte
	if l.HasPrev {
		prev = l.Prev[:]
	}
	c.m.mac(l.Chain, l.Seq, prev, l.KeyID, content, &l.MAC)
	c.wseq, c.wprev = l.Seq, l.MAC
	return l
}

// Commit makes the write's records part of the chain (its transaction committed) and releases it.
func (c *Chain) Commit() {
	c.seq, c.prev, c.last = c.wseq, c.wprev, c.wlast
	<-c.lock
}

// Abort forgets the write (its transaction failed, or may have) and releases the chain, which
// continues as a new chain: the write may have committed after all, and continuing the old one
// could then fork it.
func (c *Chain) Abort() {
	c.last = c.wlast
	c.restart()
	<-c.lock
}

// ID is the chain's current id (for tests and logs).
func (c *Chain) ID() uuid.UUID { return c.id }
