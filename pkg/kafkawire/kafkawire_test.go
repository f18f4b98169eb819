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

// TestHeaders pins every header name: they are a published contract that consumers in other
// languages read, so a rename must fail here first.
func TestHeaders(t *testing.T) {
	for got, want := range map[string]string{
		kafkawire.HeaderEventID: "event-id", kafkawire.HeaderEventType: "event-type",
		kafkawire.HeaderStreamVersion: "stream-version", kafkawire.HeaderGlobalPosition: "global-position",
		kafkawire.HeaderCorrelationID: "correlation-id", kafkawire.HeaderCausationID: "causation-id",
		kafkawire.HeaderRecordedAt: "recorded-at", kafkawire.HeaderContentType: "content-type",
		kafkawire.HeaderFingerprint: "schema-fingerprint", kafkawire.HeaderMetadata: "metadata",
		kafkawire.HeaderError: "error", kafkawire.HeaderOriginalTopic: "original-topic",
		kafkawire.HeaderOriginalPartition: "original-partition", kafkawire.HeaderOriginalOffset: "original-offset",
		kafkawire.HeaderAttempts: "attempts", kafkawire.HeaderTraceparent: "traceparent",
		kafkawire.HeaderTracestate: "tracestate", kafkawire.HeaderPublishedAt: "published-at",
	} {
		if got != want {
			t.Errorf("header %q, want %q", got, want)
		}
	}
}
