package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/annals-dev/annals/internal/load"
)

// loadCmd drives a writer with the realistic command mix of internal/load.
// APIKeyEnv names the environment variable whose API key (or OIDC token) the commands that
// call the services send as "Authorization: Bearer <key>". `make run` writes a local key to
// .stack/api-key.
const APIKeyEnv = "ANNALS_API_KEY"

func loadCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:8080", "the writer's base URL")
	rate := fs.Float64("rate", 0, "commands per second (open loop); 0 runs closed loop")
	concurrency := fs.Int("concurrency", 8, "clients (closed loop), or the most commands in flight (open loop)")
	duration := fs.Duration("duration", 10*time.Second, "how long to send commands")
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	quiet := fs.Bool("quiet", false, "no progress lines")
	keys := fs.Bool("idempotency-keys", false, "send each command with an Idempotency-Key of its own, as a client that retries would")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("%w: load takes only flags", errUsage)
	case *rate < 0:
		return fmt.Errorf("%w: --rate %v is negative", errUsage, *rate)
	case *concurrency < 1:
		return fmt.Errorf("%w: --concurrency must be at least 1", errUsage)
	case *duration <= 0:
		return fmt.Errorf("%w: --duration must be positive", errUsage)
	}
	cfg := load.Config{BaseURL: *url, Rate: *rate, Concurrency: *concurrency, Duration: *duration, Token: os.Getenv(APIKeyEnv),
		IdempotencyKeys: *keys}
	if !*quiet {
		cfg.Progress = stderr
	}
	res, err := load.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Fprintln(stdout, res)
	if res.Commands == 0 {
		return errors.New("no command succeeded (is the writer at " + *url + "?)")
	}
	return nil
}
