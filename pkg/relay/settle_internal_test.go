package relay

import (
	"errors"
	"fmt"
	"testing"

	"github.com/annals-dev/annals/pkg/events/outbox"
)

// TestSettlements_HoldBehindAnUnpublishedAppend: when an append's partition fails, its
// stream's later appends in the round are not settled either, the one that cannot be
// published included: a hold settled in front of the failed append would keep that append
// behind it for good, as the next read finds the stream held. Other streams settle as before.
func TestSettlements_HoldBehindAnUnpublishedAppend(t *testing.T) {
	p0 := partitionKey{topic: "t.order", partition: 0}
	p1 := partitionKey{topic: "t.order", partition: 1}
	batch := []outbox.Append{
		{StreamID: "order-p", FirstVersion: 0}, // its partition failed
		{StreamID: "order-p", FirstVersion: 1}, // cannot be published
		{StreamID: "order-p", FirstVersion: 2}, // behind it
		{StreamID: "order-q", FirstVersion: 0}, // published
		{StreamID: "order-r", FirstVersion: 0}, // cannot be published
		{StreamID: "order-r", FirstVersion: 1}, // behind it
	}
	rd := &round{batch: batch, cut: len(batch), failed: map[partitionKey]error{p0: errors.New("not leader")},
		rows: []encodedRow{
			{part: p0}, {part: p0, hold: "no schema"}, {part: p0, behind: true},
			{part: p1}, {part: p1, hold: "no schema"}, {part: p1, behind: true},
		}}
	var got []string
	for _, s := range rd.settlements([]outbox.Append{{StreamID: "order-s", FirstVersion: 3}}) {
		got = append(got, fmt.Sprintf("%s@%d hold=%q behind=%v", s.StreamID, s.FirstVersion, s.Hold, s.Behind))
	}
	want := []string{
		`order-s@3 hold="" behind=true`,
		`order-q@0 hold="" behind=false`,
		`order-r@0 hold="no schema" behind=false`,
		`order-r@1 hold="" behind=true`,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("settlements:\n got %q\nwant %q", got, want)
	}
	for i, again := range []bool{true, true, true, false, false, false} {
		if rd.again[i] != again {
			t.Errorf("row %d (%s@%d) read again = %v, want %v", i, batch[i].StreamID, batch[i].FirstVersion, rd.again[i], again)
		}
	}
}
