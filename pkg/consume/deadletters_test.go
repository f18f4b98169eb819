package consume_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/annals-dev/annals/pkg/consume"
)

func TestParked(t *testing.T) {
	block := consume.Block{StreamID: "order-1", Topic: "annals.order", Partition: 2, Offset: 10}
	letter := func(stream string, offset, version int64, reason string) consume.DeadLetter {
		return consume.DeadLetter{StreamID: stream, OriginalTopic: "annals.order", OriginalPartition: 2,
			OriginalOffset: offset, StreamVersion: version, Error: reason}
	}
	offsets := func(ds []consume.DeadLetter) []int64 {
		var out []int64
		for _, d := range ds {
			out = append(out, d.OriginalOffset)
		}
		return out
	}
	tests := []struct {
		name    string
		letters []consume.DeadLetter
		upTo    int64
		want    []int64
		err     string
	}{
		{name: "InOrderOnce", upTo: -1, want: []int64{10, 14, 20}, letters: []consume.DeadLetter{
			letter("order-1", 20, 5, "parked: ..."), letter("order-1", 10, 3, "broken"),
			letter("order-1", 14, 4, "parked: ..."), letter("order-1", 10, 3, "broken"), // written twice
			letter("order-2", 12, 0, "other stream"), letter("order-1", 7, 2, "an older block, released"),
			letter("order-1", 16, 9, "quarantined: not signed by the relay"),
		}},
		{name: "UpTo", upTo: 20, want: []int64{10, 14}, letters: []consume.DeadLetter{
			letter("order-1", 10, 3, "broken"), letter("order-1", 14, 4, "parked: ..."), letter("order-1", 20, 5, "parked: ..."),
		}},
		{name: "RelayRepeats", upTo: -1, want: []int64{10, 11, 12, 13}, letters: []consume.DeadLetter{
			letter("order-1", 10, 3, "broken"), letter("order-1", 11, 4, "parked: ..."),
			letter("order-1", 12, 3, "parked: ..."), letter("order-1", 13, 4, "parked: ..."),
		}},
		{name: "BlockedRecordGone", upTo: -1, err: "lacks the record the stream is blocked at", letters: []consume.DeadLetter{
			letter("order-1", 14, 4, "parked: ..."),
		}},
		{name: "Gap", upTo: -1, err: "lacks versions 4 to 5", letters: []consume.DeadLetter{
			letter("order-1", 10, 3, "broken"), letter("order-1", 30, 6, "parked: ..."),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := consume.Parked(tt.letters, block, tt.upTo)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("err = %v, want one with %q", err, tt.err)
				}
				return
			}
			if err != nil || !slices.Equal(offsets(got), tt.want) {
				t.Errorf("Parked = %v, %v; want %v", offsets(got), err, tt.want)
			}
		})
	}
}
