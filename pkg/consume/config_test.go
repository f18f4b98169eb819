package consume_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
)

// TestNew_MembershipTimings: a configuration whose drain could outlast the broker's session
// is refused, with the reason; the defaults fit together.
func TestNew_MembershipTimings(t *testing.T) {
	h := consume.HandlerFunc(func(_ context.Context, _ *consume.Message) error { return nil })
	base := consume.Config{Brokers: []string{"127.0.0.1:1"}, Group: "g", Topics: []string{"t"}, DLQTopic: "d",
		Decode: func(kafka.Message) (events.Envelope, error) { return events.Envelope{}, nil }}
	tests := []struct {
		name                             string
		session, heartbeat, drain, rebal time.Duration
		want                             string // "" when accepted
	}{
		{name: "Defaults"},
		{name: "LongerSession", session: 45 * time.Second},
		{name: "DrainPastSession", drain: 11250 * time.Millisecond, want: "must be shorter than the session timeout"},
		{name: "DrainPlusHeartbeatAtSession", session: 6 * time.Second, heartbeat: time.Second, drain: 5 * time.Second,
			want: "the drain timeout (5s) plus the heartbeat interval (1s) must be shorter than the session timeout (6s)"},
		{name: "HeartbeatPastSession", session: 2 * time.Second, heartbeat: 3 * time.Second, want: "heartbeat interval (3s) must be shorter"},
		{name: "RebalanceWithinDrain", drain: 8 * time.Second, rebal: 8 * time.Second, want: "rebalance timeout (8s) must exceed the drain timeout (8s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			cfg.SessionTimeout, cfg.HeartbeatInterval, cfg.DrainTimeout, cfg.RebalanceTimeout = tt.session, tt.heartbeat, tt.drain, tt.rebal
			_, err := consume.New(cfg, h)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("New: %v, want it accepted", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("New: %v, want an error with %q", err, tt.want)
			}
		})
	}
}
