//go:build stack

package stack_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/kafkawire"
	"github.com/annals-dev/annals/pkg/schema"
	"github.com/annals-dev/annals/pkg/signing"
)

// Records that anyone who can reach the brokers can write, produced with Kafka's own console
// producer while the writer, the projector, the notifier and the auditor run: a well-formed
// profile update of a real user without a signature, the same signed with a key nobody
// accepts, a well-formed UserCreated of a user who does not exist, and a value that is no
// event, keyed by the real user's stream. Each consumer group sets each one aside in its
// dead-letter topic with the reason, blocks no stream, and changes nothing: the read model,
// the sent log and Mailpit, and the audit log (whose chain verifies against the event store)
// hold only what the writer did. The user's next genuine event, right after, is applied
// everywhere. ANNALS_FAULT_ROUNDS repeats it on fresh deployments.
func TestTrust_RecordsTheRelayDidNotPublish(t *testing.T) {
	for round := range faultRounds(t) {
		t.Run(fmt.Sprintf("round-%d", round+1), trustRound)
	}
}

func trustRound(t *testing.T) {
	bins := buildBinaries(t)
	notifierBin, auditorBin := buildConsumerBinaries(t)
	e := newFaultEnv(t)
	mailDomain := "t" + strconv.FormatInt(time.Now().UnixNano(), 36) + ".annals-test.invalid"
	t.Cleanup(func() { notifierDeleteMail(t, mailDomain) })
	e.vars["SMTP_ADDR"] = testenv.SMTPAddr(t)
	e.vars["SMTP_STARTTLS"] = "none"
	e.vars["NOTIFIER_RATE_LIMIT"] = "0"
	e.vars["NOTIFIER_EMAILS_PER_PRINCIPAL_HOUR"] = "0" // one API key makes every user
	writer := startService(t, bins.writer, e, "writer", freeAddr(t))
	consumers := map[string]*service{
		"projector": startService(t, bins.projector, e, "projector", freeAddr(t)),
		"notifier":  startService(t, notifierBin, e, "notifier", freeAddr(t)),
		"auditor":   startService(t, auditorBin, e, "auditor", freeAddr(t)),
	}
	ctx := context.Background()

	// A user, through the writer, seen by all three.
	ada := "ada@" + mailDomain
	id, err := notifierCommand(ctx, writer.url, "POST", "/v1/users", map[string]any{"email": ada, "name": "Ada"})
	if err != nil {
		t.Fatal(err)
	}
	stream := "user-" + id
	waitEvery(t, time.Minute, 100*time.Millisecond, "the user in the read model, the welcome email and the audit log", func() bool {
		u, ok := readModelUser(t, consumers["projector"].url, id)
		ids, _ := notifierMailpit(t, mailDomain)
		return ok && u.Version == 0 && len(ids) == 1 && auditEntries(t, e.pool) == 1
	})

	// The hostile records, then the user's next genuine event.
	fp := func(typ string) string {
		in, ok := domain.Catalog().Current(typ)
		if !ok {
			t.Fatalf("no schema for %s", typ)
		}
		return in.FingerprintHex
	}
	forge := func(streamID, typ string, version int64, data string) testenv.ConsoleRecord {
		e := events.Envelope{EventID: uuid.Must(uuid.NewV7()), StreamID: streamID, Version: version, GlobalPosition: 1 << 40,
			Type: typ, Data: json.RawMessage(data), RecordedAt: time.Now().UTC()}
		value, _, err := domain.Catalog().EncodeJSON(e)
		if err != nil {
			t.Fatal(err)
		}
		return testenv.ConsoleRecord{Key: streamID, Value: string(value), Headers: [][2]string{
			{kafkawire.HeaderEventID, e.EventID.String()}, {kafkawire.HeaderEventType, typ},
			{kafkawire.HeaderStreamVersion, strconv.FormatInt(version, 10)},
			{kafkawire.HeaderContentType, schema.ContentTypeJSON}, {kafkawire.HeaderFingerprint, fp(typ)},
		}}
	}
	profile := `{"name":"Mallory","email":"mallory@` + mailDomain + `"}`
	unsigned := forge(stream, domain.EventUserProfileUpdated, 1, profile)
	otherKey := forge(stream, domain.EventUserProfileUpdated, 1, profile)
	otherKey.Headers = append(otherKey.Headers, [2]string{kafkawire.HeaderSignature, signWithOtherKey(t, otherKey)})
	newUser := uuid.Must(uuid.NewV7()).String()
	created := forge("user-"+newUser, domain.EventUserCreated, 0,
		`{"user_id":"`+newUser+`","email":"forged@`+mailDomain+`","name":"Forged"}`)
	garbage := testenv.ConsoleRecord{Key: stream, Value: "not an event", Headers: [][2]string{
		{kafkawire.HeaderContentType, schema.ContentTypeAvro}, {kafkawire.HeaderEventType, domain.EventUserProfileUpdated}}}
	testenv.ConsoleProduce(t, e.cfg.TopicName(domain.UserCategory), unsigned, otherKey, created, garbage)
	if _, err := notifierCommand(ctx, writer.url, "POST", "/v1/users/"+id+"/deactivate", map[string]any{"reason": "moved away"}); err != nil {
		t.Fatal(err)
	}

	waitEvery(t, time.Minute, 100*time.Millisecond, "the genuine deactivation in the read model", func() bool {
		u, ok := readModelUser(t, consumers["projector"].url, id)
		return ok && u.Version >= 1
	})
	if u, _ := readModelUser(t, consumers["projector"].url, id); u.Name != "Ada" || u.Email != ada || u.Version != 1 || u.DeactivationReason != "moved away" {
		t.Errorf("the read model holds %+v; want version 1: Ada, %s, deactivated because she moved away", u, ada)
	}
	waitEvery(t, time.Minute, 100*time.Millisecond, "every group to set the four records aside", func() bool {
		for _, s := range consumers {
			if quarantinedTotal(t, s.url) < 4 {
				return false
			}
		}
		return auditEntries(t, e.pool) == storedEvents(t, e.pool)
	})
	for name, s := range consumers {
		if n := quarantinedTotal(t, s.url); n != 4 {
			t.Errorf("%s: annals_consumer_quarantined_total is %v, want 4", name, n)
		}
		reasons := map[string]int{}
		letters := readTopic(t, e, e.cfg.DLQTopic(e.cfg.ConsumerGroup(name)))
		if len(letters) != 4 {
			t.Errorf("%s: %d dead letters, want the 4 records set aside and nothing parked", name, len(letters))
		}
		for _, m := range letters {
			got := dlqHeader(m, kafkawire.HeaderError)
			switch {
			case !strings.HasPrefix(got, "quarantined: "):
				t.Errorf("%s: dead letter %s@%d: error %q, want a quarantine", name, m.Key, m.Offset, got)
			case strings.Contains(got, "no signature"):
				reasons["no signature"]++
			case strings.Contains(got, "not accepted"):
				reasons["not accepted"]++
			}
		}
		if reasons["no signature"] != 3 || reasons["not accepted"] != 1 {
			t.Errorf("%s: dead letters by reason %v, want 3 without a signature and 1 signed with a key not accepted", name, reasons)
		}
	}
	if _, ok := readModelUser(t, consumers["projector"].url, newUser); ok {
		t.Errorf("the forged user is in the read model")
	}
	_, to := notifierMailpit(t, mailDomain)
	for msg, rcpts := range to {
		if rcpts[0] != ada {
			t.Errorf("email %s went to %v", msg, rcpts)
		}
	}
	checkAuditLog(t, e) // also: no stream blocked in the auditor's group
	var blocked int64
	if err := e.pool.QueryRow(ctx, `select count(*) from annals_consumer_blocks`).Scan(&blocked); err != nil {
		t.Fatal(err)
	}
	if blocked != 0 {
		t.Errorf("%d streams blocked", blocked)
	}
}

// signWithOtherKey is the signature header of r made with a key the deployment does not accept.
func signWithOtherKey(t *testing.T, r testenv.ConsoleRecord) string {
	t.Helper()
	k, err := signing.ParseKey("other:" + strings.Repeat("0123456789", 4))
	if err != nil {
		t.Fatal(err)
	}
	s, err := signing.NewSigner(k)
	if err != nil {
		t.Fatal(err)
	}
	m := kafka.Message{Key: []byte(r.Key), Value: []byte(r.Value)}
	for _, h := range r.Headers {
		m.Headers = append(m.Headers, kafka.Header{Key: h[0], Value: []byte(h[1])})
	}
	s.Sign(&m)
	return string(m.Headers[len(m.Headers)-1].Value)
}

// readModelUser is the projector's user, and whether it has one.
func readModelUser(t *testing.T, base, id string) (apiUser, bool) {
	t.Helper()
	code, body, err := get(context.Background(), base+"/v1/users/"+id)
	if err != nil || code == http.StatusNotFound {
		return apiUser{}, false
	}
	var u apiUser
	if code != http.StatusOK || json.Unmarshal(body, &u) != nil {
		t.Fatalf("GET /v1/users/%s: %d %s", id, code, body)
	}
	return u, true
}

// quarantinedTotal sums a service's annals_consumer_quarantined_total.
func quarantinedTotal(t *testing.T, base string) float64 {
	t.Helper()
	resp, err := httpc.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "annals_consumer_quarantined_total{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

func dlqHeader(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
