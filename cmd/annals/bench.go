package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/annals-dev/annals/cmd/annals/bench"
	"github.com/annals-dev/annals/internal/config"
)

// benchCmd measures the whole pipeline against its baselines (see cmd/annals/bench) and writes
// the table to stdout, progress to stderr and results.json to --out.
func benchCmd(ctx context.Context, args []string, loadConfig func() (*config.Config, error), configPath string,
	lookupEnv func(string) (string, bool), stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "short runs and small pre-fills (about a minute and a half; indicative figures)")
	out := fs.String("out", "bench", "folder for results.json, the services' logs and scratch files")
	bin := fs.String("bin", "", "folder of annals-writer, -projector, -notifier and -auditor (default: this program's)")
	pgbench := fs.String("pgbench", "", "pgbench (default: $PGBENCH, else the newest /usr/lib/postgresql/*/bin/pgbench)")
	kafkaLibs := fs.String("kafka-libs", env(lookupEnv, "KAFKA_LIBS"), "folder of Kafka's jars, tools included (scripts/stack.sh env sets KAFKA_LIBS)")
	java := fs.String("java", "java", "the Java runtime for Kafka's tools")
	redisBench := fs.String("redis-benchmark", envOr(lookupEnv, "REDIS_BENCHMARK", "redis-benchmark"), "the redis-benchmark command, with any leading arguments ($REDIS_BENCHMARK; scripts/stack.sh env sets it)")
	profile := fs.String("cpuprofile", "", "folder for a CPU profile of each step run in this process (appends, relay, consumer drains)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: bench takes only flags", errUsage)
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	if *bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		*bin = filepath.Dir(exe)
	}
	if *pgbench == "" {
		*pgbench = findPGBench(lookupEnv)
	}
	res, err := bench.Run(ctx, bench.Options{
		Quick: *quick, Config: cfg, ConfigPath: configPath, BinDir: *bin, WorkDir: filepath.Join(*out, "work"),
		PGBench: *pgbench, Java: *java, KafkaLibs: *kafkaLibs, Progress: stderr, ProfileDir: *profile,
		RedisURL: env(lookupEnv, "REDIS_URL"), MongoURI: env(lookupEnv, "MONGODB_URI"), RedisBenchmark: strings.Fields(*redisBench),
	})
	if err != nil {
		return err
	}
	res.PrintTable(stdout)
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(*out, "results.json")
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nresults: %s (%.0f s)\n", path, res.Seconds)
	return nil
}

// envOr is the variable name when set and not empty, else def.
func envOr(lookupEnv func(string) (string, bool), name, def string) string {
	if v := env(lookupEnv, name); v != "" {
		return v
	}
	return def
}

func env(lookupEnv func(string) (string, bool), name string) string {
	v, _ := lookupEnv(name)
	return v
}

// findPGBench is $PGBENCH, else the pgbench of the newest PostgreSQL server package, else
// the one on the PATH.
func findPGBench(lookupEnv func(string) (string, bool)) string {
	if v := env(lookupEnv, "PGBENCH"); v != "" {
		return v
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
	sort.Slice(found, func(i, j int) bool { return pgMajor(found[i]) > pgMajor(found[j]) })
	if len(found) > 0 {
		return found[0]
	}
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p
	}
	return ""
}

func pgMajor(path string) int {
	var n int
	if _, err := fmt.Sscanf(filepath.Base(filepath.Dir(filepath.Dir(path))), "%d", &n); err != nil {
		return 0
	}
	return n
}
