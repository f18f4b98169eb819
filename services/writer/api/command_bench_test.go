package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/annals-dev/annals/services/writer/api"
)

// BenchmarkCommand measures commands through the writer's HTTP handlers against the real
// PostgreSQL, by 8 concurrent clients with keep-alive connections, snapshots every 100 events
// (the default). "mix" walks each client through the life of an order, as `annals load` does:
// create a user, place an order for it, add an item, remove it, confirm and ship; every
// stream stays short. "rename" renames one user per client again and again, so that its
// stream grows and loads start from a snapshot. One op is one command. Beside the time it
// reports cpu-ns/op, the CPU time of the whole test process (handlers and clients) per
// command, which the other programs of a shared machine disturb less than the time.
func BenchmarkCommand(b *testing.B) {
	quiet := func(s *setup) {
		s.api = api.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), SnapshotEvery: 100}
	}
	b.Run("mix", func(b *testing.B) {
		e := newEnv(b, quiet)
		c := benchClient()
		b.SetParallelism(parallelism())
		defer cpuPerOp(b)()
		b.RunParallel(func(pb *testing.PB) {
			var user, order string
			for step := 0; pb.Next(); step = (step + 1) % 6 {
				switch step {
				case 0:
					user = send(b, c, e.url, "POST", "/v1/users", `{"email":"ada@example.com","name":"Ada"}`, http.StatusCreated)
				case 1:
					order = send(b, c, e.url, "POST", "/v1/orders", `{"user_id":"`+user+`","items":[{"id":"book","name":"A book","price_cents":1999,"quantity":2}]}`, http.StatusCreated)
				case 2:
					send(b, c, e.url, "POST", "/v1/orders/"+order+"/items", `{"id":"pen","name":"A pen","price_cents":150,"quantity":10}`, http.StatusOK)
				case 3:
					send(b, c, e.url, "DELETE", "/v1/orders/"+order+"/items/pen", "", http.StatusOK)
				case 4:
					send(b, c, e.url, "POST", "/v1/orders/"+order+"/confirm", "", http.StatusOK)
				case 5:
					send(b, c, e.url, "POST", "/v1/orders/"+order+"/ship", "", http.StatusOK)
				}
			}
		})
	})
	b.Run("rename", func(b *testing.B) {
		e := newEnv(b, quiet)
		c := benchClient()
		b.SetParallelism(parallelism())
		var n atomic.Int64
		defer cpuPerOp(b)()
		b.RunParallel(func(pb *testing.PB) {
			user := ""
			for pb.Next() {
				if user == "" {
					user = send(b, c, e.url, "POST", "/v1/users", `{"email":"ada@example.com","name":"Ada"}`, http.StatusCreated)
					continue
				}
				name := strconv.FormatInt(n.Add(1), 10)
				send(b, c, e.url, "PATCH", "/v1/users/"+user, `{"name":"Ada `+name+`"}`, http.StatusOK)
			}
		})
	})
}

// cpuPerOp resets the benchmark's timer and returns a function that reports the process's
// CPU time per op since then.
func cpuPerOp(b *testing.B) func() {
	start := cpuTime(b)
	b.ResetTimer()
	return func() {
		b.StopTimer()
		b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
	}
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// parallelism makes RunParallel run 8 clients whatever GOMAXPROCS is.
func parallelism() int { return max(8/max(runtime.GOMAXPROCS(0), 1), 1) }

func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
}

// send sends one command and returns the id of its response; a status other than want
// fails the benchmark.
func send(b *testing.B, c *http.Client, base, method, path, body string, want int) string {
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		b.Error(err)
		return ""
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		b.Error(err)
		return ""
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		b.Errorf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, raw)
		return ""
	}
	var got struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		b.Error(err)
	}
	return got.ID
}
