package inmem_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/inmem"
)

func ExampleNew() {
	ctx := context.Background()
	store := inmem.New(inmem.Options{MaxEventsPerStream: 2})
	e, err := events.NewEvent("TaskAdded", map[string]string{"title": "write the example"})
	if err != nil {
		log.Fatal(err)
	}
	for range 3 {
		res, err := store.Append(ctx, "todo-1", events.Any(), []events.Event{e}, events.AppendOptions{})
		switch {
		case errors.Is(err, events.ErrStreamFull):
			fmt.Println(err)
		case err != nil:
			log.Fatal(err)
		default:
			fmt.Println("appended version", res.LastVersion)
		}
	}
	// Output:
	// appended version 0
	// appended version 1
	// stream todo-1 has 2 events; appending 1 would exceed the maximum of 2 (MAX_EVENTS_PER_AGGREGATE)
}
