package readmodel_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/services/projector/readmodel"
)

// The polls of these waits are an hour apart: only a commit of the consumer's unit can end
// their pauses before their deadline.

// waitEnv is a projection whose waits poll hourly, with a user at version 0.
type waitEnv struct {
	*env
	id     uuid.UUID
	stream string
	unit   consume.Unit
}

func newWaitEnv(t *testing.T) *waitEnv {
	t.Helper()
	e := newEnv(t)
	readmodel.SetPolls(e.proj, time.Hour, time.Hour)
	id := newID()
	w := &waitEnv{env: e, id: id, stream: userStream(id), unit: readmodel.ConsumerUnit(e.proj)}
	e.mustApply(t, ev(w.stream, 0, domain.EventUserCreated, domain.UserCreated{Email: "w@example.com", Name: "W"}))
	return w
}

// commit applies the stream's version 1, named name, in a unit of its own; fail, when not
// nil, is returned by the unit after the event was applied, which rolls it back.
func (w *waitEnv) commit(name string, fail error) error {
	return w.unit(context.Background(), func(ctx context.Context) error {
		env := ev(w.stream, 1, domain.EventUserProfileUpdated, domain.UserProfileUpdated{Name: strp(name)})
		if err := w.proj.Handle(ctx, &consume.Message{Event: env, Key: []byte(env.StreamID)}); err != nil {
			return err
		}
		return fail
	})
}

// watchedAfter fails the test if the projection still watches a stream once its waits ended.
func (w *waitEnv) watchedAfter(t *testing.T) {
	t.Helper()
	if n := readmodel.Watching(w.proj); n != 0 {
		t.Errorf("%d streams still watched after the waits", n)
	}
}

func TestWait_WokenByTheCommitOfItsStream(t *testing.T) {
	w := newWaitEnv(t)
	pauses := 0
	readmodel.SetPollHook(w.proj, func() {
		if pauses++; pauses == 1 {
			if err := w.commit("Woken", nil); err != nil {
				t.Error(err)
			}
		}
	})
	defer readmodel.SetPollHook(w.proj, nil)
	start := time.Now()
	u, err := w.proj.UserAt(context.Background(), w.id, readmodel.Wait{MinVersion: 1, For: 10 * time.Second})
	if err != nil || u.Version != 1 || u.Name != "Woken" {
		t.Fatalf("got %+v, %v; want version 1", u, err)
	}
	if pauses != 1 || time.Since(start) >= 10*time.Second {
		t.Errorf("%d pauses in %s; want the one the commit ended", pauses, time.Since(start))
	}
	w.watchedAfter(t)
}

func TestWait_NotWokenByARolledBackUnit(t *testing.T) {
	w := newWaitEnv(t)
	refused := errors.New("refused after applying")
	pauses := 0
	readmodel.SetPollHook(w.proj, func() {
		pauses++
		if err := w.commit("Never", refused); !errors.Is(err, refused) {
			t.Errorf("unit: %v, want the refusal", err)
		}
	})
	defer readmodel.SetPollHook(w.proj, nil)
	start := time.Now()
	_, err := w.proj.UserAt(context.Background(), w.id, readmodel.Wait{MinVersion: 1, For: 200 * time.Millisecond})
	var nc *readmodel.NotCaughtUpError
	if !errors.As(err, &nc) || nc.Version != 0 {
		t.Fatalf("got %v, want NotCaughtUpError at version 0", err)
	}
	if d := time.Since(start); pauses != 1 || d < 200*time.Millisecond {
		t.Errorf("%d pauses, gave up after %s; want one pause that lasts until the deadline", pauses, d)
	}
	w.watchedAfter(t)
}

func TestWait_ManyWaitersWokenByOneCommit(t *testing.T) {
	w := newWaitEnv(t)
	const waiters = 20
	paused := make(chan struct{}, waiters)
	readmodel.SetPollHook(w.proj, func() { paused <- struct{}{} })
	defer readmodel.SetPollHook(w.proj, nil)
	var wg sync.WaitGroup
	errs := make(chan error, waiters)
	for range waiters {
		wg.Go(func() {
			u, err := w.proj.UserAt(context.Background(), w.id, readmodel.Wait{MinVersion: 1, For: time.Minute})
			if err == nil && u.Version != 1 {
				err = errors.New("woken before version 1")
			}
			errs <- err
		})
	}
	for range waiters {
		<-paused // every waiter has read version 0 and watches the stream
	}
	start := time.Now()
	if err := w.commit("All", nil); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if d := time.Since(start); d >= 30*time.Second {
		t.Errorf("the waiters ended %s after the commit: at their deadline, not woken by it", d)
	}
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	w.watchedAfter(t)
}
