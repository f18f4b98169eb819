//go:build stack

package stack_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/testenv"
)

// The notifier's broker test: the writer and the notifier run as processes of their own
// against a Kafka broker of the test's own, and that broker is killed with SIGKILL while
// commands flow, then started again. The relay publishes the outage's backlog at once, users
// and orders together, so order emails meet a user directory that has not caught up (its
// readers reconnect on their own schedule). Every email the events call for must arrive,
// nothing may go to the dead-letter topic, and no stream may be blocked. NOTIFIER_USER_WAIT
// is short, so that an order email that waits for the directory waits longer than it.
//
// ANNALS_FAULT_ROUNDS sets the rounds (default 1; make test-faults runs 5); the broker is
// started once and killed once per round.

const (
	brokerKillUsers  = 150 // each with two orders: about 500 emails a round
	brokerKillRate   = 5   // users started a second: the workload lasts 30 s
	brokerKillAfter  = 40  // emails in the sent log when the broker is killed
	brokerKillOutage = 5 * time.Second
	// brokerKillCatchUp bounds the time from the last command to the last email: a few
	// seconds normally; the directory once took minutes to get past the outage.
	brokerKillCatchUp = time.Minute
)

// privateBroker is a Kafka broker that scripts/stack.sh starts on free ports in a folder of
// the test's own, so that the test may kill it: never the shared one.
type privateBroker struct {
	env  []string
	dir  string
	addr string
}

func startPrivateBroker(t *testing.T) *privateBroker {
	t.Helper()
	s := newStackEnv(t)
	b := &privateBroker{env: append(s.environ(), "ANNALS_KAFKA_HEAP=-Xms128m -Xmx512m"), dir: s.dir,
		addr: "127.0.0.1:" + strconv.Itoa(s.kafka)}
	t.Cleanup(func() {
		if t.Failed() {
			if out, err := os.ReadFile(filepath.Join(b.dir, "kafka", "server.log")); err == nil {
				t.Logf("--- private broker's server.log (tail)\n%s", tail(out, 3000))
			}
		}
		b.script(t, "down", "kafka")
	})
	b.script(t, "up", "kafka")
	return b
}

// script runs scripts/stack.sh on the private broker's folder and ports.
func (b *privateBroker) script(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(repoRoot(t), "scripts", "stack.sh"), args...)
	cmd.Dir, cmd.Env = repoRoot(t), b.env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/stack.sh %s (private broker): %v\n%s", strings.Join(args, " "), err, out)
	}
}

// kill sends SIGKILL to the broker and waits until it is gone.
func (b *privateBroker) kill(t *testing.T) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(b.dir, "kafka.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatalf("kafka.pid: %v", err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the private broker (pid %d): %v", pid, err)
	}
	waitFor(t, 30*time.Second, "the killed broker to be gone", func() bool { return !alive(pid) && !brokerListening(b.addr) })
}

func TestNotifier_BrokerSIGKILL(t *testing.T) {
	broker := startPrivateBroker(t)
	bins := notifierBuild(t)
	for round := range faultRounds(t) {
		t.Run(fmt.Sprintf("round-%d", round+1), func(t *testing.T) { brokerKillRound(t, broker, bins) })
	}
}

func brokerKillRound(t *testing.T, broker *privateBroker, bins notifierBins) {
	pool, schemaName := testenv.SchemaPool(t)
	dbURL := testenv.SchemaURL(t, schemaName)
	domain := "b" + strconv.FormatInt(time.Now().UnixNano(), 36) + ".annals-test.invalid"
	t.Cleanup(func() { notifierDeleteMail(t, domain) })
	vars := map[string]string{
		"DATABASE_URL":                       dbURL,
		"KAFKA_BROKERS":                      broker.addr,
		"KAFKA_TOPIC_PREFIX":                 "bk-" + testenv.UniqueName(t),
		"KAFKA_TOPIC_PARTITIONS":             "6",
		"EVENT_SERIALIZATION":                "avro",
		"ANNALS_CONFIG":                      "",
		"MIGRATE_ON_START":                   "true",
		"LOG_FORMAT":                         "json",
		"SMTP_ADDR":                          testenv.SMTPAddr(t),
		"SMTP_STARTTLS":                      "none",
		"NOTIFIER_RATE_LIMIT":                "0",
		"NOTIFIER_EMAILS_PER_PRINCIPAL_HOUR": "0",
		"NOTIFIER_USER_WAIT":                 "1s",
	}
	cfg, err := config.Load("", func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 2)
	writerAddr, notifierAddr := "127.0.0.1:"+strconv.Itoa(ports[0]), "127.0.0.1:"+strconv.Itoa(ports[1])
	notifierStartProc(t, bins.writer, vars, "writer", writerAddr)
	notifierStartProc(t, bins.notifier, vars, "notifier", notifierAddr)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	workErr := make(chan error, 1)
	go func() { workErr <- brokerKillWorkload(ctx, "http://"+writerAddr, domain) }()
	sent := func() int {
		var n int
		if err := pool.QueryRow(context.Background(), `select count(*) from annals_notifier_sent`).Scan(&n); err != nil {
			return 0 // the notifier has not created its tables yet
		}
		return n
	}
	waitEvery(t, 2*time.Minute, 20*time.Millisecond, fmt.Sprintf("%d emails before the kill", brokerKillAfter), func() bool { return sent() >= brokerKillAfter })
	broker.kill(t)
	killedAt, sentAtKill := time.Now(), sent()
	time.Sleep(brokerKillOutage) // the outage is the scenario; commands keep coming meanwhile
	broker.script(t, "up", "kafka")
	upAt := time.Now()
	if err := <-workErr; err != nil {
		t.Fatalf("workload: %v", err)
	}
	workDone := time.Now()

	var due int
	if err := pool.QueryRow(context.Background(), `select count(*) from annals_events
		where type in ('UserCreated', 'OrderConfirmed', 'OrderCancelled')`).Scan(&due); err != nil {
		t.Fatal(err)
	}
	dlq := cfg.DLQTopic(cfg.ConsumerGroup("notifier"))
	waitEvery(t, 4*time.Minute, 100*time.Millisecond, fmt.Sprintf("%d rows in the sent log", due), func() bool {
		return sent() >= due || brokerDeadLetters(t, broker.addr, dlq, cfg.Kafka.TopicPartitions) > 0
	})
	drained := time.Since(workDone)
	if drained > brokerKillCatchUp {
		t.Errorf("the notifier took %v after the last command to mail everything, want under %v: "+
			"something waited out the outage long after the broker was back", drained.Round(time.Millisecond), brokerKillCatchUp)
	}
	if n := brokerDeadLetters(t, broker.addr, dlq, cfg.Kafka.TopicPartitions); n != 0 {
		t.Errorf("%d records on the dead-letter topic %s, want none", n, dlq)
	}
	var blocked int
	if err := pool.QueryRow(context.Background(), `select count(*) from annals_consumer_blocks`).Scan(&blocked); err != nil {
		t.Fatal(err)
	}
	if blocked != 0 {
		t.Errorf("%d streams blocked, want none", blocked)
	}
	var missing int
	if err := pool.QueryRow(context.Background(), `select count(*) from annals_events ev
		where ev.type in ('UserCreated', 'OrderConfirmed', 'OrderCancelled')
		and not exists (select from annals_notifier_sent s where s.event_id = ev.event_id and s.status = 'sent')`).Scan(&missing); err != nil {
		t.Fatal(err)
	}
	if missing != 0 {
		t.Fatalf("%d of the %d emails due are not in the sent log", missing, due)
	}
	var ids map[string]int
	waitEvery(t, 30*time.Second, 200*time.Millisecond, "every email in Mailpit", func() bool {
		ids, _ = notifierMailpit(t, domain)
		return len(ids) >= due
	})
	copies := 0
	for _, n := range ids {
		copies += n - 1
	}
	if len(ids) != due {
		t.Errorf("Mailpit has %d distinct emails to %s, want %d", len(ids), domain, due)
	}
	metrics := brokerMetrics(t, notifierAddr, "annals_notifier_directory_behind_total", "annals_consumer_stalls_total",
		"annals_notifier_user_wait_seconds_count", "annals_notifier_user_wait_seconds_sum", `annals_notifier_user_wait_seconds_bucket{le="0.512"}`)
	t.Logf("broker killed with %d of %d emails sent, down %v and started again in %v; the workload ended %v after the broker was back, "+
		"and every email was in the sent log %v after that; %d copies (same Message-ID); %s",
		sentAtKill, due, brokerKillOutage, upAt.Sub(killedAt.Add(brokerKillOutage)).Round(time.Millisecond),
		workDone.Sub(upAt).Round(time.Millisecond), drained.Round(time.Millisecond), copies, metrics)
}

// brokerKillWorkload creates the users, each with two orders (see notifierUser), from 8
// clients at once, starting brokerKillRate users a second, so that commands keep coming
// before, during and after the outage.
func brokerKillWorkload(ctx context.Context, base, domain string) error {
	var next atomic.Int64
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	start := time.Now()
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= brokerKillUsers || ctx.Err() != nil {
					return
				}
				select { // the i-th user starts at its time on the schedule
				case <-time.After(time.Until(start.Add(time.Duration(i) * time.Second / brokerKillRate))):
				case <-ctx.Done():
					return
				}
				if err := notifierUser(ctx, base, domain, i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// brokerDeadLetters counts the records of a dead-letter topic.
func brokerDeadLetters(t *testing.T, addr, topic string, partitions int) int64 {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}
	req := make([]kafka.OffsetRequest, partitions)
	for i := range req {
		req[i] = kafka.LastOffsetOf(i)
	}
	resp, err := client.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: req}})
	if err != nil {
		return 0 // the broker is still starting; asked again
	}
	var n int64
	for _, p := range resp.Topics[topic] {
		if p.Error == nil {
			n += p.LastOffset
		}
	}
	return n
}

// brokerMetrics returns the lines of the named series on the notifier's /metrics, for the
// test's log.
func brokerMetrics(t *testing.T, addr string, names ...string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		for _, n := range names {
			if strings.HasPrefix(sc.Text(), n) {
				out = append(out, sc.Text())
			}
		}
	}
	return strings.Join(out, "; ")
}
