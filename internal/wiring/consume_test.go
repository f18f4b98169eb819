package wiring_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/internal/wiring"
	"github.com/annals-dev/annals/pkg/consume"
)

// TestConsumerConfig_MembershipTimings: a group gets the configuration's session and drain
// timeouts, which the consumer runtime accepts as they are.
func TestConsumerConfig_MembershipTimings(t *testing.T) {
	signed := func() *config.Config {
		c := config.Default()
		c.EventSigning.Key = config.Secret(testenv.SigningKey)
		return c
	}
	cfg := signed()
	cfg.Kafka.SessionTimeout, cfg.Kafka.DrainTimeout = 30*time.Second, 20*time.Second
	for _, c := range []*config.Config{signed(), cfg} {
		cc, err := wiring.ConsumerConfig(c, nil, "g", slog.New(slog.DiscardHandler), nil)
		if err != nil {
			t.Fatal(err)
		}
		if cc.SessionTimeout != c.Kafka.SessionTimeout || cc.DrainTimeout != c.Kafka.DrainTimeout ||
			cc.HeartbeatInterval != config.ConsumerHeartbeat || cc.RebalanceTimeout <= cc.DrainTimeout {
			t.Errorf("session %s, drain %s, heartbeat %s, rebalance %s; want the configuration's %s and %s",
				cc.SessionTimeout, cc.DrainTimeout, cc.HeartbeatInterval, cc.RebalanceTimeout, c.Kafka.SessionTimeout, c.Kafka.DrainTimeout)
		}
		if _, err := consume.New(cc, consume.HandlerFunc(nil)); err != nil {
			t.Errorf("consume.New refuses the configuration's timings: %v", err)
		}
	}
}
