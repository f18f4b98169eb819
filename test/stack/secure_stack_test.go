//go:build stack

package stack_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/testenv"
)

// The secured stack (ANNALS_SECURE=1 scripts/stack.sh up; make test starts it beside the
// plain one), checked from outside with the clients' own tools: Kafka's console producer and
// consumer and psql, as anyone with a copy of its CA would connect.

// secureStack is the running secured stack, as `ANNALS_SECURE=1 scripts/stack.sh env` and
// its extra settings describe it.
type secureStack struct {
	root  string
	extra []string          // environment of scripts/stack.sh beside ANNALS_SECURE=1
	env   map[string]string // what `env` exports
}

// openSecureStack reads the settings of the secured stack that runs from this repository
// (or from ANNALS_STACK_DIR), and fails when it is not running.
func openSecureStack(t *testing.T, extra ...string) *secureStack {
	t.Helper()
	s := &secureStack{root: repoRoot(t), extra: extra}
	if out, err := s.script("status"); err != nil {
		t.Fatalf("the secured stack is not running (make test starts it: ANNALS_SECURE=1 scripts/stack.sh up):\n%s", out)
	}
	out, err := s.script("env")
	if err != nil {
		t.Fatalf("ANNALS_SECURE=1 scripts/stack.sh env: %v\n%s", err, out)
	}
	s.env = parseExports(out)
	for _, k := range []string{"DATABASE_URL", "KAFKA_BROKERS", "KAFKA_TLS_CA_FILE", "KAFKA_LIBS",
		"ANNALS_SECURE_KAFKA_CLIENTS", "ANNALS_SECURE_KAFKA_CONTROLLER", "ANNALS_SECURE_TLS_DIR", "EVENT_STORE_PASSWORD"} {
		if s.env[k] == "" {
			t.Fatalf("ANNALS_SECURE=1 scripts/stack.sh env does not set %s:\n%s", k, out)
		}
	}
	return s
}

// parseExports reads the `export NAME='value'` lines of scripts/stack.sh env.
func parseExports(out string) map[string]string {
	env := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "="); ok {
			env[k] = strings.Trim(v, "'")
		}
	}
	return env
}

// script runs ANNALS_SECURE=1 scripts/stack.sh with args and returns its combined output.
func (s *secureStack) script(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(s.root, "scripts", "stack.sh"), args...)
	cmd.Dir = s.root
	cmd.Env = append(append(os.Environ(), "ANNALS_SECURE=1"), s.extra...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// client is the client settings file of one of the stack's Kafka identities.
func (s *secureStack) client(identity string) string {
	return filepath.Join(s.env["ANNALS_SECURE_KAFKA_CLIENTS"], identity+".properties")
}

// kafka runs one of Kafka's tools (a class under org.apache.kafka.tools) with stdin as its
// input and returns what it wrote. The console tools report a refused connection or request
// in their output and still exit 0, so the callers read the output.
func (s *secureStack) kafka(t *testing.T, stdin, class string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "java", append([]string{"-Xms32m", "-Xmx192m", "-XX:+UseSerialGC",
		"-XX:TieredStopAtLevel=1", "-cp", s.env["KAFKA_LIBS"] + "/*", "org.apache.kafka.tools." + class}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (s *secureStack) mustKafka(t *testing.T, stdin, class string, args ...string) string {
	t.Helper()
	out, err := s.kafka(t, stdin, class, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", class, strings.Join(args, " "), err, out)
	}
	return out
}

// withPassword writes a copy of an identity's client settings with another password.
func (s *secureStack) withPassword(t *testing.T, identity, password string) string {
	t.Helper()
	b, err := os.ReadFile(s.client(identity))
	if err != nil {
		t.Fatal(err)
	}
	old := `password="` + s.env["ANNALS_SECURE_"+strings.ToUpper(identity)+"_PASSWORD"] + `"`
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%s does not hold the password that env exports for %s", s.client(identity), identity)
	}
	f := filepath.Join(t.TempDir(), identity+"-wrong.properties")
	if err := os.WriteFile(f, bytes.Replace(b, []byte(old), []byte(`password="`+password+`"`), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// settings writes a client settings file with the given lines.
func settings(t *testing.T, lines ...string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "client.properties")
	if err := os.WriteFile(f, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// psql is the psql of the newest local PostgreSQL, else the one on PATH.
func psql(t *testing.T) string {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/psql")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(dirs[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(dirs[j]))))
		return vi > vj
	})
	if len(dirs) > 0 {
		return dirs[0]
	}
	p, err := exec.LookPath("psql")
	if err != nil {
		t.Fatal("psql not found (the PostgreSQL binaries of scripts/stack.sh install)")
	}
	return p
}

// dbURL is DATABASE_URL with its sslmode and sslrootcert replaced (sslrootcert dropped when
// empty).
func (s *secureStack) dbURL(t *testing.T, sslmode, rootcert string) string {
	t.Helper()
	u, err := url.Parse(s.env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("sslmode", sslmode)
	q.Del("sslrootcert")
	if rootcert != "" {
		q.Set("sslrootcert", rootcert)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func runPsql(t *testing.T, conn, query string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, psql(t), conn, "-XAtqc", query)
	// Nothing of the caller's environment may choose the connection's security.
	cmd.Env = append(os.Environ(), "PGSSLMODE=", "PGSSLROOTCERT=", "PGPASSWORD=")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestSecureStack: the secured stack lets in the clients it should and no other. Kafka: a
// writer's record is read by the projector in its own group; a wrong password, a plaintext
// client and a TLS client without SASL are refused; the projector may not write to an event
// topic, the notifier join the projector's group nor the writer create a topic; the writer
// reads the groups' offsets (as its lag exporter does); the controller refuses a client
// without the broker's certificate; and nothing but the writer's record reached the topic. PostgreSQL:
// a connection without TLS is refused, sslmode=verify-full with the stack's CA works, and
// with another CA it fails. The certificates it made for tests are what they claim to be.
//
// The test grants the services' ACLs on a topic prefix of its own (scripts/stack.sh acls) and
// takes them back when it ends, as any test with unique topic names does.
func TestSecureStack(t *testing.T) {
	s := openSecureStack(t)
	brokers := s.env["KAFKA_BROKERS"]
	prefix := "sec-" + testenv.UniqueName(t)
	if out, err := s.script("acls", prefix); err != nil {
		t.Fatalf("scripts/stack.sh acls %s: %v\n%s", prefix, err, out)
	}
	t.Cleanup(func() {
		if out, err := s.script("acls", "--remove", prefix); err != nil {
			t.Errorf("scripts/stack.sh acls --remove %s: %v\n%s", prefix, err, out)
		}
	})
	topic := prefix + ".order"
	s.mustKafka(t, "", "TopicCommand", "--bootstrap-server", brokers, "--command-config", s.client("admin"),
		"--create", "--topic", topic, "--partitions", "1")
	t.Cleanup(func() {
		if out, err := s.kafka(t, "", "TopicCommand", "--bootstrap-server", brokers, "--command-config", s.client("admin"),
			"--delete", "--topic", topic); err != nil {
			t.Logf("delete %s: %v\n%s", topic, err, out)
		}
	})
	record := "order-placed-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	produce := func(config, value string, more ...string) (string, error) {
		return s.kafka(t, "k1\t"+value+"\n", "ConsoleProducer", append([]string{"--bootstrap-server", brokers,
			"--producer.config", config, "--topic", topic, "--property", "parse.key=true",
			"--producer-property", "acks=all", "--producer-property", "max.block.ms=5000"}, more...)...)
	}
	if out, err := produce(s.client("writer"), record); err != nil || strings.Contains(out, "Exception") {
		t.Fatalf("the writer could not produce to %s: %v\n%s", topic, err, out)
	}

	t.Run("Kafka", func(t *testing.T) {
		t.Run("ProjectorReadsInItsGroup", func(t *testing.T) {
			t.Parallel()
			out := s.mustKafka(t, "", "consumer.ConsoleConsumer", "--bootstrap-server", brokers,
				"--consumer.config", s.client("projector"), "--topic", topic, "--group", prefix+"-projector",
				"--from-beginning", "--max-messages", "1", "--timeout-ms", "60000")
			if !strings.Contains(out, record) {
				t.Errorf("the projector did not read %q in group %s-projector:\n%s", record, prefix, out)
			}
		})
		t.Run("WrongPasswordIsRefused", func(t *testing.T) {
			t.Parallel()
			out, _ := s.kafka(t, "", "consumer.ConsoleConsumer", "--bootstrap-server", brokers,
				"--consumer.config", s.withPassword(t, "projector", "not-the-password"), "--topic", topic,
				"--group", prefix+"-projector", "--from-beginning", "--max-messages", "1", "--timeout-ms", "20000")
			if !strings.Contains(out, "SaslAuthenticationException") || strings.Contains(out, record) {
				t.Errorf("a wrong password: want SaslAuthenticationException and no record, got:\n%s", out)
			}
		})
		t.Run("PlaintextClientIsRefused", func(t *testing.T) {
			t.Parallel()
			out, _ := produce(settings(t, "security.protocol=PLAINTEXT"), "plaintext-"+record)
			if !strings.Contains(out, "not present in metadata") {
				t.Errorf("a plaintext producer: want it to get no metadata, got:\n%s", out)
			}
		})
		t.Run("TLSWithoutSASLIsRefused", func(t *testing.T) {
			t.Parallel()
			out, _ := produce(settings(t, "security.protocol=SSL", "ssl.truststore.type=PEM",
				"ssl.truststore.location="+s.env["KAFKA_TLS_CA_FILE"]), "ssl-"+record)
			if !strings.Contains(out, "not present in metadata") {
				t.Errorf("a TLS producer without SASL: want it to get no metadata, got:\n%s", out)
			}
		})
		t.Run("ProjectorCannotProduce", func(t *testing.T) {
			t.Parallel()
			out, _ := produce(s.client("projector"), "projector-"+record)
			if !strings.Contains(out, "TopicAuthorizationException") {
				t.Errorf("the projector producing to %s: want TopicAuthorizationException, got:\n%s", topic, out)
			}
		})
		t.Run("NotifierCannotJoinTheProjectorsGroup", func(t *testing.T) {
			t.Parallel()
			out, _ := s.kafka(t, "", "consumer.ConsoleConsumer", "--bootstrap-server", brokers,
				"--consumer.config", s.client("notifier"), "--topic", topic, "--group", prefix+"-projector",
				"--from-beginning", "--max-messages", "1", "--timeout-ms", "20000")
			if !strings.Contains(out, "GroupAuthorizationException") || strings.Contains(out, record) {
				t.Errorf("the notifier in the projector's group: want GroupAuthorizationException and no record, got:\n%s", out)
			}
		})
		t.Run("WriterCannotCreateTopics", func(t *testing.T) {
			t.Parallel()
			out, _ := s.kafka(t, "", "TopicCommand", "--bootstrap-server", brokers, "--command-config", s.client("writer"),
				"--create", "--topic", prefix+".user", "--partitions", "1")
			if !strings.Contains(out, "TopicAuthorizationException") {
				t.Errorf("the writer creating %s.user: want TopicAuthorizationException, got:\n%s", prefix, out)
			}
		})
		t.Run("ControllerRefusesClientsWithoutTheBrokersCertificate", func(t *testing.T) {
			t.Parallel()
			out, err := s.kafka(t, "", "ClusterTool", "cluster-id", "--bootstrap-controller", s.env["ANNALS_SECURE_KAFKA_CONTROLLER"],
				"--config", settings(t, "security.protocol=SSL", "ssl.truststore.type=PEM",
					"ssl.truststore.location="+s.env["KAFKA_TLS_CA_FILE"]))
			if err == nil || !strings.Contains(out, "bad_certificate") {
				t.Errorf("a TLS client without a certificate at the controller: want a failure with bad_certificate, got %v:\n%s", err, out)
			}
		})
	})
	t.Run("Kafka/WriterReadsTheGroupsOffsets", func(t *testing.T) {
		// What the writer's lag exporter asks for: the groups, their members and offsets, and
		// the topics' end offsets.
		out := s.mustKafka(t, "", "consumer.group.ConsumerGroupCommand", "--bootstrap-server", brokers,
			"--command-config", s.client("writer"), "--describe", "--all-groups")
		var found bool
		for _, row := range testenv.ConsumerGroupTables(out) {
			if row["GROUP"] == prefix+"-projector" && row["TOPIC"] == topic {
				found = true
				if row["CURRENT-OFFSET"] != "1" || row["LAG"] != "0" {
					t.Errorf("the projector's group as the writer sees it: offset %s, lag %s; want 1 and 0", row["CURRENT-OFFSET"], row["LAG"])
				}
			}
		}
		if !found {
			t.Errorf("the writer does not see the group %s-projector on %s:\n%s", prefix, topic, out)
		}
	})
	t.Run("Kafka/OnlyTheWritersRecordLanded", func(t *testing.T) {
		out := s.mustKafka(t, "", "GetOffsetShell", "--bootstrap-server", brokers, "--command-config", s.client("admin"), "--topic", topic)
		if got, want := strings.TrimSpace(out), topic+":0:1"; got != want {
			t.Errorf("end offsets of %s: got %q, want %q (the writer's record only)", topic, got, want)
		}
	})

	t.Run("Postgres", func(t *testing.T) {
		tls := s.env["ANNALS_SECURE_TLS_DIR"]
		t.Run("WithoutTLSIsRefused", func(t *testing.T) {
			out, err := runPsql(t, s.dbURL(t, "disable", ""), "select 1")
			if err == nil || !strings.Contains(out, "no encryption") {
				t.Errorf("sslmode=disable: want the server to refuse a connection without encryption, got %v: %s", err, out)
			}
		})
		t.Run("VerifyFullWithTheStacksCA", func(t *testing.T) {
			out, err := runPsql(t, s.env["DATABASE_URL"], "select ssl from pg_stat_ssl where pid = pg_backend_pid()")
			if err != nil || out != "t" {
				t.Errorf("DATABASE_URL (sslmode=verify-full): got %v: %q, want a TLS connection (t)", err, out)
			}
		})
		t.Run("AnotherCAIsRefused", func(t *testing.T) {
			out, err := runPsql(t, s.dbURL(t, "verify-full", filepath.Join(tls, "untrusted-ca.crt")), "select 1")
			if err == nil || !strings.Contains(out, "certificate verify failed") {
				t.Errorf("sslmode=verify-full with another CA: want certificate verify failed, got %v: %s", err, out)
			}
		})
	})

	t.Run("Certificates", func(t *testing.T) {
		checkSecureCertificates(t, s.env["ANNALS_SECURE_TLS_DIR"])
	})
}

// checkSecureCertificates checks the files of the stack's tls folder: keys readable by their
// owner only, the server certificate valid for localhost and 127.0.0.1 under the stack's CA,
// and each bad certificate bad in the one way its name says.
func checkSecureCertificates(t *testing.T, dir string) {
	t.Helper()
	for _, k := range []string{"ca", "server", "client", "expired", "wrong-host", "untrusted-ca", "untrusted"} {
		fi, err := os.Stat(filepath.Join(dir, k+".key"))
		if err != nil {
			t.Error(err)
			continue
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s.key: mode %v, want 0600", k, fi.Mode().Perm())
		}
	}
	cert := func(name string) *x509.Certificate {
		b, err := os.ReadFile(filepath.Join(dir, name+".crt"))
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			t.Fatalf("%s.crt: no PEM block", name)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatalf("%s.crt: %v", name, err)
		}
		return c
	}
	roots := func(name string) *x509.CertPool {
		p := x509.NewCertPool()
		p.AddCert(cert(name))
		return p
	}
	verify := func(name, ca, host string) error {
		_, err := cert(name).Verify(x509.VerifyOptions{Roots: roots(ca), DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		return err
	}
	for _, host := range []string{"localhost", "127.0.0.1"} {
		if err := verify("server", "ca", host); err != nil {
			t.Errorf("server.crt for %s under ca.crt: %v", host, err)
		}
		if err := verify("untrusted", "untrusted-ca", host); err != nil {
			t.Errorf("untrusted.crt for %s under its own CA: %v", host, err)
		}
	}
	var invalid x509.CertificateInvalidError
	if err := verify("expired", "ca", "127.0.0.1"); !errors.As(err, &invalid) || invalid.Reason != x509.Expired {
		t.Errorf("expired.crt: got %v, want an expired certificate", err)
	}
	var hostErr x509.HostnameError
	if err := verify("wrong-host", "ca", "127.0.0.1"); !errors.As(err, &hostErr) {
		t.Errorf("wrong-host.crt for 127.0.0.1: got %v, want a host name error", err)
	}
	var unknown x509.UnknownAuthorityError
	if err := verify("untrusted", "ca", "127.0.0.1"); !errors.As(err, &unknown) {
		t.Errorf("untrusted.crt under ca.crt: got %v, want an unknown authority", err)
	}
}

// TestSecureStackLifecycle: `ANNALS_SECURE=1 make up` starts a secured stack in a folder and on
// ports of its own, makes its certificates and passwords once, grants the ACLs of the default
// topic prefix once, is idempotent, and `make down` stops exactly what it started.
func TestSecureStackLifecycle(t *testing.T) {
	dir, err := os.MkdirTemp("", "annals-secure-stack-test-")
	if err != nil {
		t.Fatal(err)
	}
	// PostgreSQL runs as another user when the tests run as root: the folder must be
	// searchable by it, which t.TempDir (mode 0700) is not.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := freePorts(t, 5)
	private := []string{"ANNALS_STACK_DIR=" + dir, "ANNALS_SECURE_PG_PORT=" + strconv.Itoa(p[0]),
		"ANNALS_SECURE_KAFKA_PORT=" + strconv.Itoa(p[1]), "ANNALS_SECURE_KAFKA_CONTROLLER_PORT=" + strconv.Itoa(p[2]),
		"ANNALS_SECURE_KAFKA_EXPIRED_PORT=" + strconv.Itoa(p[3]), "ANNALS_SECURE_KAFKA_WRONGHOST_PORT=" + strconv.Itoa(p[4])}
	root := repoRoot(t)
	runMake := func(target string) (string, error) {
		cmd := exec.Command("make", "--no-print-directory", target)
		cmd.Dir = root
		cmd.Env = append(append(os.Environ(), "ANNALS_SECURE=1"), private...)
		out, err := cmd.CombinedOutput()
		t.Logf("ANNALS_SECURE=1 make %s:\n%s", target, out)
		return string(out), err
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, f := range []string{"kafka/server.log", "kafka/stdout.log", "kafka/acls.log", "postgres/postgres.log"} {
				if b, err := os.ReadFile(filepath.Join(dir, "secure", f)); err == nil {
					t.Logf("--- %s (tail)\n%s", f, tail(b, 3000))
				}
			}
		}
		runMake("down")
	})

	out, err := runMake("up")
	if err != nil {
		t.Fatalf("ANNALS_SECURE=1 make up: %v", err)
	}
	if !strings.Contains(out, "ACLs granted for the topic prefix(es) annals") {
		t.Errorf("make up did not grant the ACLs of the default topic prefix:\n%s", out)
	}
	for _, port := range p {
		if portFree(port) {
			t.Errorf("nothing listens on port %d after make up", port)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "mailpit")); err == nil {
		t.Errorf("the secured stack made a Mailpit folder: it has no Mailpit of its own")
	}
	ca, err := os.ReadFile(filepath.Join(dir, "secure", "tls", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	s := openSecureStack(t, private...)
	if got, want := s.env["KAFKA_BROKERS"], "127.0.0.1:"+strconv.Itoa(p[1]); got != want {
		t.Errorf("env: KAFKA_BROKERS=%s, want %s", got, want)
	}
	if out, err := runPsql(t, s.env["DATABASE_URL"], "select ssl from pg_stat_ssl where pid = pg_backend_pid()"); err != nil || out != "t" {
		t.Errorf("DATABASE_URL of the private secured stack: got %v: %q, want a TLS connection (t)", err, out)
	}
	t.Run("BadCertificates", func(t *testing.T) {
		// A real broker presents the expired and the misnamed certificate, each on a listener
		// of its own: the service stops at start with one line saying which.
		if got, want := s.env["ANNALS_SECURE_KAFKA_EXPIRED"], "127.0.0.1:"+strconv.Itoa(p[3]); got != want {
			t.Errorf("env: ANNALS_SECURE_KAFKA_EXPIRED=%s, want %s", got, want)
		}
		base := map[string]string{
			"DATABASE_URL":            s.env["DATABASE_URL"],
			"KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
			"KAFKA_SASL_MECHANISM":    s.env["KAFKA_SASL_MECHANISM"],
			"KAFKA_SASL_USERNAME":     "projector",
			"KAFKA_SASL_PASSWORD":     s.env["ANNALS_SECURE_PROJECTOR_PASSWORD"],
			"KAFKA_TLS_CA_FILE":       s.env["KAFKA_TLS_CA_FILE"],
			"EVENT_SIGNING_KEY":       testenv.SigningKey,
			"ANNALS_CONFIG":           "",
		}
		checkRefusedStarts(t, buildBinaries(t).projector, base, []string{s.env["ANNALS_SECURE_PROJECTOR_PASSWORD"], s.env["EVENT_STORE_PASSWORD"]}, []secureStart{
			{"Expired", map[string]string{"KAFKA_BROKERS": s.env["ANNALS_SECURE_KAFKA_EXPIRED"]},
				[]string{"kafka: the certificate of broker " + s.env["ANNALS_SECURE_KAFKA_EXPIRED"] + " has expired or is not valid yet", "the brokers in KAFKA_BROKERS must present a valid certificate"}},
			{"WrongHost", map[string]string{"KAFKA_BROKERS": s.env["ANNALS_SECURE_KAFKA_WRONGHOST"]},
				[]string{"kafka: the certificate of broker " + s.env["ANNALS_SECURE_KAFKA_WRONGHOST"] + " does not name the host the client dialled", "the host in KAFKA_BROKERS"}},
		})
	})
	pids := map[string]int{}
	for name, f := range map[string]string{"postgres": "secure/postgres/data/postmaster.pid", "kafka": "secure/kafka.pid"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		first, _, _ := strings.Cut(string(b), "\n")
		if pids[name], err = strconv.Atoi(strings.TrimSpace(first)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}

	out, err = runMake("up")
	if err != nil {
		t.Fatalf("the second ANNALS_SECURE=1 make up: %v", err)
	}
	if !strings.Contains(out, "postgres already running") || !strings.Contains(out, "kafka already running") ||
		strings.Contains(out, "ACLs granted") {
		t.Errorf("the second make up started or granted something again:\n%s", out)
	}
	if again, err := os.ReadFile(filepath.Join(dir, "secure", "tls", "ca.crt")); err != nil || !bytes.Equal(again, ca) {
		t.Errorf("the second make up made the CA again (err %v)", err)
	}
	if _, err := runMake("stack-status"); err != nil {
		t.Errorf("ANNALS_SECURE=1 make stack-status while it runs: %v", err)
	}

	if _, err := runMake("down"); err != nil {
		t.Fatalf("ANNALS_SECURE=1 make down: %v", err)
	}
	for name, pid := range pids {
		if alive(pid) {
			t.Errorf("%s (pid %d) still runs after make down", name, pid)
		}
	}
	for _, port := range p {
		if !portFree(port) {
			t.Errorf("port %d is still taken after make down", port)
		}
	}
	if _, err := runMake("stack-status"); err == nil {
		t.Errorf("ANNALS_SECURE=1 make stack-status after make down: want a failure")
	}
}
