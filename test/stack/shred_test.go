//go:build stack

package stack_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/shred"
)

// The erasure test: the writer (with its relay), the projector, the notifier and the auditor
// run as processes of their own, with personal data encrypted under a key-encryption key of
// the test's own. A user with a distinctive email and name is created, renamed, and places an
// order that is confirmed; once the read models, the emails and the audit log have them, the
// user's personal data is erased. Then the clear email and names must appear nowhere: in no
// table of the test's schema, in no record of its topics, in no answer of the services about
// the user. The audit chain still verifies. A rebuild of the read models and a reprocess of
// the user's events bring nothing back. A second user, not erased, keeps their clear data
// everywhere the scan looks (so the scan can find what it looks for).

// shredBins are the programs of the erasure test.
type shredBins struct{ writer, projector, notifier, auditor, annals string }

func shredBuild(t *testing.T) shredBins {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"./services/writer", "./services/projector", "./services/notifier", "./services/auditor", "./cmd/annals")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	b := func(name string) string { return filepath.Join(dir, name) }
	return shredBins{writer: b("writer"), projector: b("projector"), notifier: b("notifier"), auditor: b("auditor"), annals: b("annals")}
}

// shredPerson is a user of the test with the personal data the scan looks for.
type shredPerson struct {
	id      string
	secrets []string // every email and name the user ever had
	email   string   // the current email
	name    string   // the current name
}

// shredCall sends a request to a service and returns the status and the body.
func shredCall(t *testing.T, method, u string, body any) (int, []byte) {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	return resp.StatusCode, buf.Bytes()
}

// shredCommand sends a command to the writer, which must accept it, and returns the id in its
// answer.
func shredCommand(t *testing.T, writer, method, path string, body any) string {
	t.Helper()
	status, b := shredCall(t, method, writer+path, body)
	if status/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, path, status, b)
	}
	var out struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(b, &out)
	return out.ID
}

// shredFind returns where the secrets (as text, lower-cased, or hex-encoded) occur in b, or
// nothing.
func shredFind(b []byte, secrets []string) []string {
	low := bytes.ToLower(b)
	var found []string
	for _, s := range secrets {
		if bytes.Contains(low, []byte(strings.ToLower(s))) || bytes.Contains(low, []byte(hex.EncodeToString([]byte(s)))) {
			found = append(found, s)
		}
	}
	return found
}

// shredScanTables returns, for every table of the schema that holds one of the secrets (any
// column, cast to text with the whole row), the secrets it holds.
func shredScanTables(t *testing.T, e *faultEnv, secrets []string) map[string][]string {
	t.Helper()
	ctx := context.Background()
	rows, err := e.pool.Query(ctx, `select table_name from information_schema.tables
		where table_schema = current_schema() and table_type = 'BASE TABLE' order by table_name`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) < 10 {
		t.Fatalf("the schema has only %d tables (%v): not the services' schema", len(tables), tables)
	}
	out := map[string][]string{}
	for _, table := range tables {
		rows, err := e.pool.Query(ctx, `select t::text from `+pgx.Identifier{table}.Sanitize()+` t`)
		if err != nil {
			t.Fatalf("scan %s: %v", table, err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("scan %s: %v", table, err)
		}
		for _, s := range texts {
			if f := shredFind([]byte(s), secrets); len(f) > 0 {
				out[table] = append(out[table], f...)
			}
		}
	}
	return out
}

// shredTopics are the topics of the deployment's prefix, read from the broker's metadata.
func shredTopics(t *testing.T, e *faultEnv) []string {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(e.brokers...), Timeout: 30 * time.Second}
	resp, err := client.Metadata(context.Background(), &kafka.MetadataRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, tp := range resp.Topics {
		if strings.HasPrefix(tp.Name, e.cfg.Kafka.TopicPrefix+".") || strings.HasPrefix(tp.Name, e.cfg.Kafka.TopicPrefix+"-") {
			out = append(out, tp.Name)
		}
	}
	return out
}

// shredScanTopics returns, for every topic of the deployment's prefix with a record that holds
// one of the secrets (in its key, value or headers, as raw bytes), the secrets it holds, and
// the number of records read.
func shredScanTopics(t *testing.T, e *faultEnv, secrets []string) (map[string][]string, int) {
	t.Helper()
	out := map[string][]string{}
	n := 0
	for _, topic := range shredTopics(t, e) {
		for _, m := range readTopic(t, e, topic) {
			n++
			raw := append(append([]byte{}, m.Key...), m.Value...)
			for _, h := range m.Headers {
				raw = append(append(append(raw, h.Key...), ' '), h.Value...)
			}
			if f := shredFind(raw, secrets); len(f) > 0 {
				out[topic] = append(out[topic], f...)
			}
		}
	}
	return out, n
}

// shredScanConsole reads every record of the deployment's topics with Kafka's own console
// consumer (keys, values and headers as text) and returns what it printed.
func shredScanConsole(t *testing.T, e *faultEnv) string {
	t.Helper()
	out := testenv.KafkaTools(t, []string{"consumer.ConsoleConsumer", "--bootstrap-server", e.brokers[0],
		"--include", regexp.QuoteMeta(e.cfg.Kafka.TopicPrefix) + `[.-].*`, "--from-beginning", "--timeout-ms", "20000",
		"--property", "print.key=true", "--property", "print.headers=true",
		"--consumer-property", "group.id=shred-scan-" + testenv.UniqueName(t)})
	return out[0]
}

// shredScanHTTP returns the answers about the user, of the writer, the projector and the
// notifier, that hold one of the secrets.
func shredScanHTTP(t *testing.T, writer, projector, notifier string, p shredPerson, secrets []string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, u := range []string{
		writer + "/v1/users/" + p.id,
		writer + "/v1/users/" + p.id + "?version=0",
		writer + "/v1/streams/user-" + p.id + "/events",
		projector + "/v1/users/" + p.id,
		projector + "/v1/users?limit=500",
		projector + "/v1/users/" + p.id + "/orders",
		notifier + "/v1/notifications?limit=500",
	} {
		status, b := shredCall(t, http.MethodGet, u, nil)
		if status/100 != 2 {
			t.Errorf("GET %s: %d %s", u, status, b)
		}
		if f := shredFind(b, secrets); len(f) > 0 {
			out[u] = f
		}
	}
	for _, s := range secrets {
		if !strings.Contains(s, "@") {
			continue
		}
		u := notifier + "/v1/notifications?to=" + url.QueryEscape(s)
		status, b := shredCall(t, http.MethodGet, u, nil)
		if status/100 != 2 {
			t.Errorf("GET %s: %d %s", u, status, b)
		}
		if f := shredFind(b, secrets); len(f) > 0 {
			out[u] = f
		}
	}
	return out
}

// projectedUser is the projector's answer about a user.
type projectedUser struct {
	Version int64  `json:"version"`
	Email   string `json:"email"`
	Name    string `json:"name"`
}

// erased reports whether the projector shows the user erased: no email, no name.
func (u projectedUser) erased() bool { return u.Email == "" && u.Name == "" }

func shredProjected(t *testing.T, projector, id string) (projectedUser, bool) {
	t.Helper()
	status, b := shredCall(t, http.MethodGet, projector+"/v1/users/"+id, nil)
	if status != http.StatusOK {
		return projectedUser{}, false
	}
	var u projectedUser
	if err := json.Unmarshal(b, &u); err != nil {
		t.Fatalf("projector: user %s: %v: %s", id, err, b)
	}
	return u, true
}

func shredCount(t *testing.T, e *faultEnv, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := e.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		return -1 // a table not created yet
	}
	return n
}

// shredVerify runs `annals audit verify`, which must find the chain intact.
func shredVerify(t *testing.T, bin string, e *faultEnv) {
	t.Helper()
	cmd := exec.Command(bin, "audit", "verify")
	cmd.Dir = t.TempDir()
	cmd.Env = os.Environ()
	for k, v := range e.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "the chain is intact") {
		t.Errorf("annals audit verify: %v\n%s", err, out)
	}
}

// shredRun runs the admin CLI with the deployment's environment; it must succeed.
func shredRun(t *testing.T, bin string, e *faultEnv, args ...string) string {
	t.Helper()
	p := startProcess(t, bin, args, e.vars, "annals-"+args[0])
	select {
	case <-p.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("annals %s did not finish within 2 minutes:\n%s", strings.Join(args, " "), p.logText(t))
	}
	out := p.logText(t)
	if p.err != nil {
		t.Fatalf("annals %s: %v\n%s", strings.Join(args, " "), p.err, out)
	}
	return out
}

func TestShred_ErasureLeavesNoClearData(t *testing.T) {
	bins := shredBuild(t)
	e := newFaultEnv(t)
	uniq := strconv.FormatInt(time.Now().UnixNano(), 36)
	domain := "e" + uniq + ".annals-test.invalid"
	t.Cleanup(func() { notifierDeleteMail(t, domain) })
	key, err := shred.NewKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "personal-data.key")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	e.vars["PERSONAL_DATA_KEY_FILE"] = keyFile
	e.vars["SMTP_ADDR"] = testenv.SMTPAddr(t)
	e.vars["SMTP_STARTTLS"] = "none"
	e.vars["NOTIFIER_RATE_LIMIT"] = "0"
	e.vars["NOTIFIER_EMAILS_PER_PRINCIPAL_HOUR"] = "0"

	writer := startService(t, bins.writer, e, "writer", freeAddr(t))
	projector := startService(t, bins.projector, e, "projector", freeAddr(t))
	notifier := startService(t, bins.notifier, e, "notifier", freeAddr(t))
	startAuditor(t, bins.auditor, e, "auditor", freeAddr(t))

	// Two users: one to erase, one to keep.
	erased := shredPerson{email: "ximena.quartzfeather." + uniq + "@" + domain, name: "Ximena Quartzfeather " + uniq}
	kept := shredPerson{email: "bartholomew.zinnober." + uniq + "@" + domain, name: "Bartholomew Zinnober " + uniq}
	for _, p := range []*shredPerson{&erased, &kept} {
		p.id = shredCommand(t, writer.url, "POST", "/v1/users", map[string]any{"email": p.email, "name": p.name})
		p.secrets = append(p.secrets, p.email, p.name)
		newEmail, newName := "re."+p.email, p.name+" Renamed"
		shredCommand(t, writer.url, "PATCH", "/v1/users/"+p.id, map[string]any{"email": newEmail, "name": newName})
		p.email, p.name = newEmail, newName
		p.secrets = append(p.secrets, p.email, p.name)
		order := shredCommand(t, writer.url, "POST", "/v1/orders", map[string]any{"user_id": p.id,
			"items": []map[string]any{{"id": "sku-1", "name": "Teapot", "price_cents": 1250, "quantity": 2}}})
		shredCommand(t, writer.url, "POST", "/v1/orders/"+order+"/confirm", nil)
	}
	secrets := erased.secrets

	// Projected, emailed, audited.
	waitEvery(t, 2*time.Minute, 100*time.Millisecond, "both users projected with their new names", func() bool {
		for _, p := range []shredPerson{erased, kept} {
			u, ok := shredProjected(t, projector.url, p.id)
			if !ok || u.Email != p.email || u.Name != p.name {
				return false
			}
		}
		return true
	})
	waitEvery(t, 2*time.Minute, 100*time.Millisecond, "four emails sent (two welcomes, two confirmations)", func() bool {
		return shredCount(t, e, `select count(*) from annals_notifier_sent where status = 'sent'`) == 4
	})
	waitEvery(t, 2*time.Minute, 100*time.Millisecond, "every event audited", func() bool {
		return shredCount(t, e, `select count(*) from annals_audit_log`) == shredCount(t, e, `select count(*) from annals_events`)
	})
	// The scan finds clear data where it is: the read model and the notifier hold both users'.
	for _, p := range []shredPerson{erased, kept} {
		found := shredScanTables(t, e, []string{p.email, p.name})
		if len(found) == 0 {
			t.Fatalf("the scan finds %s's clear data in no table before the erasure", p.id)
		}
		t.Logf("before the erasure, %s's clear data is in %v", p.id, found)
	}

	// Erase.
	status, b := shredCall(t, http.MethodDelete, writer.url+"/v1/users/"+erased.id+"/personal-data", nil)
	if status/100 != 2 {
		t.Fatalf("DELETE personal-data: %d %s", status, b)
	}
	events := shredCount(t, e, `select count(*) from annals_events`)
	waitEvery(t, 2*time.Minute, 100*time.Millisecond, "the erasure projected, in the directory and audited", func() bool {
		u, ok := shredProjected(t, projector.url, erased.id)
		return ok && u.erased() &&
			shredCount(t, e, `select count(*) from annals_notifier_users where user_id = $1 and erased_at is not null`, erased.id) == 1 &&
			shredCount(t, e, `select count(*) from annals_audit_log`) == events
	})

	scan := func(when string) {
		t.Helper()
		if found := shredScanTables(t, e, secrets); len(found) > 0 {
			t.Errorf("%s: clear personal data of the erased user in tables: %v", when, found)
		}
		found, n := shredScanTopics(t, e, secrets)
		if len(found) > 0 {
			t.Errorf("%s: clear personal data of the erased user in topics: %v", when, found)
		}
		if n == 0 {
			t.Errorf("%s: the scan read no record of the topics", when)
		}
		console := shredScanConsole(t, e)
		if f := shredFind([]byte(console), secrets); len(f) > 0 {
			t.Errorf("%s: Kafka's console consumer prints clear personal data of the erased user: %v", when, f)
		}
		if !strings.Contains(console, "user-"+erased.id) {
			t.Errorf("%s: Kafka's console consumer printed no record of the erased user", when)
		}
		if found := shredScanHTTP(t, writer.url, projector.url, notifier.url, erased, secrets); len(found) > 0 {
			t.Errorf("%s: clear personal data of the erased user in answers: %v", when, found)
		}
		// The user not erased keeps their data.
		u, ok := shredProjected(t, projector.url, kept.id)
		if !ok || u.Email != kept.email || u.Name != kept.name {
			t.Errorf("%s: the user not erased reads %+v, want %s %q", when, u, kept.email, kept.name)
		}
		if found := shredScanTables(t, e, []string{kept.email, kept.name}); len(found) == 0 {
			t.Errorf("%s: the clear data of the user not erased is in no table", when)
		}
	}
	scan("after the erasure")
	shredVerify(t, bins.annals, e)

	// Rebuild the read models, and reprocess the last hour's events: nothing comes back.
	t.Log(shredRun(t, bins.annals, e, "projector", "rebuild"))
	t.Log(shredRun(t, bins.annals, e, "replay", "--group", "projector", "--since", "1h", "--reprocess"))
	u, ok := shredProjected(t, projector.url, erased.id)
	if !ok || !u.erased() {
		t.Errorf("after the rebuild, the erased user reads %+v", u)
	}
	scan("after the rebuild and the reprocess")
	shredVerify(t, bins.annals, e)
}
