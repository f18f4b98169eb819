package lag_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/annals-dev/annals/pkg/lag"
)

// A service exports the lag of the groups reading its topics next to its own metrics.
func ExampleMonitor() {
	ctx := context.Background()
	mon, err := lag.New(lag.Config{
		Brokers: []string{"localhost:9092"},
		Topics:  []string{"annals.user", "annals.order"},
		Logger:  slog.New(slog.NewJSONHandler(os.Stderr, nil)),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(mon)
	go mon.Run(ctx) // polls every 10 s until ctx ends
	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
}

// One poll, read directly: the groups that lag and how old their oldest unconsumed record is.
func ExampleMonitor_Poll() {
	mon, err := lag.New(lag.Config{Brokers: []string{"localhost:9092"}, Topics: []string{"annals.user", "annals.order"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	s, err := mon.Poll(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, g := range s.Groups {
		if g.Lag() > 0 {
			fmt.Printf("%s (%s, %d members): %d records behind, the oldest %.0f s old\n", g.Name, g.State, g.Members, g.Lag(), g.MaxLagSeconds())
		}
	}
}
