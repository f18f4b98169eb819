package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/annals-dev/annals/internal/benchkit"
	"github.com/annals-dev/annals/internal/load"
)

// EndToEnd is what a run at a steady command rate measured.
type EndToEnd struct {
	// Rate is the command rate asked for; Commands what the writer did (open loop: latency
	// counted from each command's scheduled start).
	Rate     float64     `json:"rate"`
	Commands load.Result `json:"commands"`
	// Latency runs from a command's acceptance (its answer read by the client) to the answer
	// of a read of its stream at the command's version from the projector's API.
	Latency benchkit.Latency `json:"latency"`
	// ReadEvery is k when every k-th command was read back (see ReadsPerSec); ReadErrors
	// counts the reads that failed (no answer, or not 200).
	ReadEvery  int `json:"read_every"`
	ReadErrors int `json:"read_errors"`
	// Usage is where the time went meanwhile (set by Run).
	Usage Usage `json:"usage"`
}

// EndToEndConfig describes a run.
type EndToEndConfig struct {
	WriterURL, ProjectorURL string
	// Token is sent as a bearer token: a key with the commands and read-models:read scopes.
	Token    string
	Rate     float64
	Duration time.Duration
	Progress io.Writer
	Client   *http.Client
}

// ReadsPerSec bounds the read-backs of an end-to-end run: above that command rate, every
// k-th command is read back so that the reads stay under it. Each read polls the read model
// until its version shows, and reads of every command at a high rate would load the
// projector and the database with the measurement itself.
const ReadsPerSec = 25

// RunEndToEnd drives the writer at a steady rate with internal/load's command mix, each
// command with an Idempotency-Key of its own as a client that retries would send, and reads
// commands back from the projector with read-your-writes (?min_version=<the command's
// version>&wait=10s), as a client that shows its own write would: the time from a command's
// acceptance until that read answers is the time it takes to become visible in the read
// models, the relay, Kafka and the projector's transaction included, and so is the
// projector's own polling while it waits. Each read starts as its command is accepted, in a
// goroutine of its own, so that no read waits for another.
func RunEndToEnd(ctx context.Context, cfg EndToEndConfig) (EndToEnd, error) {
	every := max(1, int64(math.Ceil(cfg.Rate/ReadsPerSec)))
	var mu sync.Mutex
	var latencies []time.Duration
	var failed, seen atomic.Int64
	client := cfg.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	}
	var wg sync.WaitGroup
	read := func(url string, accepted time.Time) {
		for {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				failed.Add(1)
				return
			}
			if cfg.Token != "" {
				req.Header.Set("Authorization", "Bearer "+cfg.Token)
			}
			resp, err := client.Do(req)
			if err != nil {
				failed.Add(1)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			// Still behind after the wait: read again, so that a slow command counts with
			// its whole latency rather than dropping out of the percentiles.
			if resp.StatusCode != http.StatusGatewayTimeout || time.Since(accepted) > time.Minute {
				failed.Add(1)
				return
			}
		}
		d := time.Since(accepted)
		mu.Lock()
		latencies = append(latencies, d)
		mu.Unlock()
	}
	res, err := load.Run(ctx, load.Config{
		BaseURL: cfg.WriterURL, Token: cfg.Token, Rate: cfg.Rate, Concurrency: 64, Duration: cfg.Duration, Progress: cfg.Progress,
		IdempotencyKeys: true,
		OnCommand: func(stream string, version int64, accepted time.Time) {
			if seen.Add(1)%every != 0 {
				return
			}
			category, id, ok := strings.Cut(stream, "-")
			if !ok {
				failed.Add(1)
				return
			}
			url := fmt.Sprintf("%s/v1/%ss/%s?min_version=%d&wait=10s", cfg.ProjectorURL, category, id, version)
			wg.Go(func() { read(url, accepted) })
		},
	})
	wg.Wait()
	if err != nil {
		return EndToEnd{}, err
	}
	return EndToEnd{Rate: cfg.Rate, Commands: res, Latency: benchkit.Summarise(latencies), ReadEvery: int(every), ReadErrors: int(failed.Load())}, nil
}
