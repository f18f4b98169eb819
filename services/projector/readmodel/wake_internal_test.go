package readmodel

import "testing"

// TestWakeups: a commit closes the watch of each stream it applied, and only those; a
// released watch leaves nothing behind, and a stream committed twice is closed once.
func TestWakeups(t *testing.T) {
	var w wakeups
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	a1, releaseA1 := w.watch("a")
	a2, releaseA2 := w.watch("a")
	b, releaseB := w.watch("b")
	if a1 != a2 {
		t.Error("two waits on one stream got different watches")
	}
	w.committed([]string{"c"})
	if closed(a1) || closed(b) {
		t.Fatal("a commit of another stream woke a wait")
	}
	w.committed([]string{"a", "a"}) // two events of one stream: one close
	if !closed(a1) || closed(b) {
		t.Fatalf("after a commit of a: a woken %v, b woken %v; want a only", closed(a1), closed(b))
	}
	a3, releaseA3 := w.watch("a") // a wait that starts after the commit waits for the next one
	if closed(a3) {
		t.Error("a new watch of a was already woken")
	}
	releaseA1()
	releaseA2()
	if n := w.watching(); n != 2 {
		t.Errorf("%d streams watched, want 2 (a again, and b)", n)
	}
	releaseA3()
	releaseB()
	if n := w.watching(); n != 0 {
		t.Errorf("%d streams still watched after every release", n)
	}
}
