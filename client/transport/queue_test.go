package transport

import "testing"

// TestQueueMarkAfterItemsTaken: a mark (how Drained is closed) runs only
// once the consumer has taken every item pushed before it, so that a
// consumer that sees Drained has the whole backlog and need not wait for
// stragglers.
func TestQueueMarkAfterItemsTaken(t *testing.T) {
	q := newQueue[int]()
	done, stop := make(chan struct{}), make(chan struct{})
	ended := make(chan struct{})
	go func() { defer close(ended); q.run(done, stop) }()
	defer func() { close(stop); <-ended }()

	marked := make(chan struct{})
	for i := range 3 {
		q.push(i)
	}
	q.after(func() { close(marked) })
	q.push(3)
	for i := range 3 {
		select {
		case <-marked:
			t.Fatalf("mark ran with item %d not yet taken", i)
		default:
		}
		if v := <-q.out; v != i {
			t.Fatalf("got %d, want %d", v, i)
		}
	}
	// Item 3 comes after the mark, so the run loop reaches the mark
	// without the consumer.
	<-marked
	if v := <-q.out; v != 3 {
		t.Fatalf("got %d, want 3", v)
	}
}
