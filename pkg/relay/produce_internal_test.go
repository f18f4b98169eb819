package relay

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/segmentio/kafka-go"
)

// TestRefusedForGood: the broker's refusals that are the records' fault hold their stream;
// every other failure pauses and retries. One row per error code, as produce sees it (the
// response's error, wrapped with the broker's message and the records it names).
func TestRefusedForGood(t *testing.T) {
	for _, tc := range []struct {
		err          error
		forGood, big bool
	}{
		{kafka.MessageSizeTooLarge, true, true},
		{kafka.RecordListTooLarge, true, true},
		{kafka.InvalidRecord, true, false},
		{kafka.InvalidMessage, true, false}, // CorruptMessage
		{kafka.InvalidMessageSize, true, false},
		{kafka.InvalidTimestamp, true, false},
		{kafka.NotLeaderForPartition, false, false},
		{kafka.LeaderNotAvailable, false, false},
		{kafka.RequestTimedOut, false, false},
		{kafka.NotEnoughReplicas, false, false},
		{kafka.NotEnoughReplicasAfterAppend, false, false},
		{kafka.UnknownTopicOrPartition, false, false},
		{kafka.NetworkException, false, false},
		{kafka.KafkaStorageError, false, false},
		{kafka.TopicAuthorizationFailed, false, false},
		{kafka.PolicyViolation, false, false},
		{kafka.ThrottlingQuotaExceeded, false, false},
		{context.DeadlineExceeded, false, false},
		{errors.New("dial tcp 127.0.0.1:9092: connect: connection refused"), false, false},
	} {
		t.Run(tc.err.Error(), func(t *testing.T) {
			var res *kafka.ProduceResponse
			if _, ok := tc.err.(kafka.Error); ok {
				res = &kafka.ProduceResponse{Error: fmt.Errorf("%w: the broker's message", tc.err), RecordErrors: map[int]error{1: errors.New("bad record")}}
			}
			err := tc.err
			if res != nil {
				err = produceError(res)
			}
			if got := refusedForGood(err); got != tc.forGood {
				t.Errorf("refusedForGood(%v) = %v, want %v", err, got, tc.forGood)
			}
			if got := sizeRefusal(err); got != tc.big {
				t.Errorf("sizeRefusal(%v) = %v, want %v", err, got, tc.big)
			}
		})
	}
}

// TestProduceError: a response's error names the records the broker refused.
func TestProduceError(t *testing.T) {
	if err := produceError(&kafka.ProduceResponse{}); err != nil {
		t.Errorf("no error in the response: %v", err)
	}
	err := produceError(&kafka.ProduceResponse{Error: kafka.InvalidRecord, RecordErrors: map[int]error{3: errors.New("x"), 1: errors.New("y")}})
	if want := "[87] Invalid Record: this record has failed the validation on broker and hence be rejected (record 1: y; record 3: x)"; err == nil || err.Error() != want {
		t.Errorf("produceError = %v, want %s", err, want)
	}
}
