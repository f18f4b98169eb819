package auditlog_test

import (
	"context"
	"testing"
	"time"

	"github.com/annals-dev/annals/services/auditor/auditlog"
)

func TestLog_Query(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ms := messages(4, 40) // streams 0..3, versions 0..9 each, recorded at +version seconds
	for i, m := range ms {
		if i%4 == 1 {
			m.Event.Type = "UserDeactivated"
		}
	}
	e.appendAll(t, ms, 16)
	stream := ms[2].Event.StreamID
	ctx := context.Background()
	seqs := func(q auditlog.Query) []int64 {
		t.Helper()
		var out []int64
		for {
			page, more, err := e.log.Query(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > max(q.Limit, 0) && q.Limit > 0 {
				t.Fatalf("a page of %d entries for limit %d", len(page), q.Limit)
			}
			for _, en := range page {
				out = append(out, en.Seq)
			}
			if !more {
				return out
			}
			q.After = page[len(page)-1].Seq
		}
	}
	for _, tc := range []struct {
		name string
		q    auditlog.Query
		want func(i int, m auditlogMessage) bool
	}{
		{"All", auditlog.Query{}, func(int, auditlogMessage) bool { return true }},
		{"Paged", auditlog.Query{Limit: 7}, func(int, auditlogMessage) bool { return true }},
		{"After", auditlog.Query{After: 30}, func(i int, _ auditlogMessage) bool { return i+1 > 30 }},
		{"Stream", auditlog.Query{StreamID: stream, Limit: 3}, func(_ int, m auditlogMessage) bool { return m.stream == stream }},
		{"Type", auditlog.Query{Types: []string{"UserDeactivated"}}, func(_ int, m auditlogMessage) bool { return m.typ == "UserDeactivated" }},
		{"Types", auditlog.Query{Types: []string{"UserDeactivated", "UserProfileUpdated"}}, func(int, auditlogMessage) bool { return true }},
		{"NoSuchType", auditlog.Query{Types: []string{"Nope"}}, func(int, auditlogMessage) bool { return false }},
		{"SinceUntil", auditlog.Query{Since: at.Add(3 * time.Second), Until: at.Add(6 * time.Second)},
			func(_ int, m auditlogMessage) bool { return m.version >= 3 && m.version < 6 }},
		{"StreamSinceTypeAfter", auditlog.Query{StreamID: stream, Since: at.Add(2 * time.Second), Types: []string{"UserProfileUpdated"}, After: 10, Limit: 2},
			func(i int, m auditlogMessage) bool { return m.stream == stream && m.version >= 2 && i+1 > 10 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want []int64
			for i, m := range ms {
				if tc.want(i, auditlogMessage{m.Event.StreamID, m.Event.Type, m.Event.Version}) {
					want = append(want, int64(i+1))
				}
			}
			got := seqs(tc.q)
			if len(got) != len(want) {
				t.Fatalf("got seqs %v, want %v", got, want)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("got seqs %v, want %v", got, want)
				}
			}
		})
	}
}

type auditlogMessage struct {
	stream, typ string
	version     int64
}
