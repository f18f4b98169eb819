package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/inmem"
)

// account is the state of a tiny made-up aggregate: a bank account.
type account struct {
	Open    bool  `json:"open"`
	Balance int64 `json:"balance"`
}

// amount is the data of the MoneyDeposited and MoneyWithdrawn events.
type amount struct {
	Amount int64 `json:"amount"`
}

// accounts says how an account is rebuilt from its events.
var accounts = events.Definition[account]{
	Category:           "account",
	StateSchemaVersion: 1,
	Apply: func(s *account, e events.Envelope) error {
		switch e.Type {
		case "AccountOpened":
			s.Open = true
		case "MoneyDeposited", "MoneyWithdrawn":
			var d amount
			if err := json.Unmarshal(e.Data, &d); err != nil {
				return err
			}
			if e.Type == "MoneyWithdrawn" {
				d.Amount = -d.Amount
			}
			s.Balance += d.Amount
		default:
			return fmt.Errorf("unknown event type %s", e.Type)
		}
		return nil
	},
}

// withdraw is a command: it decides on the current state, then records what happened.
func withdraw(a *events.Aggregate[account], n int64) error {
	if !a.State().Open || a.State().Balance < n {
		return fmt.Errorf("withdraw %d from %s: insufficient funds", n, a.ID())
	}
	return a.Record("MoneyWithdrawn", amount{n})
}

func ExampleRepository() {
	ctx := context.Background()
	repo := &events.Repository[account]{Store: inmem.New(inmem.Options{}), Def: accounts, SnapshotEvery: 2}

	// A new aggregate is saved expecting that its stream does not exist yet.
	a := repo.New("42")
	if err := a.Record("AccountOpened", nil); err != nil {
		log.Fatal(err)
	}
	if err := a.Record("MoneyDeposited", amount{100}); err != nil {
		log.Fatal(err)
	}
	res, err := repo.Save(ctx, a, events.AppendOptions{CorrelationID: "request-1"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("saved %s, versions %d to %d\n", a.StreamID(), res.FirstVersion, res.LastVersion)

	// Load, run a command, save: the save expects the stream to be where it was loaded.
	a, info, err := repo.Load(ctx, "42")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("loaded at version %d from the snapshot at %d and %d more events\n", a.Version(), info.SnapshotVersion, info.EventsRead)
	if err := withdraw(a, 30); err != nil {
		log.Fatal(err)
	}
	if err := withdraw(a, 500); err != nil {
		fmt.Println(err)
	}
	if _, err := repo.Save(ctx, a, events.AppendOptions{CorrelationID: "request-2"}); err != nil {
		log.Fatal(err)
	}

	a, _, err = repo.Load(ctx, "42")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("balance %d at version %d\n", a.State().Balance, a.Version())
	// Output:
	// saved account-42, versions 0 to 1
	// loaded at version 1 from the snapshot at 1 and 0 more events
	// withdraw 500 from 42: insufficient funds
	// balance 70 at version 2
}

func ExampleStore() {
	ctx := context.Background()
	var store events.Store = inmem.New(inmem.Options{})
	opened, err := events.NewEvent("AccountOpened", nil)
	if err != nil {
		log.Fatal(err)
	}
	deposited, err := events.NewEvent("MoneyDeposited", amount{100})
	if err != nil {
		log.Fatal(err)
	}

	// NoStream creates the stream, and fails if it exists already.
	res, err := store.Append(ctx, "account-7", events.NoStream(), []events.Event{opened, deposited}, events.AppendOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("appended versions %d to %d\n", res.FirstVersion, res.LastVersion)

	// Exact continues from the version the writer read: of two writers that read version 1,
	// the second is refused and learns where the stream is.
	for writer := range 2 {
		r, err := store.Append(ctx, "account-7", events.Exact(res.LastVersion), []events.Event{deposited}, events.AppendOptions{})
		var conflict *events.VersionConflictError
		switch {
		case errors.As(err, &conflict):
			fmt.Printf("writer %d refused: expected version %s, the stream is at %d\n", writer, conflict.Expected, conflict.Actual)
		case err != nil:
			log.Fatal(err)
		default:
			fmt.Printf("writer %d appended version %d\n", writer, r.LastVersion)
		}
	}

	// StreamExists appends to any existing stream; Any appends whatever the stream's state.
	_, err = store.Append(ctx, "account-8", events.StreamExists(), []events.Event{deposited}, events.AppendOptions{})
	fmt.Println(err)

	// Read the stream in version order, a page of up to 100 events from version 0 to the end.
	evs, err := store.ReadStream(ctx, "account-7", 0, -1, 100)
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range evs {
		fmt.Println(e.Version, e.Type, string(e.Data))
	}
	// Output:
	// appended versions 0 to 1
	// writer 0 appended version 2
	// writer 1 refused: expected version 1, the stream is at 2
	// version conflict on account-8: expected stream_exists, actual -1
	// 0 AccountOpened null
	// 1 MoneyDeposited {"amount":100}
	// 2 MoneyDeposited {"amount":100}
}
