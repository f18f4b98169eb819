package api_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
)

type envelope struct {
	EventID        string            `json:"event_id"`
	StreamID       string            `json:"stream_id"`
	Category       string            `json:"category"`
	Version        int64             `json:"version"`
	GlobalPosition int64             `json:"global_position"`
	Type           string            `json:"type"`
	SchemaVersion  int               `json:"schema_version"`
	Data           map[string]any    `json:"data"`
	Metadata       map[string]string `json:"metadata"`
	RecordedAt     time.Time         `json:"recorded_at"`
}

type streamPage struct {
	StreamID string     `json:"stream_id"`
	Events   []envelope `json:"events"`
	NextFrom *int64     `json:"next_from"`
}

type allPage struct {
	Events    []envelope `json:"events"`
	NextAfter int64      `json:"next_after"`
}

func (e *env) streamEvents(tb testing.TB, streamID, query string) streamPage {
	tb.Helper()
	var p streamPage
	e.do(tb, "GET", "/v1/streams/"+streamID+"/events"+query, nil).into(tb, http.StatusOK, &p)
	return p
}

func TestAPI_History(t *testing.T) {
	for _, tc := range []struct {
		name          string
		snapshotEvery int
	}{{"NoSnapshots", 0}, {"SnapshotEvery2", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *setup) { c.api.SnapshotEvery = tc.snapshotEvery })
			id := e.createUser(t)
			names := []string{"Ada"}
			for _, n := range []string{"Ada B", "Ada C", "Ada D", "Ada E"} {
				e.do(t, "PATCH", "/v1/users/"+id, map[string]any{"name": n}).ok(t, http.StatusOK)
				names = append(names, n)
			}
			evs := e.streamEvents(t, "user-"+id, "").Events
			if len(evs) != len(names) {
				t.Fatalf("events = %d, want %d", len(evs), len(names))
			}
			var snapshots int
			if err := e.pool.QueryRow(context.Background(), `select count(*) from annals_snapshots`).Scan(&snapshots); err != nil {
				t.Fatal(err)
			}
			if want := map[int]int{0: 0, 2: 2}[tc.snapshotEvery]; snapshots != want {
				t.Errorf("snapshots = %d, want %d", snapshots, want)
			}

			for v, name := range names {
				t.Run("Version"+strconv.Itoa(v), func(t *testing.T) {
					res := e.do(t, "GET", "/v1/users/"+id+"?version="+strconv.Itoa(v), nil)
					if m := res.ok(t, http.StatusOK); m["name"] != name || m["version"] != float64(v) {
						t.Errorf("user = %v, want name %s at version %d", m, name, v)
					}
					if got := res.Header.Get("ETag"); got != etagOf(v) {
						t.Errorf("ETag = %s", got)
					}
				})
				t.Run("At"+strconv.Itoa(v), func(t *testing.T) {
					at := url.QueryEscape(evs[v].RecordedAt.Format(time.RFC3339Nano))
					if m := e.do(t, "GET", "/v1/users/"+id+"?at="+at, nil).ok(t, http.StatusOK); m["name"] != name || m["version"] != float64(v) {
						t.Errorf("user = %v, want name %s at version %d", m, name, v)
					}
				})
			}
			t.Run("Current", func(t *testing.T) {
				if m := e.do(t, "GET", "/v1/users/"+id, nil).ok(t, http.StatusOK); m["name"] != "Ada E" || m["version"] != 4.0 {
					t.Errorf("user = %v", m)
				}
			})
			t.Run("AtWithOffset", func(t *testing.T) {
				// A '+' sent unescaped arrives as a space; it is read as the offset's '+'.
				at := evs[2].RecordedAt.In(time.FixedZone("", 2*3600)).Format(time.RFC3339Nano)
				if m := e.do(t, "GET", "/v1/users/"+id+"?at="+at, nil).ok(t, http.StatusOK); m["version"] != 2.0 {
					t.Errorf("user = %v", m)
				}
			})
			t.Run("VersionBeyond", func(t *testing.T) {
				e.do(t, "GET", "/v1/users/"+id+"?version=5", nil).fail(t, http.StatusNotFound, "not_found")
			})
			t.Run("BeforeCreation", func(t *testing.T) {
				at := url.QueryEscape(evs[0].RecordedAt.Add(-time.Microsecond).Format(time.RFC3339Nano))
				e.do(t, "GET", "/v1/users/"+id+"?at="+at, nil).fail(t, http.StatusNotFound, "not_found")
			})
		})
	}
	t.Run("Order", func(t *testing.T) {
		e := newEnv(t)
		id := e.createOrder(t, book)
		e.do(t, "POST", "/v1/orders/"+id+"/items", pen).ok(t, http.StatusOK)
		e.do(t, "POST", "/v1/orders/"+id+"/confirm", nil).ok(t, http.StatusOK)
		for _, tc := range []struct {
			version int
			status  string
			total   float64
		}{{0, "pending", 3998}, {1, "pending", 5498}, {2, "confirmed", 5498}} {
			m := e.do(t, "GET", "/v1/orders/"+id+"?version="+strconv.Itoa(tc.version), nil).ok(t, http.StatusOK)
			if m["status"] != tc.status || m["total_cents"] != tc.total {
				t.Errorf("version %d: order = %v", tc.version, m)
			}
		}
		evs := e.streamEvents(t, "order-"+id, "").Events
		at := url.QueryEscape(evs[1].RecordedAt.Format(time.RFC3339Nano))
		if m := e.do(t, "GET", "/v1/orders/"+id+"?at="+at, nil).ok(t, http.StatusOK); m["version"] != 1.0 || m["status"] != "pending" {
			t.Errorf("order at %s = %v", at, m)
		}
	})
}

func TestAPI_Streams(t *testing.T) {
	e := newEnv(t)
	id := e.createOrder(t, book)
	for _, it := range []item{pen, {ID: "cup", Name: "Cup", PriceCents: 300, Quantity: 1}, {ID: "mug", Name: "Mug", PriceCents: 400, Quantity: 1}} {
		e.do(t, "POST", "/v1/orders/"+id+"/items", it).ok(t, http.StatusOK)
	}
	sid := "order-" + id

	t.Run("Info", func(t *testing.T) {
		res := e.do(t, "GET", "/v1/streams/"+sid, nil)
		m := res.ok(t, http.StatusOK)
		if m["stream_id"] != sid || m["category"] != "order" || m["version"] != 3.0 || m["event_count"] != 4.0 {
			t.Errorf("info = %v", m)
		}
		if got := res.Header.Get("ETag"); got != `"3"` {
			t.Errorf("ETag = %s", got)
		}
	})
	t.Run("InfoNotFound", func(t *testing.T) {
		e.do(t, "GET", "/v1/streams/order-"+uuid.NewString(), nil).fail(t, http.StatusNotFound, "not_found")
	})
	t.Run("Events", func(t *testing.T) {
		p := e.streamEvents(t, sid, "")
		if len(p.Events) != 4 || p.NextFrom != nil || p.StreamID != sid {
			t.Fatalf("page = %+v", p)
		}
		wantTypes := []string{"OrderCreated", "ItemAdded", "ItemAdded", "ItemAdded"}
		for i, ev := range p.Events {
			if ev.Version != int64(i) || ev.Type != wantTypes[i] || ev.StreamID != sid || ev.Category != "order" ||
				ev.SchemaVersion != 1 || ev.EventID == "" || ev.RecordedAt.IsZero() || ev.Metadata == nil {
				t.Errorf("event %d = %+v", i, ev)
			}
		}
		if got := p.Events[1].Data["item"].(map[string]any)["id"]; got != "pen" {
			t.Errorf("ItemAdded data = %v", p.Events[1].Data)
		}
		if got := p.Events[0].Data["total_cents"]; got != 3998.0 {
			t.Errorf("OrderCreated data = %v", p.Events[0].Data)
		}
	})
	t.Run("Paging", func(t *testing.T) {
		var versions []int64
		query := "?limit=3"
		for range 5 {
			p := e.streamEvents(t, sid, query)
			for _, ev := range p.Events {
				versions = append(versions, ev.Version)
			}
			if p.NextFrom == nil {
				break
			}
			query = "?limit=3&from=" + strconv.FormatInt(*p.NextFrom, 10)
		}
		if len(versions) != 4 || versions[0] != 0 || versions[3] != 3 {
			t.Errorf("versions = %v", versions)
		}
	})
	t.Run("FromTo", func(t *testing.T) {
		p := e.streamEvents(t, sid, "?from=1&to=2")
		if len(p.Events) != 2 || p.Events[0].Version != 1 || p.Events[1].Version != 2 || p.NextFrom != nil {
			t.Errorf("page = %+v", p)
		}
		if p := e.streamEvents(t, sid, "?from=1&to=2&limit=2"); p.NextFrom != nil {
			t.Errorf("next_from = %d past to", *p.NextFrom)
		}
		if p := e.streamEvents(t, sid, "?from=10"); len(p.Events) != 0 || p.Events == nil {
			t.Errorf("past the end: %+v", p)
		}
	})
	t.Run("EventsNotFound", func(t *testing.T) {
		e.do(t, "GET", "/v1/streams/order-"+uuid.NewString()+"/events", nil).fail(t, http.StatusNotFound, "not_found")
	})
}

func TestAPI_AllStream(t *testing.T) {
	e := newEnv(t)
	user := e.createUser(t)                                                                    // UserCreated
	order := e.createOrder(t, book)                                                            // UserCreated, OrderCreated
	e.do(t, "POST", "/v1/orders/"+order+"/items", pen).ok(t, http.StatusOK)                    // ItemAdded
	e.do(t, "PATCH", "/v1/users/"+user, map[string]any{"name": "B"}).ok(t, 200)                // UserProfileUpdated
	e.do(t, "POST", "/v1/orders/"+order+"/confirm", nil).ok(t, http.StatusOK)                  // OrderConfirmed
	e.do(t, "POST", "/v1/users/"+user+"/deactivate", map[string]any{"reason": "x"}).ok(t, 200) // UserDeactivated
	want := []string{"UserCreated", "UserCreated", "OrderCreated", "ItemAdded", "UserProfileUpdated", "OrderConfirmed", "UserDeactivated"}

	all := func(t *testing.T, query string) allPage {
		t.Helper()
		var p allPage
		e.do(t, "GET", "/v1/events"+query, nil).into(t, http.StatusOK, &p)
		return p
	}
	types := func(evs []envelope) []string {
		out := make([]string, len(evs))
		for i, ev := range evs {
			out[i] = ev.Type
		}
		return out
	}
	equal := func(a, b []string) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if a[i] != b[i] {
				return false
			}
		}
		return true
	}
	everything := all(t, "")

	t.Run("All", func(t *testing.T) {
		if got := types(everything.Events); !equal(got, want) {
			t.Errorf("types = %v, want %v", got, want)
		}
		for i := 1; i < len(everything.Events); i++ {
			if everything.Events[i].GlobalPosition <= everything.Events[i-1].GlobalPosition {
				t.Errorf("positions not increasing: %+v", everything.Events)
			}
		}
		if got := everything.NextAfter; got != everything.Events[len(everything.Events)-1].GlobalPosition {
			t.Errorf("next_after = %d", got)
		}
	})
	t.Run("Paging", func(t *testing.T) {
		var got []string
		after := int64(0)
		for range 10 {
			p := all(t, "?limit=2&after="+strconv.FormatInt(after, 10))
			if len(p.Events) == 0 {
				if p.NextAfter != after || p.Events == nil {
					t.Errorf("empty page = %+v", p)
				}
				break
			}
			got = append(got, types(p.Events)...)
			after = p.NextAfter
		}
		if !equal(got, want) {
			t.Errorf("types = %v, want %v", got, want)
		}
	})
	t.Run("Type", func(t *testing.T) {
		if got := types(all(t, "?type=UserCreated").Events); !equal(got, []string{"UserCreated", "UserCreated"}) {
			t.Errorf("types = %v", got)
		}
		if got := types(all(t, "?type=ItemAdded&type=OrderConfirmed").Events); !equal(got, []string{"ItemAdded", "OrderConfirmed"}) {
			t.Errorf("types = %v", got)
		}
		if got := all(t, "?type=Nothing").Events; len(got) != 0 {
			t.Errorf("events = %v", got)
		}
	})
	t.Run("SinceUntil", func(t *testing.T) {
		evs := everything.Events
		ts := func(i int) string { return url.QueryEscape(evs[i].RecordedAt.Format(time.RFC3339Nano)) }
		if got := types(all(t, "?since="+ts(3)).Events); !equal(got, want[3:]) {
			t.Errorf("since: %v, want %v", got, want[3:])
		}
		if got := types(all(t, "?until="+ts(3)).Events); !equal(got, want[:3]) {
			t.Errorf("until (exclusive): %v, want %v", got, want[:3])
		}
		if got := types(all(t, "?since="+ts(2)+"&until="+ts(5)+"&type=ItemAdded&type=UserProfileUpdated").Events); !equal(got, want[3:5]) {
			t.Errorf("since, until and type: %v, want %v", got, want[3:5])
		}
	})
}

func TestAPI_Stats(t *testing.T) {
	e := newEnv(t)
	empty := e.do(t, "GET", "/v1/stats", nil).ok(t, http.StatusOK)
	if empty["total_events"] != 0.0 || empty["total_streams"] != 0.0 || len(empty["recent_events"].([]any)) != 0 {
		t.Errorf("empty stats = %v", empty)
	}
	order := e.createOrder(t, book)
	e.do(t, "POST", "/v1/orders/"+order+"/items", pen).ok(t, http.StatusOK)
	e.do(t, "POST", "/v1/orders/"+order+"/confirm", nil).ok(t, http.StatusOK)

	var st struct {
		TotalEvents  int64            `json:"total_events"`
		TotalStreams int64            `json:"total_streams"`
		EventsByType map[string]int64 `json:"events_by_type"`
		RecentEvents []envelope       `json:"recent_events"`
	}
	e.do(t, "GET", "/v1/stats?recent=2", nil).into(t, http.StatusOK, &st)
	if st.TotalEvents != 4 || st.TotalStreams != 2 {
		t.Errorf("totals = %d events, %d streams; want 4, 2", st.TotalEvents, st.TotalStreams)
	}
	for typ, n := range map[string]int64{"UserCreated": 1, "OrderCreated": 1, "ItemAdded": 1, "OrderConfirmed": 1} {
		if st.EventsByType[typ] != n {
			t.Errorf("events_by_type = %v", st.EventsByType)
		}
	}
	if len(st.RecentEvents) != 2 || st.RecentEvents[0].Type != "OrderConfirmed" {
		t.Errorf("recent = %+v", st.RecentEvents)
	}
}
