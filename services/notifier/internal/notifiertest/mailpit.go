// Package notifiertest holds what the notifier's tests share: a client of Mailpit's REST API
// to read the email that reached the real SMTP server, a TCP proxy in front of that server
// that can go down and come back (and cut a connection inside the SMTP window on request), an
// SMTP server of the test's own that refuses chosen recipients, and a publisher that writes
// events to Kafka as the relay does.
//
// Mailpit is shared by tests that run in parallel, so every test addresses its email to a
// domain of its own (MailDomain) and reads and deletes only that domain's email. The package is
// for tests only.
package notifiertest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/testenv"
)

// Mailpit is a client of Mailpit's REST API.
type Mailpit struct {
	URL    string
	Client *http.Client
}

// NewMailpit returns the client of the test stack's Mailpit (MAILPIT_URL).
func NewMailpit(tb testing.TB) *Mailpit {
	tb.Helper()
	return &Mailpit{URL: testenv.MailpitURL(tb), Client: &http.Client{Timeout: 30 * time.Second}}
}

// Address is a name and address as Mailpit decoded them.
type Address struct {
	Name    string
	Address string
}

// Summary is a message in a list.
type Summary struct {
	ID        string
	MessageID string
	From      *Address
	To        []Address
	Cc        []Address
	Bcc       []Address
	Subject   string
	Snippet   string
	Created   time.Time
}

// Message is one message with its bodies.
type Message struct {
	ID        string
	MessageID string
	From      *Address
	To        []Address
	Cc        []Address
	Bcc       []Address
	Subject   string
	Text      string
	HTML      string
}

var seq atomic.Int64

// MailDomain returns a domain of the test's own, such as t1k2j3.annals-test.invalid, and
// deletes the email sent to it when the test ends.
func MailDomain(tb testing.TB) string {
	tb.Helper()
	d := "t" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.FormatInt(seq.Add(1), 10) + ".annals-test.invalid"
	mp := NewMailpit(tb)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := mp.Delete(ctx, "to:"+d); err != nil {
			tb.Logf("mailpit: delete the test's email: %v", err)
		}
	})
	return d
}

func (m *Mailpit) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.URL+path, nil)
	if err != nil {
		return err
	}
	resp, err := m.Client.Do(req)
	if err != nil {
		return fmt.Errorf("mailpit: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("mailpit: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("mailpit: GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	if raw, ok := v.(*[]byte); ok {
		*raw = b
		return nil
	}
	return json.Unmarshal(b, v)
}

// Search returns every message matching a Mailpit search query (such as "to:example.com"),
// newest first.
func (m *Mailpit) Search(ctx context.Context, query string) ([]Summary, error) {
	var res struct {
		MessagesCount int `json:"messages_count"`
		Messages      []Summary
	}
	if err := m.get(ctx, "/api/v1/search?limit=100000&query="+url.QueryEscape(query), &res); err != nil {
		return nil, err
	}
	return res.Messages, nil
}

// Count returns how many messages match a search query.
func (m *Mailpit) Count(ctx context.Context, query string) (int, error) {
	var res struct {
		MessagesCount int `json:"messages_count"`
	}
	if err := m.get(ctx, "/api/v1/search?limit=1&query="+url.QueryEscape(query), &res); err != nil {
		return 0, err
	}
	return res.MessagesCount, nil
}

// Message returns one message with its bodies.
func (m *Mailpit) Message(ctx context.Context, id string) (Message, error) {
	var msg Message
	err := m.get(ctx, "/api/v1/message/"+url.PathEscape(id), &msg)
	return msg, err
}

// Headers returns a message's headers, decoded, by name.
func (m *Mailpit) Headers(ctx context.Context, id string) (map[string][]string, error) {
	var h map[string][]string
	err := m.get(ctx, "/api/v1/message/"+url.PathEscape(id)+"/headers", &h)
	return h, err
}

// Raw returns a message as it arrived.
func (m *Mailpit) Raw(ctx context.Context, id string) ([]byte, error) {
	var b []byte
	err := m.get(ctx, "/api/v1/message/"+url.PathEscape(id)+"/raw", &b)
	return b, err
}

// Delete deletes every message matching a search query.
func (m *Mailpit) Delete(ctx context.Context, query string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, m.URL+"/api/v1/search?query="+url.QueryEscape(query), nil)
	if err != nil {
		return err
	}
	resp, err := m.Client.Do(req)
	if err != nil {
		return fmt.Errorf("mailpit: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("mailpit: DELETE search: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

// WaitCount polls until exactly want messages match query, or fails the test after within.
// It returns as soon as the count reaches want; a count above want fails at once.
func (m *Mailpit) WaitCount(tb testing.TB, query string, want int, within time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		got, err := m.Count(ctx, query)
		cancel()
		if err != nil {
			tb.Fatal(err)
		}
		if got > want {
			tb.Fatalf("mailpit: %d messages match %q, want %d", got, query, want)
		}
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("mailpit: %d messages match %q after %s, want %d", got, query, within, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
