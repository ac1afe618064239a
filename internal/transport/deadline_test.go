package transport

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

type ctxKey struct{}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestBoundedContextUnarmed(t *testing.T) {
	parent := context.WithValue(context.Background(), ctxKey{}, "v")
	before := time.Now()
	c := withCallDeadline(parent, time.Millisecond)
	defer c.release()
	if d, ok := c.Deadline(); !ok || d.Before(before.Add(time.Millisecond)) || d.After(time.Now().Add(time.Millisecond)) {
		t.Errorf("Deadline = %v %v, want about now+1ms", d, ok)
	}
	if c.Value(ctxKey{}) != "v" {
		t.Error("Value does not reach the parent")
	}
	time.Sleep(5 * time.Millisecond)
	// Nothing has waited on it: no timer, and Err stays nil while Done is not closed.
	if c.armed.Load() {
		t.Fatal("armed without anyone asking for Done")
	}
	if err := c.Err(); err != nil {
		t.Errorf("unarmed Err = %v, want nil", err)
	}
	// Asking for Done after the deadline: closed at once, and Err says why.
	select {
	case <-c.Done():
	case <-time.After(time.Second):
		t.Fatal("Done not closed after the deadline")
	}
	if !errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Errorf("Err = %v, want DeadlineExceeded", c.Err())
	}
}

func TestBoundedContextDeadlineFires(t *testing.T) {
	c := withCallDeadline(context.Background(), 300*time.Millisecond)
	defer c.release()
	child, cancel := context.WithCancel(c) // a child arms it, as pgx's query contexts do
	defer cancel()
	if !c.armed.Load() {
		t.Fatal("a child context did not arm the deadline")
	}
	if closed(c.Done()) || c.Err() != nil {
		t.Fatal("done before the deadline")
	}
	select {
	case <-child.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the child was not cancelled at the deadline")
	}
	if !errors.Is(c.Err(), context.DeadlineExceeded) || !errors.Is(child.Err(), context.DeadlineExceeded) {
		t.Errorf("Err = %v / child %v, want DeadlineExceeded", c.Err(), child.Err())
	}
}

func TestBoundedContextParent(t *testing.T) {
	// The caller's own earlier deadline wins, armed or not.
	early := time.Now().Add(10 * time.Millisecond)
	parent, cancelParent := context.WithDeadline(context.Background(), early)
	defer cancelParent()
	c := withCallDeadline(parent, time.Hour)
	defer c.release()
	if d, _ := c.Deadline(); !d.Equal(early) {
		t.Errorf("Deadline = %v, want the caller's %v", d, early)
	}
	<-c.Done()
	if !errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Errorf("Err = %v, want DeadlineExceeded", c.Err())
	}

	// A cancelled caller shows through an unarmed context.
	parent2, cancel2 := context.WithCancel(context.Background())
	c2 := withCallDeadline(parent2, time.Hour)
	defer c2.release()
	cancel2()
	if !errors.Is(c2.Err(), context.Canceled) {
		t.Errorf("Err = %v, want Canceled", c2.Err())
	}
	if !closed(c2.Done()) {
		t.Error("Done open although the caller is gone")
	}
}

func TestBoundedContextRelease(t *testing.T) {
	c := withCallDeadline(context.Background(), time.Hour)
	done := c.Done()
	c.release()
	if !closed(done) || !errors.Is(c.Err(), context.Canceled) {
		t.Errorf("after release: closed %v, Err %v; want closed, Canceled", closed(done), c.Err())
	}
	// Armed only after the call ended: already over.
	late := withCallDeadline(context.Background(), time.Hour)
	late.release()
	if !closed(late.Done()) || !errors.Is(late.Err(), context.Canceled) {
		t.Errorf("armed after release: Err %v, want Canceled", late.Err())
	}
}

// TestBoundedContextConcurrent: Done, Err, Deadline and release from many goroutines at once
// (run with -race) hand out one channel, which release closes.
func TestBoundedContextConcurrent(t *testing.T) {
	for range 200 {
		c := withCallDeadline(context.Background(), time.Hour)
		var wg sync.WaitGroup
		chans := make([]<-chan struct{}, 8)
		for i := range chans {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = c.Err()
				_, _ = c.Deadline()
				chans[i] = c.Done()
			}()
		}
		wg.Add(1)
		go func() { defer wg.Done(); c.release() }()
		wg.Wait()
		for i := range chans {
			if chans[i] != chans[0] || !closed(chans[i]) {
				t.Fatalf("goroutine %d got a different or open channel", i)
			}
		}
	}
}
