//go:build stack

package stack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
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

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/testenv"
)

// The notifier's process-level test: the writer and the notifier run as processes of their
// own in a fault environment, a workload of commands goes to the writer over HTTP, and the
// notifier is killed with SIGKILL twice while it mails, then started again. Every email the
// events call for (a welcome per UserCreated, one per OrderConfirmed and OrderCancelled) must
// be in its sent log once and in Mailpit at least once. A copy beyond the first is allowed
// only for an email caught in the SMTP window by a kill: at most one per email, with the same
// Message-ID and recipient, and at most one per lane per kill.

const (
	notifierLanes        = 8 // wiring.ConsumerConfig's lanes: emails in flight at once
	notifierUsers        = 240
	notifierFirstKillAt  = 80
	notifierSecondKillAt = 260
)

// notifierBins are the writer and the notifier, built for the test.
type notifierBins struct{ writer, notifier string }

func notifierBuild(t *testing.T) notifierBins {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./services/writer", "./services/notifier")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return notifierBins{writer: filepath.Join(dir, "writer"), notifier: filepath.Join(dir, "notifier")}
}

// notifierProc is a service process in a process group of its own.
type notifierProc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// notifierStartProc starts bin with vars in an empty folder (no configuration file) and waits
// until its /readyz answers 200. It is killed when the test ends; the tail of its log is
// printed when the test failed.
func notifierStartProc(t *testing.T, bin string, vars map[string]string, name, addr string) *notifierProc {
	t.Helper()
	dir := t.TempDir()
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Dir = dir
	cmd.Env = os.Environ()
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "HTTP_ADDR="+addr)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatal(err)
	}
	p := &notifierProc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logFile.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				if len(b) > 4000 {
					b = b[len(b)-4000:]
				}
				t.Logf("--- %s (tail)\n%s", name, b)
			}
		}
	})
	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case <-p.done:
			t.Fatalf("%s exited before it was ready", name)
		default:
		}
		if resp, err := notifierHTTP.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer /readyz within a minute", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends SIGKILL to the process group and waits for the process to exit.
func (p *notifierProc) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

var notifierHTTP = &http.Client{Timeout: 30 * time.Second, Transport: testenv.Authorizing(http.DefaultTransport)}

// notifierCommand sends a command to the writer and decodes the answer's id.
func notifierCommand(ctx context.Context, base, method, path string, body any) (string, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return "", err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := notifierHTTP.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return "", fmt.Errorf("%s %s: %w", method, path, err)
	}
	return out.ID, nil
}

// notifierWorkload creates the users, each with two orders that are confirmed, cancelled, or
// confirmed and then cancelled, from 8 clients at once.
func notifierWorkload(ctx context.Context, base, domain string) error {
	var next atomic.Int64
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= notifierUsers || ctx.Err() != nil {
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

func notifierUser(ctx context.Context, base, domain string, i int) error {
	user, err := notifierCommand(ctx, base, "POST", "/v1/users",
		map[string]any{"email": fmt.Sprintf("user%d@%s", i, domain), "name": fmt.Sprintf("Kill Test %d", i)})
	if err != nil {
		return err
	}
	for j := range 2 {
		order, err := notifierCommand(ctx, base, "POST", "/v1/orders", map[string]any{"user_id": user,
			"items": []map[string]any{{"id": "sku-" + strconv.Itoa(j), "name": "Thing", "price_cents": 100 + i, "quantity": 1 + j}}})
		if err != nil {
			return err
		}
		steps := []string{"confirm"}
		switch (i + j) % 7 {
		case 0, 1:
			steps = []string{"cancel"}
		case 2:
			steps = []string{"confirm", "cancel"}
		}
		for _, s := range steps {
			var body any
			if s == "cancel" {
				body = map[string]string{"reason": "changed my mind"}
			}
			if _, err := notifierCommand(ctx, base, "POST", "/v1/orders/"+order+"/"+s, body); err != nil {
				return err
			}
		}
	}
	return nil
}

// notifierMailpit returns the Message-IDs and recipients of the messages to domain in Mailpit.
func notifierMailpit(t *testing.T, domain string) (ids map[string]int, to map[string][]string) {
	t.Helper()
	u := testenv.MailpitURL(t) + "/api/v1/search?limit=100000&query=" + url.QueryEscape("to:"+domain)
	resp, err := notifierHTTP.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res struct {
		Messages []struct {
			MessageID string
			To        []struct{ Address string }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatal(err)
	}
	ids, to = map[string]int{}, map[string][]string{}
	for _, m := range res.Messages {
		ids[m.MessageID]++
		for _, a := range m.To {
			to[m.MessageID] = append(to[m.MessageID], strings.ToLower(a.Address))
		}
	}
	return ids, to
}

func notifierDeleteMail(t *testing.T, domain string) {
	req, err := http.NewRequest(http.MethodDelete, testenv.MailpitURL(t)+"/api/v1/search?query="+url.QueryEscape("to:"+domain), nil)
	if err != nil {
		return
	}
	if resp, err := notifierHTTP.Do(req); err == nil {
		resp.Body.Close()
	}
}

func TestNotifier_SIGKILL(t *testing.T) {
	e := newFaultEnv(t)
	bins := notifierBuild(t)
	domain := "k" + strconv.FormatInt(time.Now().UnixNano(), 36) + ".annals-test.invalid"
	t.Cleanup(func() { notifierDeleteMail(t, domain) })
	vars := maps.Clone(e.vars)
	vars["MIGRATE_ON_START"] = "true"
	vars["LOG_FORMAT"] = "json"
	vars["SMTP_ADDR"] = testenv.SMTPAddr(t)
	vars["SMTP_STARTTLS"] = "none"
	vars["NOTIFIER_RATE_LIMIT"] = "0"
	vars["NOTIFIER_EMAILS_PER_PRINCIPAL_HOUR"] = "0" // one API key makes every user
	vars["NOTIFIER_USER_WAIT"] = "2m"
	ports := freePorts(t, 2)
	writerAddr, notifierAddr := "127.0.0.1:"+strconv.Itoa(ports[0]), "127.0.0.1:"+strconv.Itoa(ports[1])
	notifierStartProc(t, bins.writer, vars, "writer", writerAddr)
	notifier := notifierStartProc(t, bins.notifier, vars, "notifier-1", notifierAddr)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	workErr := make(chan error, 1)
	go func() { workErr <- notifierWorkload(ctx, "http://"+writerAddr, domain) }()

	sent := func() int {
		var n int
		if err := e.pool.QueryRow(context.Background(), `select count(*) from annals_notifier_sent`).Scan(&n); err != nil {
			return 0 // the notifier has not created its tables yet
		}
		return n
	}
	kills := 0
	for i, at := range []int{notifierFirstKillAt, notifierSecondKillAt} {
		waitEvery(t, 2*time.Minute, 20*time.Millisecond, fmt.Sprintf("%d emails before kill %d", at, i+1), func() bool { return sent() >= at })
		notifier.kill()
		kills++
		t.Logf("killed the notifier with %d emails in the sent log", sent())
		notifier = notifierStartProc(t, bins.notifier, vars, fmt.Sprintf("notifier-%d", i+2), notifierAddr)
	}
	if err := <-workErr; err != nil {
		t.Fatalf("workload: %v", err)
	}

	// Every email the events call for, by event id.
	want := map[uuid.UUID]bool{}
	rows, err := e.pool.Query(context.Background(), `select event_id from annals_events
		where type in ('UserCreated', 'OrderConfirmed', 'OrderCancelled')`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		want[id] = true
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	t.Logf("%d emails due", len(want))
	waitEvery(t, 3*time.Minute, 100*time.Millisecond, fmt.Sprintf("%d rows in the sent log", len(want)), func() bool { return sent() >= len(want) })
	if got := sent(); got != len(want) {
		t.Errorf("the sent log has %d rows, want %d", got, len(want))
	}
	var missing int
	if err := e.pool.QueryRow(context.Background(), `select count(*) from annals_events ev
		where ev.type in ('UserCreated', 'OrderConfirmed', 'OrderCancelled')
		and not exists (select from annals_notifier_sent s where s.event_id = ev.event_id and s.status = 'sent')`).Scan(&missing); err != nil {
		t.Fatal(err)
	}
	if missing != 0 {
		t.Errorf("%d emails due are not in the sent log", missing)
	}

	// Mailpit: every email at least once; copies only from the kills' SMTP windows.
	var ids map[string]int
	var to map[string][]string
	waitEvery(t, 30*time.Second, 200*time.Millisecond, "every email in Mailpit", func() bool {
		ids, to = notifierMailpit(t, domain)
		return len(ids) >= len(want)
	})
	// A kill can cost each lane one copy of the email it was sending; an email in flight at
	// both kills (the first one its lane sends again after the first) arrives three times.
	copies := 0
	for id := range want {
		mid := id.String() + "@annals.local"
		n := ids[mid]
		switch {
		case n == 0:
			t.Errorf("email %s did not arrive", mid)
		case n > kills+1:
			t.Errorf("email %s arrived %d times, want at most %d after %d kills", mid, n, kills+1, kills)
		case n > 1:
			copies += n - 1
			for _, rcpt := range to[mid] {
				if rcpt != to[mid][0] {
					t.Errorf("the copies of %s went to %v", mid, to[mid])
					break
				}
			}
		}
	}
	if len(ids) != len(want) {
		t.Errorf("Mailpit has %d distinct emails to %s, want %d", len(ids), domain, len(want))
	}
	if copies > kills*notifierLanes {
		t.Errorf("%d extra copies after %d kills, want at most %d (one per lane per kill)", copies, kills, kills*notifierLanes)
	}
	t.Logf("%d kills, %d extra copies (same Message-ID)", kills, copies)

	// Nothing went to the dead-letter topic.
	client := &kafka.Client{Addr: kafka.TCP(e.brokers...), Timeout: 10 * time.Second}
	dlq := e.cfg.DLQTopic(e.cfg.ConsumerGroup("notifier"))
	req := make([]kafka.OffsetRequest, e.cfg.Kafka.TopicPartitions)
	for i := range req {
		req[i] = kafka.LastOffsetOf(i)
	}
	resp, err := client.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{dlq: req}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range resp.Topics[dlq] {
		if p.Error != nil || p.LastOffset != 0 {
			t.Errorf("dead-letter topic %s/%d: end offset %d (%v), want empty", dlq, p.Partition, p.LastOffset, p.Error)
		}
	}
}
