package events_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/pkg/events"
)

func TestCheckAppend(t *testing.T) {
	ok := events.Event{Type: "Added", Data: json.RawMessage(`{}`)}
	id := uuid.New()
	limits := events.AppendLimits{MaxEventsPerStream: 3, MaxEventBytes: 64}
	if err := events.CheckAppend("order-1", []events.Event{ok, ok}, events.AppendOptions{}, limits); err != nil {
		t.Fatalf("a valid append: %v", err)
	}
	var full *events.StreamFullError
	var large *events.TooLargeError
	for name, tc := range map[string]struct {
		stream string
		evs    []events.Event
		opts   events.AppendOptions
		is     func(error) bool
	}{
		"BadStream":       {"order", []events.Event{ok}, events.AppendOptions{}, invalid},
		"NoEvents":        {"order-1", nil, events.AppendOptions{}, invalid},
		"TooMany":         {"order-1", []events.Event{ok, ok, ok, ok}, events.AppendOptions{}, func(err error) bool { return errors.As(err, &full) }},
		"NULCorrelation":  {"order-1", []events.Event{ok}, events.AppendOptions{CorrelationID: "a\x00"}, invalid},
		"EmptyType":       {"order-1", []events.Event{{Data: json.RawMessage(`{}`)}}, events.AppendOptions{}, invalid},
		"LongType":        {"order-1", []events.Event{{Type: strings.Repeat("t", 201), Data: json.RawMessage(`{}`)}}, events.AppendOptions{}, invalid},
		"BadUTF8Type":     {"order-1", []events.Event{{Type: "\xff", Data: json.RawMessage(`{}`)}}, events.AppendOptions{}, invalid},
		"Large":           {"order-1", []events.Event{{Type: "Added", Data: json.RawMessage(`"` + strings.Repeat("x", 64) + `"`)}}, events.AppendOptions{}, func(err error) bool { return errors.As(err, &large) }},
		"NotJSON":         {"order-1", []events.Event{{Type: "Added", Data: json.RawMessage(`{`)}}, events.AppendOptions{}, invalid},
		"RepeatedEventID": {"order-1", []events.Event{{ID: id, Type: "Added", Data: json.RawMessage(`{}`)}, {ID: id, Type: "Added", Data: json.RawMessage(`{}`)}}, events.AppendOptions{}, invalid},
	} {
		if err := events.CheckAppend(tc.stream, tc.evs, tc.opts, limits); err == nil || !tc.is(err) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func invalid(err error) bool { return errors.Is(err, events.ErrInvalid) }
