package transport

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// boundedContext is the caller's context with the server's own deadline (--call-timeout), armed
// only when something waits on it. A warm resolution is answered from memory and never waits, so
// it should not pay for a timer it never uses: context.WithTimeout starts one per call and
// registers the call with its parent, ≈5% of the server's CPU per warm resolution at c=32 (make
// bench -profile). Anything that can block — a PostgreSQL query (pgx watches Done), a child
// context, context.AfterFunc — asks for Done first, and from then on this is exactly
// context.WithDeadline(parent, deadline).
//
// Until it is armed, Err reports only the parent's error: Done has not been handed out, so no one
// can be waiting on the deadline, and the contract "Err is nil while Done is not closed" holds.
type boundedContext struct {
	context.Context // the caller's
	deadline        time.Time

	mu       sync.Mutex
	armed    atomic.Bool // inner is set
	inner    context.Context
	cancel   context.CancelFunc
	released bool
}

func withCallDeadline(parent context.Context, d time.Duration) *boundedContext {
	return &boundedContext{Context: parent, deadline: time.Now().Add(d)}
}

func (c *boundedContext) arm() {
	if c.armed.Load() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inner == nil {
		c.inner, c.cancel = context.WithDeadline(c.Context, c.deadline)
		if c.released { // armed after the call ended: over, like a released WithTimeout
			c.cancel()
		}
		c.armed.Store(true)
	}
}

func (c *boundedContext) Deadline() (time.Time, bool) {
	if c.armed.Load() {
		return c.inner.Deadline()
	}
	if d, ok := c.Context.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

func (c *boundedContext) Done() <-chan struct{} {
	c.arm()
	return c.inner.Done()
}

func (c *boundedContext) Err() error {
	if c.armed.Load() {
		return c.inner.Err()
	}
	return c.Context.Err()
}

// Value answers for the parent: the armed context adds no values of its own.
func (c *boundedContext) Value(key any) any { return c.Context.Value(key) }

// release ends the call: it stops the timer if one was started, and cancels the context if it is
// armed later.
func (c *boundedContext) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.released = true
	if c.cancel != nil {
		c.cancel()
	}
}
