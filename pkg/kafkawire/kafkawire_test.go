package kafkawire_test

import (
	"testing"

	"github.com/annals-dev/annals/pkg/kafkawire"
)

func TestTopics(t *testing.T) {
	for _, tc := range []struct {
		name, got, want string
	}{
		{"Topic", kafkawire.Topic("annals", "order"), "annals.order"},
		{"TopicWithDottedPrefix", kafkawire.Topic("prod.annals", "user"), "prod.annals.user"},
		{"DeadLetterTopic", kafkawire.DeadLetterTopic("annals", "annals-projector"), "annals.dlq.annals-projector"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
}
