//go:build stack

package stack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/kafkasec"
)

// The whole pipeline on the secured stack: the four services, each with its own Kafka
// identity, over SASL_SSL with SCRAM-SHA-512 and ACLs, and PostgreSQL over TLS with
// sslmode=verify-full. The secured servers have no plaintext listener, so that anything works
// at all proves that nothing fell back to plaintext.

// secureDeployment is a deployment on the secured stack: a schema of its own on its
// PostgreSQL, a topic prefix of its own with the services' ACLs granted, and the environment
// every program of it shares.
type secureDeployment struct {
	s       *secureStack
	prefix  string
	base    map[string]string
	secrets []string // values that must appear in no log line and no metric
}

// newSecureDeployment grants the ACLs of a new topic prefix and makes a schema; both are
// taken back when the test ends, and so are the prefix's topics.
func newSecureDeployment(t *testing.T) *secureDeployment {
	t.Helper()
	s := openSecureStack(t)
	d := &secureDeployment{s: s, prefix: "sp-" + testenv.UniqueName(t)}
	if out, err := s.script("acls", d.prefix); err != nil {
		t.Fatalf("scripts/stack.sh acls %s: %v\n%s", d.prefix, err, out)
	}
	t.Cleanup(func() {
		if out, err := s.script("acls", "--remove", d.prefix); err != nil {
			t.Errorf("scripts/stack.sh acls --remove %s: %v\n%s", d.prefix, err, out)
		}
	})

	ctx := context.Background()
	admin, err := pgxpool.New(ctx, s.env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	schema := "t_" + strings.ReplaceAll(d.prefix, "-", "_")
	if _, err := admin.Exec(ctx, "create schema "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatalf("create schema on the secured PostgreSQL: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(context.Background(), "drop schema "+pgx.Identifier{schema}.Sanitize()+" cascade"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(s.env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if q.Get("sslmode") != "verify-full" {
		t.Fatalf("the secured stack's DATABASE_URL asks for sslmode=%q, want verify-full", q.Get("sslmode"))
	}
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()

	d.base = map[string]string{
		"DATABASE_URL":            u.String(),
		"KAFKA_BROKERS":           s.env["KAFKA_BROKERS"],
		"KAFKA_SECURITY_PROTOCOL": s.env["KAFKA_SECURITY_PROTOCOL"],
		"KAFKA_SASL_MECHANISM":    s.env["KAFKA_SASL_MECHANISM"],
		"KAFKA_TLS_CA_FILE":       s.env["KAFKA_TLS_CA_FILE"],
		"KAFKA_TOPIC_PREFIX":      d.prefix,
		"KAFKA_TOPIC_PARTITIONS":  "3",
		"EVENT_SERIALIZATION":     "avro",
		"EVENT_SIGNING_KEY":       testenv.SigningKey,
		// The secured stack has no Mailpit: the plain stack's receives the notifier's mail.
		"SMTP_ADDR":     testenv.SMTPAddr(t),
		"HTTP_ADDR":     "",
		"ANNALS_CONFIG": "",
	}
	if got := d.base["KAFKA_SECURITY_PROTOCOL"]; got != "SASL_SSL" {
		t.Fatalf("the secured stack's KAFKA_SECURITY_PROTOCOL is %q, want SASL_SSL", got)
	}
	for k, v := range s.env {
		if strings.HasSuffix(k, "_PASSWORD") && v != "" {
			d.secrets = append(d.secrets, v)
		}
	}
	_, signing, _ := strings.Cut(testenv.SigningKey, ":")
	d.secrets = append(d.secrets, signing)

	t.Cleanup(func() { d.deleteTopics(t) })
	return d
}

// as is the deployment's environment with the Kafka identity id.
func (d *secureDeployment) as(id string) map[string]string {
	v := maps.Clone(d.base)
	v["KAFKA_SASL_USERNAME"] = id
	v["KAFKA_SASL_PASSWORD"] = d.s.env["ANNALS_SECURE_"+strings.ToUpper(id)+"_PASSWORD"]
	return v
}

// deleteTopics deletes the prefix's topics as admin.
func (d *secureDeployment) deleteTopics(t *testing.T) {
	sec := kafkasec.Security{Protocol: kafkasec.SASLSSL, Mechanism: kafkasec.ScramSHA512, Username: "admin",
		Password: d.s.env["ANNALS_SECURE_ADMIN_PASSWORD"], CAFile: d.s.env["KAFKA_TLS_CA_FILE"]}
	rt, release, err := sec.RoundTripper()
	if err != nil {
		t.Logf("delete topics: %v", err)
		return
	}
	defer release()
	client := &kafka.Client{Addr: kafka.TCP(strings.Split(d.s.env["KAFKA_BROKERS"], ",")...), Transport: rt, Timeout: 30 * time.Second}
	var names []string
	for _, c := range []string{"user", "order"} {
		names = append(names, d.prefix+"."+c)
	}
	for _, s := range []string{"projector", "notifier", "auditor"} {
		names = append(names, d.prefix+".dlq."+d.prefix+"-"+s)
	}
	if _, err := client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: names}); err != nil {
		t.Logf("delete topics: %v", err)
	}
}

// runAnnals runs the admin CLI with the environment vars and returns its combined output.
func runAnnals(t *testing.T, bin string, vars map[string]string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = os.Environ()
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestSecurePipeline: on the secured stack, `annals topics` as the cli identity creates the
// topics; the writer, projector, notifier and auditor each run with their own identity; a
// command through the writer reaches the projector's read model, the notifier's mail in
// Mailpit and the auditor's log, which `annals audit verify` finds intact; `annals lag` as cli
// reads the groups. Every service says it connected with SASL_SSL as its own user, and no
// password or key appears in a log line or in /metrics. Then each identity is refused what
// its ACLs do not grant, through the services themselves, with the permission named.
func TestSecurePipeline(t *testing.T) {
	d := newSecureDeployment(t)
	bins := buildBinaries(t)
	notifierBin, auditorBin := buildConsumerBinaries(t)

	out, err := runAnnals(t, bins.annals, d.as("cli"), "topics")
	if err != nil || !strings.Contains(out, "created "+d.prefix+".user") {
		t.Fatalf("annals topics as cli: %v\n%s", err, out)
	}

	services := map[string]*service{}
	for _, sv := range []struct{ name, bin string }{
		{"writer", bins.writer}, {"projector", bins.projector}, {"notifier", notifierBin}, {"auditor", auditorBin},
	} {
		services[sv.name] = startService(t, sv.bin, &faultEnv{vars: d.as(sv.name)}, sv.name, freeAddr(t))
	}

	email := fmt.Sprintf("ada-%d@secure.example.com", time.Now().UnixNano())
	t.Cleanup(func() { notifierDeleteMail(t, email) })
	body := fmt.Sprintf(`{"email":%q,"name":"Ada Secure"}`, email)
	resp, err := httpc.Post(services["writer"].url+"/v1/users", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var created struct{ ID string }
	err = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK || created.ID == "" {
		t.Fatalf("POST /v1/users: %d %v", resp.StatusCode, err)
	}

	waitEvery(t, time.Minute, 200*time.Millisecond, "the projector's read model of the user", func() bool {
		status, b, err := get(context.Background(), services["projector"].url+"/v1/users/"+created.ID)
		return err == nil && status == http.StatusOK && strings.Contains(string(b), email)
	})
	waitEvery(t, time.Minute, 200*time.Millisecond, "the notifier's mail to "+email+" in Mailpit", func() bool {
		ids, _ := notifierMailpit(t, email)
		return len(ids) > 0
	})
	waitEvery(t, time.Minute, 500*time.Millisecond, "annals audit verify to verify the auditor's entry", func() bool {
		out, err := runAnnals(t, bins.annals, d.as("cli"), "audit", "verify")
		if err != nil {
			t.Logf("annals audit verify: %v\n%s", err, out)
			return false
		}
		return strings.Contains(out, "the chain is intact") && !strings.Contains(out, "verified 0 entries")
	})
	out, err = runAnnals(t, bins.annals, d.as("cli"), "lag")
	if err != nil || !strings.Contains(out, d.prefix+"-projector") || !strings.Contains(out, d.prefix+".user") {
		t.Errorf("annals lag as cli: %v\n%s", err, out)
	}

	for name, s := range services {
		log := s.logText(t)
		want := `"kafka_security":"SASL_SSL SCRAM-SHA-512 user=` + name + ` `
		if !strings.Contains(log, want) {
			t.Errorf("%s: no log line says it connected with %s", name, want)
		}
		_, metrics, err := get(context.Background(), s.url+"/metrics")
		if err != nil {
			t.Fatalf("%s /metrics: %v", name, err)
		}
		for _, secret := range d.secrets {
			if strings.Contains(log, secret) {
				t.Errorf("%s: a log line shows a secret", name)
			}
			if strings.Contains(string(metrics), secret) {
				t.Errorf("%s: /metrics shows a secret", name)
			}
		}
	}

	// The ACLs, through the services: each identity is refused what is not its own.
	t.Run("ACLs", func(t *testing.T) {
		t.Run("RelayAsProjector", func(t *testing.T) {
			// The relay ensures its topics first: the projector may not see the others'
			// dead-letter topics, so it takes them for missing and may not create them.
			vars := d.as("projector")
			vars["HTTP_ADDR"] = freeAddr(t)
			p := startProcess(t, bins.writer, nil, vars, "writer-as-projector")
			line := refusedLine(t, p)
			want := regexp.MustCompile(`not authorized: the ACLs of the broker do not grant User:projector \(KAFKA_SASL_USERNAME\) (Create|Write|Describe) on topic "` +
				regexp.QuoteMeta(d.prefix) + `\.`)
			if !want.MatchString(line) {
				t.Errorf("the writer's relay as projector: got %q, want it to match %s", line, want)
			}
		})
		t.Run("ProjectorAsNotifier", func(t *testing.T) {
			vars := d.as("notifier")
			vars["HTTP_ADDR"] = freeAddr(t)
			p := startProcess(t, bins.projector, nil, vars, "projector-as-notifier")
			line := refusedLine(t, p)
			if want := `do not grant User:notifier (KAFKA_SASL_USERNAME) Read on group "` + d.prefix + `-projector"`; !strings.Contains(line, want) {
				t.Errorf("the projector as notifier: got %q, want it to say %q", line, want)
			}
		})
	})
}

// refusedLine waits for a process that must stop at start (within 30 s, with a failure) and
// returns the one line its log holds beside INFO lines: the error. It fails the test when the
// process keeps running, exits 0, logs more than that one line (a retry loop, a stack trace),
// or shows a secret of the environment.
func refusedLine(t *testing.T, p *process) string {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s still runs after 30s; want it stopped at start:\n%s", p.name, tail([]byte(p.logText(t)), 3000))
	}
	if p.err == nil {
		t.Fatalf("%s exited 0; want a failure", p.name)
	}
	log := p.logText(t)
	var lines []string
	for line := range strings.Lines(log) {
		line = strings.TrimSpace(line)
		if line == "" || strings.Contains(line, `"level":"INFO"`) {
			continue
		}
		lines = append(lines, line)
	}
	var errLine string
	for _, l := range lines {
		if !strings.HasPrefix(l, "{") {
			errLine = l
		}
	}
	// A refusal may be logged at ERROR as the service stops, beside the line on stderr; it
	// must say the same, and nothing else may be logged.
	for _, l := range lines {
		if strings.HasPrefix(l, "{") && !strings.Contains(l, `"level":"ERROR"`) && !strings.Contains(l, `"level":"WARN"`) {
			t.Errorf("%s logged an unexpected line: %s", p.name, l)
		}
		if strings.Contains(l, "retrying") || strings.Contains(l, "goroutine ") || strings.Contains(l, "panic") {
			t.Errorf("%s: want one line and no retry or stack trace, got: %s", p.name, l)
		}
	}
	if errLine == "" {
		t.Fatalf("%s logged no error line:\n%s", p.name, log)
	}
	return errLine
}

// secureStart is a service started with the secured stack's settings, set changed, that must
// stop at start with one line that says each of says.
type secureStart struct {
	name string
	set  map[string]string
	says []string
}

// checkRefusedStarts starts bin with the environment base and each case's changes, and checks that it stops within seconds with one line that says what the case
// expects and shows no secret.
func checkRefusedStarts(t *testing.T, bin string, base map[string]string, secrets []string, cases []secureStart) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			vars := maps.Clone(base)
			vars["HTTP_ADDR"] = freeAddr(t)
			vars["LOG_FORMAT"] = "json"
			maps.Copy(vars, c.set)
			start := time.Now()
			p := startProcess(t, bin, nil, vars, filepath.Base(bin))
			line := refusedLine(t, p)
			if took := time.Since(start); took > 15*time.Second {
				t.Errorf("it stopped after %s; want within seconds", took)
			}
			for _, s := range c.says {
				if !strings.Contains(line, s) {
					t.Errorf("got %q, want it to say %q", line, s)
				}
			}
			for _, s := range append(secrets, c.set["KAFKA_SASL_PASSWORD"]) {
				if s != "" && strings.Contains(p.logText(t), s) {
					t.Errorf("the log shows a secret")
				}
			}
		})
	}
}

// TestSecureStart_Refused: a service started with settings the secured stack refuses stops
// within seconds with one line naming the setting at fault and what it expected, never the
// secret, with no stack trace and no retry loop; so does an `annals` command. (The expired
// and misnamed certificates are served by listeners of their own: TestSecureStackLifecycle
// checks those on the secured stack it starts.)
func TestSecureStart_Refused(t *testing.T) {
	s := openSecureStack(t)
	bins := buildBinaries(t)
	tls := s.env["ANNALS_SECURE_TLS_DIR"]
	dbURL := func(mode, rootcert string) string { return s.dbURL(t, mode, rootcert) }
	base := map[string]string{
		"DATABASE_URL":            s.env["DATABASE_URL"],
		"KAFKA_BROKERS":           s.env["KAFKA_BROKERS"],
		"KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
		"KAFKA_SASL_MECHANISM":    s.env["KAFKA_SASL_MECHANISM"],
		"KAFKA_SASL_USERNAME":     "projector",
		"KAFKA_SASL_PASSWORD":     s.env["ANNALS_SECURE_PROJECTOR_PASSWORD"],
		"KAFKA_TLS_CA_FILE":       s.env["KAFKA_TLS_CA_FILE"],
		"KAFKA_TOPIC_PREFIX":      "refused-" + strconv.FormatInt(time.Now().UnixNano(), 10),
		"EVENT_SIGNING_KEY":       testenv.SigningKey,
		"ANNALS_CONFIG":           "",
	}
	var secrets []string
	for k, v := range s.env {
		if strings.HasSuffix(k, "_PASSWORD") && v != "" {
			secrets = append(secrets, v)
		}
	}
	t.Run("Projector", func(t *testing.T) {
		checkRefusedStarts(t, bins.projector, base, secrets, []secureStart{
			{"WrongPassword", map[string]string{"KAFKA_SASL_PASSWORD": "not-the-password-7c1e"},
				[]string{`SASL authentication failed for user "projector"`, "KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD"}},
			{"UnknownMechanism", map[string]string{"KAFKA_SASL_MECHANISM": "SCRAM-SHA-1"},
				[]string{"configuration: KAFKA_SASL_MECHANISM", `"SCRAM-SHA-1" is not supported`, "SCRAM-SHA-512"}},
			{"UntrustedCA", map[string]string{"KAFKA_TLS_CA_FILE": filepath.Join(tls, "untrusted-ca.crt")},
				[]string{"is not trusted by KAFKA_TLS_CA_FILE=" + filepath.Join(tls, "untrusted-ca.crt"), "the CA that signs the brokers' certificates"}},
			{"MissingCAFile", map[string]string{"KAFKA_TLS_CA_FILE": filepath.Join(tls, "no-such-ca.crt")},
				[]string{"configuration: KAFKA_TLS_CA_FILE", "cannot read CA certificates from", "no-such-ca.crt"}},
			{"PlaintextClient", map[string]string{"KAFKA_SECURITY_PROTOCOL": "PLAINTEXT", "KAFKA_SASL_MECHANISM": "",
				"KAFKA_SASL_USERNAME": "", "KAFKA_SASL_PASSWORD": "", "KAFKA_TLS_CA_FILE": ""},
				[]string{"its listener expects TLS", "KAFKA_SECURITY_PROTOCOL=PLAINTEXT has none"}},
			{"PostgresWithoutTLS", map[string]string{"DATABASE_URL": dbURL("disable", "")},
				[]string{"postgres: the server requires TLS", "sslmode=disable in DATABASE_URL"}},
			{"PostgresUntrustedCA", map[string]string{"DATABASE_URL": dbURL("verify-full", filepath.Join(tls, "untrusted-ca.crt"))},
				[]string{"postgres: the certificate of the server is not trusted by sslrootcert=" + filepath.Join(tls, "untrusted-ca.crt")}},
		})
	})
	t.Run("AnnalsTopics", func(t *testing.T) {
		vars := maps.Clone(base)
		vars["KAFKA_SASL_USERNAME"], vars["KAFKA_SASL_PASSWORD"] = "cli", "not-the-password-7c1e"
		start := time.Now()
		out, err := runAnnals(t, bins.annals, vars, "topics")
		if err == nil || time.Since(start) > 15*time.Second {
			t.Fatalf("annals topics with a wrong password: %v after %s, want a failure within seconds:\n%s", err, time.Since(start), out)
		}
		if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1 ||
			!strings.HasPrefix(lines[0], `annals topics: kafka: SASL authentication failed for user "cli"`) {
			t.Errorf("annals topics with a wrong password: want one line naming the user and the settings, got:\n%s", out)
		}
		if strings.Contains(out, "not-the-password-7c1e") {
			t.Error("annals topics shows the password")
		}
	})
}

// TestMakeRun_Secure: `ANNALS_SECURE=1 make run` runs the four services on the secured stack,
// each as its own Kafka identity over SASL_SSL, says so and how to use the CLI, and stops them
// on Ctrl-C. It uses a topic prefix of its own (whose ACLs `up` grants, and the test takes
// back with its topics), free ports, and no Prometheus.
func TestMakeRun_Secure(t *testing.T) {
	s := openSecureStack(t)
	root := repoRoot(t)
	prefix := "run-" + testenv.UniqueName(t)
	t.Cleanup(func() {
		(&secureDeployment{s: s, prefix: prefix}).deleteTopics(t)
		if out, err := s.script("acls", "--remove", prefix); err != nil {
			t.Errorf("scripts/stack.sh acls --remove %s: %v\n%s", prefix, err, out)
		}
	})
	ports := freePorts(t, 4)
	names := []string{"writer", "projector", "notifier", "auditor"}
	logs := t.TempDir()
	env := append(os.Environ(), "ANNALS_SECURE=1", "KAFKA_TOPIC_PREFIX="+prefix, "ANNALS_RUN_LOG_DIR="+logs,
		"ANNALS_PROMETHEUS_BIN=annals-no-prometheus")
	env = append(env, s.extra...)
	for i, n := range names {
		env = append(env, fmt.Sprintf("ANNALS_%s_PORT=%d", strings.ToUpper(n), ports[i]))
	}
	cmd := exec.Command("make", "--no-print-directory", "run")
	cmd.Dir = root
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var output syncBuffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitc := make(chan error, 1)
	go func() { waitc <- cmd.Wait() }()
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	deadline := time.Now().Add(5 * time.Minute)
	for !strings.Contains(output.String(), "all four services are ready") {
		select {
		case err := <-waitc:
			t.Fatalf("ANNALS_SECURE=1 make run ended before its services were ready (%v):\n%s", err, output.String())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("ANNALS_SECURE=1 make run did not report ready within 5 minutes:\n%s", output.String())
		}
	}
	out := output.String()
	for _, want := range []string{"secured stack", "SASL_SSL", "KAFKA_SASL_USERNAME=cli", "created " + prefix + ".user"} {
		if !strings.Contains(out, want) {
			t.Errorf("make run's output does not say %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{s.env["EVENT_STORE_PASSWORD"], s.env["ANNALS_SECURE_CLI_PASSWORD"]} {
		if strings.Contains(out, secret) {
			t.Errorf("make run's output shows a password")
		}
	}
	for i, n := range names {
		status, body, err := get(context.Background(), fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[i]))
		if err != nil || status != http.StatusOK {
			t.Errorf("%s /readyz: %d %v %s", n, status, err, body)
		}
		b, err := os.ReadFile(filepath.Join(logs, n+".log"))
		if err != nil {
			t.Fatal(err)
		}
		if want := `"kafka_security":"SASL_SSL SCRAM-SHA-512 user=` + n + ` `; !strings.Contains(string(b), want) {
			t.Errorf("%s's log does not say it connected as %s", n, want)
		}
	}

	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-waitc:
	case <-time.After(time.Minute):
		t.Fatalf("ANNALS_SECURE=1 make run did not stop within a minute of Ctrl-C")
	}
	t.Logf("ANNALS_SECURE=1 make run output:\n%s", output.String())
	if !strings.Contains(output.String(), "services stopped") {
		t.Errorf("make run did not report that it stopped the services")
	}
}

// syncBuffer is a bytes.Buffer that a process writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
