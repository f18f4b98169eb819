package benchkit

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/events"
)

// Stream is the whole life of one stream, as the writer would have recorded it command by
// command.
type Stream struct {
	ID     string
	Events []events.Event
}

// Mix is the streams of users and their orders whose events add up to at least n, in the
// proportions of internal/load's command mix: a user is created and renamed, and places
// three orders, each created with one or two lines, given three more and one taken out,
// then confirmed (and then shipped half the time), cancelled, or left pending. Every stream
// is valid for the domain, so the projector applies all of it, and a user's stream is listed
// before its orders. The same seed gives the same events (new ids aside).
func Mix(n int, seed uint64) ([]Stream, error) {
	rng := rand.New(rand.NewPCG(seed, 0x616e6e616c73))
	var out []Stream
	total := 0
	for u := 0; total < n; u++ {
		userID := uuid.Must(uuid.NewV7()).String()
		name := fmt.Sprintf("Customer %d", u)
		renamed := name + " Lovelace"
		user, err := stream("user-"+userID,
			ev{domain.EventUserCreated, domain.UserCreated{UserID: userID, Email: fmt.Sprintf("customer%d@bench.example", u), Name: name}},
			ev{domain.EventUserProfileUpdated, domain.UserProfileUpdated{Name: &renamed}},
		)
		if err != nil {
			return nil, err
		}
		out = append(out, user)
		total += len(user.Events)
		for range 3 {
			o, err := order(rng, userID)
			if err != nil {
				return nil, err
			}
			out = append(out, o)
			total += len(o.Events)
		}
	}
	return out, nil
}

// Emails is how many emails the notifier sends for streams: a welcome per user, a
// confirmation per confirmed order and a notice per cancelled one.
func Emails(streams []Stream) int {
	n := 0
	for _, s := range streams {
		for _, e := range s.Events {
			switch e.Type {
			case domain.EventUserCreated, domain.EventOrderConfirmed, domain.EventOrderCancelled:
				n++
			}
		}
	}
	return n
}

// Count is how many events streams hold.
func Count(streams []Stream) int {
	n := 0
	for _, s := range streams {
		n += len(s.Events)
	}
	return n
}

type ev struct {
	typ  string
	data any
}

func stream(id string, evs ...ev) (Stream, error) {
	s := Stream{ID: id, Events: make([]events.Event, len(evs))}
	for i, e := range evs {
		b, err := json.Marshal(e.data)
		if err != nil {
			return Stream{}, fmt.Errorf("bench: %s: %w", e.typ, err)
		}
		s.Events[i] = events.Event{Type: e.typ, Data: b}
	}
	return s, nil
}

var itemNames = []string{"Stoneware mug, 350 ml", "Linen tea towel", "Cast-iron skillet, 26 cm", "Beeswax candle (set of 3)", "Oak chopping board"}

func order(rng *rand.Rand, userID string) (Stream, error) {
	id := uuid.Must(uuid.NewV7()).String()
	seq := 0
	item := func() domain.Item {
		seq++
		return domain.Item{ID: fmt.Sprintf("sku-%d", seq), Name: itemNames[rng.IntN(len(itemNames))],
			PriceCents: 100 + rng.Int64N(9900), Quantity: 1 + rng.Int64N(3)}
	}
	lines := []domain.Item{item()}
	if rng.IntN(2) == 0 {
		lines = append(lines, item())
	}
	total := int64(0)
	for _, it := range lines {
		total += it.PriceCents * it.Quantity
	}
	evs := []ev{{domain.EventOrderCreated, domain.OrderCreated{OrderID: id, UserID: userID, Items: lines, TotalCents: total}}}
	for range 3 {
		it := item()
		lines = append(lines, it)
		total += it.PriceCents * it.Quantity
		evs = append(evs, ev{domain.EventItemAdded, domain.ItemAdded{Item: it}})
	}
	gone := lines[rng.IntN(len(lines))]
	total -= gone.PriceCents * gone.Quantity
	evs = append(evs, ev{domain.EventItemRemoved, domain.ItemRemoved{ItemID: gone.ID}})
	switch r := rng.IntN(100); {
	case r < 70:
		evs = append(evs, ev{domain.EventOrderConfirmed, domain.OrderConfirmed{TotalCents: total}})
		if rng.IntN(2) == 0 {
			evs = append(evs, ev{domain.EventOrderShipped, domain.OrderShipped{}})
		}
	case r < 85:
		evs = append(evs, ev{domain.EventOrderCancelled, domain.OrderCancelled{Reason: "changed my mind"}})
	}
	return stream("order-"+id, evs...)
}

// Fill appends each stream's events in one append, from writers appenders at once. Each
// event gets its own outbox row all the same, so the relay has as much to publish as if the
// writer had recorded the events one command at a time.
func Fill(ctx context.Context, s events.Appender, streams []Stream, writers int) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan Stream)
	var wg sync.WaitGroup
	for range max(writers, 1) {
		wg.Go(func() {
			for st := range next {
				if _, err := s.Append(ctx, st.ID, events.NoStream(), st.Events,
					events.AppendOptions{CorrelationID: uuid.NewString(), CausationID: uuid.NewString()}); err != nil {
					cancel(fmt.Errorf("bench: fill %s: %w", st.ID, err))
					return
				}
			}
		})
	}
feed:
	for _, st := range streams {
		select {
		case next <- st:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}
