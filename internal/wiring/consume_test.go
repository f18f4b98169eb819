package wiring_test

import (
	"log/slog"
	"strings"
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

// TestConsumerConfig_CommitInterval: a group commits at most every CONSUMER_COMMIT_INTERVAL,
// and after every batch when it is 0s or when ASYNC_EVENT_PROCESSING=false.
func TestConsumerConfig_CommitInterval(t *testing.T) {
	tests := []struct {
		name string
		env  string // "" leaves the default
		sync bool   // ASYNC_EVENT_PROCESSING=false
		want time.Duration
	}{
		{name: "Default", want: time.Second},
		{name: "Set", env: "5s", want: 5 * time.Second},
		{name: "EveryBatch", env: "0s", want: -1},
		{name: "Sequential", env: "5s", sync: true, want: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := map[string]string{"EVENT_SIGNING_KEY": testenv.SigningKey}
			if tt.env != "" {
				vars["CONSUMER_COMMIT_INTERVAL"] = tt.env
			}
			if tt.sync {
				vars["ASYNC_EVENT_PROCESSING"] = "false"
			}
			cfg, err := config.Load("", func(name string) (string, bool) { v, ok := vars[name]; return v, ok })
			if err != nil {
				t.Fatal(err)
			}
			cc, err := wiring.ConsumerConfig(cfg, nil, "g", slog.New(slog.DiscardHandler), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := cc.CommitInterval; got != tt.want {
				t.Errorf("CommitInterval = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestConsumerConfig_Lingers: the notifier's and the auditor's groups let their batches fill
// for NOTIFIER_BATCH_LINGER and AUDITOR_BATCH_LINGER; the projector's takes what has arrived.
func TestConsumerConfig_Lingers(t *testing.T) {
	for _, tt := range []struct{ notifier, auditor string }{{"", ""}, {"0s", "250ms"}, {"250ms", "0s"}} {
		vars := map[string]string{"EVENT_SIGNING_KEY": testenv.SigningKey}
		want := map[string]time.Duration{"projector": 0, "notifier": 20 * time.Millisecond, "auditor": 20 * time.Millisecond}
		for service, env := range map[string]string{"notifier": tt.notifier, "auditor": tt.auditor} {
			if env != "" {
				vars[strings.ToUpper(service)+"_BATCH_LINGER"] = env
				want[service], _ = time.ParseDuration(env)
			}
		}
		cfg, err := config.Load("", func(name string) (string, bool) { v, ok := vars[name]; return v, ok })
		if err != nil {
			t.Fatal(err)
		}
		for _, service := range wiring.ConsumingServices {
			cc, err := wiring.ConsumerConfig(cfg, nil, cfg.ConsumerGroup(service), slog.New(slog.DiscardHandler), nil)
			if err != nil {
				t.Fatal(err)
			}
			if cc.Linger != want[service] {
				t.Errorf("NOTIFIER_BATCH_LINGER=%q AUDITOR_BATCH_LINGER=%q: the %s group's Linger = %s, want %s",
					tt.notifier, tt.auditor, service, cc.Linger, want[service])
			}
		}
	}
}
