//go:build stack

package stack_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"
)

// writerMemoryLimit is the writer's memory limit in the Helm chart
// (deploy/helm/annals/values.yaml, writer.resources.limits.memory: 256Mi).
const writerMemoryLimit = 256 << 20

// TestRelay_OutageMemory: the writer runs against a broker of its own, which is stopped; 300
// orders of about 300 KB each, their item names full of markup, are placed while it is down
// (the outbox keeps them), then the broker starts again and the writer's relay publishes the
// backlog. The writer must stay under its memory limit in Kubernetes throughout: its peak
// resident set (VmHWM) below 256 MiB. Nothing may be set aside, and every order must reach
// Kafka.
//
// The broker is a second one, started by scripts/stack.sh in a folder and on ports of its
// own, so that the shared stack's broker is never stopped. ANNALS_FAULT_ROUNDS repeats the
// scenario (make test-faults).
func TestRelay_OutageMemory(t *testing.T) {
	bins := buildBinaries(t)
	k := startOwnKafka(t)
	for round := range faultRounds(t) {
		t.Run(fmt.Sprintf("round-%d", round+1), func(t *testing.T) { outageMemoryRound(t, bins, k) })
	}
}

func outageMemoryRound(t *testing.T, bins binaries, k *ownKafka) {
	const (
		orders  = 300
		clients = 4
	)
	e := newFaultEnvOn(t, k.brokers)
	writer := startService(t, bins.writer, e, "writer", freeAddr(t))
	mem := watchMemory(t, writer)
	ctx := context.Background()
	user, err := notifierCommand(ctx, writer.url, "POST", "/v1/users", map[string]any{"email": "outage@example.com", "name": "Outage"})
	if err != nil {
		t.Fatal(err)
	}
	checkOutbox(t, e.pool, time.Minute) // the relay publishes while the broker is up

	k.script(t, "down", "kafka")
	if brokerListening(k.brokers[0]) {
		t.Fatalf("the test's broker at %s still accepts connections after scripts/stack.sh down kafka", k.brokers[0])
	}
	mem.phase("outage")
	body := largeOrder(user)
	start := time.Now()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := c; i < orders && !t.Failed(); i += clients {
				if err := postRaw(ctx, writer.url+"/v1/orders", body); err != nil {
					t.Errorf("order %d: %v", i, err)
				}
			}
		})
	}
	wg.Wait()
	placed := time.Since(start)
	if t.Failed() {
		return
	}
	backlog := outboxEvents(t, e.pool)
	if backlog != orders {
		t.Errorf("%d events in the outbox after the orders placed during the outage, want %d", backlog, orders)
	}
	var stored, escaped int
	if err := e.pool.QueryRow(ctx, `select max(octet_length(data::text)), count(*) filter (where position('\u003c' in data::text) > 0)
		from annals_events where type = 'OrderCreated'`).Scan(&stored, &escaped); err != nil {
		t.Fatal(err)
	}
	// The event is the order as sent, with its id and total: a few bytes more than the body.
	if stored > len(body)+512 || escaped > 0 {
		t.Errorf("orders of %d bytes were stored as events of up to %d bytes, %d of them HTML-escaped; want the order's size, as sent", len(body), stored, escaped)
	}

	mem.phase("drain")
	up := time.Now()
	k.script(t, "up", "kafka")
	checkOutbox(t, e.pool, 3*time.Minute)
	drained := time.Since(up)
	if n := k.published(t, e.cfg.TopicName("order")); n < orders {
		t.Errorf("%d records on %s, want the %d orders", n, e.cfg.TopicName("order"), orders)
	}
	peaks := mem.stop()

	t.Logf("%d orders of %d bytes (stored as events of %d bytes) placed in %v while the broker was down; the relay published them %v after the broker was started again; writer's memory: %s",
		orders, len(body), stored, placed.Round(time.Millisecond), drained.Round(time.Millisecond), peaks)
	if peaks.hwm >= writerMemoryLimit {
		t.Errorf("the writer's resident set peaked at %d MiB, over its memory limit of %d MiB", peaks.hwm>>20, writerMemoryLimit>>20)
	}
}

// largeOrder is the body of an order of the user with the most items an order takes, each
// named with 200 characters of markup (<, > and &, which HTML escaping makes six bytes each):
// about 300 KB.
func largeOrder(user string) []byte {
	type item struct {
		ID         string `json:"id"`
		Name       string `json:"name"`
		PriceCents int64  `json:"price_cents"`
		Quantity   int64  `json:"quantity"`
	}
	items := make([]item, 1000) // domain.MaxItems
	for i := range items {
		items[i] = item{ID: "sku-" + uuid.NewString(), Name: strings.Repeat("<b>&</b>", 25), PriceCents: 1999, Quantity: 1 + int64(i%3)}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // sent as a client writes it
	if err := enc.Encode(map[string]any{"user_id": user, "items": items}); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// postRaw posts a JSON body as it is.
func postRaw(ctx context.Context, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1000))
		return fmt.Errorf("POST %s: %s: %s", url, resp.Status, b)
	}
	return nil
}

// ownKafka is a broker of the test's own: scripts/stack.sh's Kafka in a folder and on ports
// of its own (stackEnv), which the test may stop and start.
type ownKafka struct {
	env     *stackEnv
	brokers []string
}

func startOwnKafka(t *testing.T) *ownKafka {
	t.Helper()
	k := &ownKafka{env: newStackEnv(t)}
	k.brokers = []string{"127.0.0.1:" + strconv.Itoa(k.env.kafka)}
	if shared := os.Getenv("KAFKA_BROKERS"); strings.Contains(shared, k.brokers[0]) {
		t.Fatalf("the test's broker %s would be the shared one (%s)", k.brokers[0], shared)
	}
	t.Cleanup(func() {
		if out, err := k.run("down", "kafka"); err != nil {
			t.Errorf("scripts/stack.sh down kafka: %v\n%s", err, out)
		}
	})
	k.script(t, "up", "kafka")
	return k
}

// run runs scripts/stack.sh on the test's own stack.
func (k *ownKafka) run(args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(k.env.root, "scripts", "stack.sh"), args...)
	cmd.Dir = k.env.root
	cmd.Env = append(k.env.environ(), "ANNALS_KAFKA_HEAP=-Xms128m -Xmx512m")
	return cmd.CombinedOutput()
}

// script runs scripts/stack.sh on the test's own stack and fails the test when it fails.
func (k *ownKafka) script(t *testing.T, args ...string) {
	t.Helper()
	if out, err := k.run(args...); err != nil {
		if b, rerr := os.ReadFile(filepath.Join(k.env.dir, "kafka", "server.log")); rerr == nil {
			t.Logf("--- kafka/server.log (tail)\n%s", tail(b, 3000))
		}
		t.Fatalf("scripts/stack.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// published is the number of records the topic holds: the sum of its partitions' end offsets.
func (k *ownKafka) published(t *testing.T, topic string) int64 {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(k.brokers...), Timeout: 30 * time.Second}
	meta, err := client.Metadata(context.Background(), &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		t.Fatalf("metadata of %s: %v %+v", topic, err, meta)
	}
	var req []kafka.OffsetRequest
	for _, p := range meta.Topics[0].Partitions {
		req = append(req, kafka.LastOffsetOf(p.ID))
	}
	resp, err := client.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: req}})
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	var n int64
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			t.Fatalf("end offset of %s/%d: %v", topic, p.Partition, p.Error)
		}
		n += p.LastOffset
	}
	return n
}

// memoryWatch samples a service's memory every 50 ms: the kernel's peak resident set of the
// process (VmHWM) and the Go heap in use per phase (go_memstats_heap_inuse_bytes of its
// /metrics).
type memoryWatch struct {
	s       *service
	mu      sync.Mutex
	cur     string
	heap    map[string]int64 // peak heap in use by phase
	hwm     int64
	stopped chan struct{}
	done    chan struct{}
}

// memoryPeaks are the figures of a memoryWatch.
type memoryPeaks struct {
	hwm   int64
	heap  map[string]int64
	order []string
}

func (p memoryPeaks) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "peak resident set %d MiB", p.hwm>>20)
	for _, ph := range p.order {
		fmt.Fprintf(&b, ", peak Go heap in use %s %d MiB", ph, p.heap[ph]>>20)
	}
	return b.String()
}

func watchMemory(t *testing.T, s *service) *memoryWatch {
	t.Helper()
	m := &memoryWatch{s: s, cur: "start", heap: map[string]int64{}, stopped: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			m.sample()
			select {
			case <-m.stopped:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { m.stop() })
	return m
}

// phase starts a new phase of the heap's peaks.
func (m *memoryWatch) phase(name string) {
	m.sample()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cur = name
}

func (m *memoryWatch) sample() {
	hwm := statusKiB(m.s.cmd.Process.Pid, "VmHWM") << 10
	heap := int64(-1)
	if status, body, err := get(context.Background(), m.s.url+"/metrics"); err == nil && status == http.StatusOK {
		heap = gauge(body, "go_memstats_heap_inuse_bytes")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hwm = max(m.hwm, hwm)
	if heap >= 0 {
		m.heap[m.cur] = max(m.heap[m.cur], heap)
	}
}

// stop ends the sampling and returns the peaks.
func (m *memoryWatch) stop() memoryPeaks {
	select {
	case <-m.stopped:
	default:
		close(m.stopped)
	}
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	p := memoryPeaks{hwm: m.hwm, heap: m.heap}
	for _, ph := range []string{"start", "outage", "drain"} {
		if _, ok := m.heap[ph]; ok {
			p.order = append(p.order, ph)
		}
	}
	return p
}

// statusKiB is a field of /proc/<pid>/status given in kB; 0 when the process is gone.
func statusKiB(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// gauge is the value of an unlabelled series in a Prometheus text exposition; -1 when absent.
func gauge(body []byte, name string) int64 {
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return int64(f)
			}
		}
	}
	return -1
}
