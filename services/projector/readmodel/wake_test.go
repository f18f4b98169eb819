package readmodel_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/services/projector/readmodel"
	"github.com/annals-dev/annals/services/writer/domain"
)

// The polls of these waits are an hour apart: only a commit of the consumer's unit can end
// their pauses before their deadline.

func TestWait_WokenByTheCommitOfItsStream(t *testing.T) {
	e := newEnv(t)
	readmodel.SetPolls(e.proj, time.Hour, time.Hour)
	unit := readmodel.ConsumerUnit(e.proj)
	ctx := context.Background()
	id := newID()
	s := userStream(id)
	e.mustApply(t, ev(s, 0, domain.EventUserCreated, domain.UserCreated{Email: "w@example.com", Name: "W"}))
	handle := func(ctx context.Context, env events.Envelope) error {
		return e.proj.Handle(ctx, &consume.Message{Event: env, Key: []byte(env.StreamID)})
	}

	pauses := 0
	readmodel.SetPollHook(e.proj, func() {
		pauses++
		if pauses > 1 {
			return
		}
		if err := unit(ctx, func(ctx context.Context) error {
			return handle(ctx, ev(s, 1, domain.EventUserProfileUpdated, domain.UserProfileUpdated{Name: strp("Woken")}))
		}); err != nil {
			t.Error(err)
		}
	})
	defer readmodel.SetPollHook(e.proj, nil)
	start := time.Now()
	u, err := e.proj.UserAt(ctx, id, readmodel.Wait{MinVersion: 1, For: 10 * time.Second})
	if err != nil || u.Version != 1 || u.Name != "Woken" {
		t.Fatalf("got %+v, %v; want version 1", u, err)
	}
	if pauses != 1 || time.Since(start) >= 10*time.Second {
		t.Errorf("%d pauses in %s; want the one the commit ended", pauses, time.Since(start))
	}
	if n := readmodel.Watching(e.proj); n != 0 {
		t.Errorf("%d streams still watched after the wait", n)
	}
}

func TestWait_NotWokenByARolledBackUnit(t *testing.T) {
	e := newEnv(t)
	readmodel.SetPolls(e.proj, time.Hour, time.Hour)
	unit := readmodel.ConsumerUnit(e.proj)
	ctx := context.Background()
	id := newID()
	s := userStream(id)
	e.mustApply(t, ev(s, 0, domain.EventUserCreated, domain.UserCreated{Email: "r@example.com", Name: "R"}))

	refused := errors.New("refused after applying")
	pauses := 0
	readmodel.SetPollHook(e.proj, func() {
		pauses++
		err := unit(ctx, func(ctx context.Context) error {
			env := ev(s, 1, domain.EventUserProfileUpdated, domain.UserProfileUpdated{Name: strp("Never")})
			if err := e.proj.Handle(ctx, &consume.Message{Event: env, Key: []byte(env.StreamID)}); err != nil {
				return err
			}
			return refused
		})
		if !errors.Is(err, refused) {
			t.Errorf("unit: %v, want the refusal", err)
		}
	})
	defer readmodel.SetPollHook(e.proj, nil)
	start := time.Now()
	_, err := e.proj.UserAt(ctx, id, readmodel.Wait{MinVersion: 1, For: 200 * time.Millisecond})
	var nc *readmodel.NotCaughtUpError
	if !errors.As(err, &nc) || nc.Version != 0 {
		t.Fatalf("got %v, want NotCaughtUpError at version 0", err)
	}
	if d := time.Since(start); pauses != 1 || d < 200*time.Millisecond {
		t.Errorf("%d pauses, gave up after %s; want one pause that lasts until the deadline", pauses, d)
	}
	if n := readmodel.Watching(e.proj); n != 0 {
		t.Errorf("%d streams still watched after the wait", n)
	}
}

func TestWait_ManyWaitersWokenByOneCommit(t *testing.T) {
	e := newEnv(t)
	readmodel.SetPolls(e.proj, time.Hour, time.Hour)
	unit := readmodel.ConsumerUnit(e.proj)
	ctx := context.Background()
	id := newID()
	s := userStream(id)
	e.mustApply(t, ev(s, 0, domain.EventUserCreated, domain.UserCreated{Email: "m@example.com", Name: "M"}))

	const waiters = 20
	paused := make(chan struct{}, waiters)
	readmodel.SetPollHook(e.proj, func() { paused <- struct{}{} })
	defer readmodel.SetPollHook(e.proj, nil)
	var wg sync.WaitGroup
	errs := make(chan error, waiters)
	for range waiters {
		wg.Go(func() {
			u, err := e.proj.UserAt(ctx, id, readmodel.Wait{MinVersion: 1, For: time.Minute})
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
	if err := unit(ctx, func(ctx context.Context) error {
		env := ev(s, 1, domain.EventUserProfileUpdated, domain.UserProfileUpdated{Name: strp("All")})
		return e.proj.Handle(ctx, &consume.Message{Event: env, Key: []byte(env.StreamID)})
	}); err != nil {
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
	if n := readmodel.Watching(e.proj); n != 0 {
		t.Errorf("%d streams still watched after the waits", n)
	}
}
