package composecheck

import (
	"encoding/base64"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v4"

	"github.com/annals-dev/annals/internal/config"
)

// nonConfigEnv lists environment variables that Annals containers may set
// although they are not configuration keys, each with the reason. It is
// empty: every variable in docker-compose.yml must mean something to the
// configuration loader, so a misspelt name cannot be silently ignored.
var nonConfigEnv = map[string]string{}

func TestCompose(t *testing.T) {
	root := repoRoot(t)
	p := loadCompose(t)

	t.Run("no version key", func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
		if err != nil {
			t.Fatal(err)
		}
		var top map[string]any
		if err := yaml.Unmarshal(data, &top); err != nil {
			t.Fatal(err)
		}
		if _, ok := top["version"]; ok {
			t.Error("docker-compose.yml has a top-level version key; the Compose Specification has none")
		}
	})

	t.Run("services", func(t *testing.T) {
		want := append(annalsContainers(), "postgres", "kafka", "mailpit", "prometheus", "grafana")
		for _, name := range want {
			if _, err := p.GetService(name); err != nil {
				t.Errorf("missing service %s", name)
			}
		}
		var extra []string
		for name := range p.Services {
			if !slices.Contains(want, name) {
				extra = append(extra, name)
			}
		}
		if len(extra) > 0 {
			slices.Sort(extra)
			t.Errorf("services this test does not know (add them to its lists): %v", extra)
		}
	})

	t.Run("environment names are configuration keys", func(t *testing.T) {
		for _, name := range annalsContainers() {
			for key := range environment(t, service(t, p, name)) {
				if _, ok := config.LookupEnv(key); ok {
					continue
				}
				if _, ok := nonConfigEnv[key]; ok {
					continue
				}
				t.Errorf("service %s sets %s, which is not a configuration key", name, key)
			}
		}
	})

	t.Run("configuration loader accepts the environment", func(t *testing.T) {
		// The image sets ANNALS_CONFIG to config/event_sourcing.tsk, so the
		// containers read that file under their environment; the file-less
		// defaults must accept the environment as well.
		tsk := filepath.Join(root, "config", "event_sourcing.tsk")
		paths := []string{""}
		if _, err := os.Stat(tsk); err == nil {
			paths = append(paths, tsk)
		} else {
			t.Errorf("config/event_sourcing.tsk (copied into the image): %v", err)
		}
		for _, name := range annalsContainers() {
			env := environment(t, service(t, p, name))
			for _, path := range paths {
				cfg, err := config.Load(path, lookupIn(env))
				if err != nil {
					t.Errorf("service %s: config.Load(%q) with its environment: %v", name, path, err)
					continue
				}
				if v, ok := env["HTTP_ADDR"]; ok && cfg.HTTP.Addr != v {
					t.Errorf("service %s: HTTP_ADDR=%s loads as HTTP.Addr %q", name, v, cfg.HTTP.Addr)
				}
				if v, ok := env["KAFKA_BROKERS"]; ok && !slices.Equal(cfg.Kafka.Brokers, splitList(v)) {
					t.Errorf("service %s: KAFKA_BROKERS=%s loads as Kafka.Brokers %q", name, v, cfg.Kafka.Brokers)
				}
				if v, ok := env["SMTP_ADDR"]; ok && cfg.SMTP.Addr != v {
					t.Errorf("service %s: SMTP_ADDR=%s loads as SMTP.Addr %q", name, v, cfg.SMTP.Addr)
				}
			}
		}
	})

	t.Run("same image everywhere, built from the Dockerfile", func(t *testing.T) {
		var image string
		for _, name := range annalsContainers() {
			s := service(t, p, name)
			if s.Build == nil {
				t.Errorf("service %s has no build section", name)
				continue
			}
			if s.Build.Context != root {
				t.Errorf("service %s: build context %q, want the repository root %q", name, s.Build.Context, root)
			}
			dockerfile := s.Build.Dockerfile
			if !filepath.IsAbs(dockerfile) {
				dockerfile = filepath.Join(s.Build.Context, dockerfile)
			}
			if dockerfile != filepath.Join(root, "Dockerfile") {
				t.Errorf("service %s: built from %q, want ./Dockerfile", name, s.Build.Dockerfile)
			}
			if s.Build.Target != "" {
				t.Errorf("service %s: build target %q; the image is the Dockerfile's last stage", name, s.Build.Target)
			}
			if image == "" {
				image = s.Image
			}
			if s.Image == "" || s.Image != image {
				t.Errorf("service %s: image %q, want one shared image name (%q)", name, s.Image, image)
			}
		}
	})

	t.Run("entrypoints", func(t *testing.T) {
		for _, a := range appServices {
			s := service(t, p, a.Name)
			want := types.ShellCommand{imageBinDir + "/" + a.Binary()}
			if !slices.Equal(s.Entrypoint, want) {
				t.Errorf("service %s: entrypoint %q, want %q", a.Name, s.Entrypoint, want)
			}
		}
		for _, name := range oneShotServices {
			s := service(t, p, name)
			want := types.ShellCommand{imageBinDir + "/" + cliBinary}
			if !slices.Equal(s.Entrypoint, want) {
				t.Errorf("service %s: entrypoint %q, want %q", name, s.Entrypoint, want)
			}
			if len(s.Command) == 0 {
				t.Errorf("service %s runs the CLI without a command", name)
			}
		}
		cmds := map[string]bool{}
		for _, name := range oneShotServices {
			if c := service(t, p, name).Command; len(c) > 0 {
				cmds[c[0]] = true
			}
		}
		for _, c := range []string{"migrate", "topics"} {
			if !cmds[c] {
				t.Errorf("no one-shot service runs `annals %s`", c)
			}
		}
	})

	t.Run("HTTP ports", func(t *testing.T) {
		for _, a := range appServices {
			s := service(t, p, a.Name)
			env := environment(t, s)
			addr, ok := env["HTTP_ADDR"]
			if !ok {
				t.Errorf("service %s: HTTP_ADDR not set", a.Name)
				continue
			}
			_, port := splitHostPort(t, a.Name+" HTTP_ADDR", addr)
			if port != a.Port {
				t.Errorf("service %s: HTTP_ADDR port %d, want its default port %d", a.Name, port, a.Port)
			}
			if !publishes(s, port) {
				t.Errorf("service %s: port %d is not published as %d:%d (ports: %+v)", a.Name, port, port, port, s.Ports)
			}
			if len(s.Ports) != 1 {
				t.Errorf("service %s publishes %d ports, want only its HTTP port", a.Name, len(s.Ports))
			}

			hc := s.HealthCheck
			if hc == nil || hc.Disable {
				t.Errorf("service %s has no health check", a.Name)
				continue
			}
			probeURL := fmt.Sprintf("http://127.0.0.1:%d/readyz", port)
			want := types.HealthCheckTest{"CMD", imageBinDir + "/" + cliBinary, "probe", probeURL}
			if !slices.Equal(hc.Test, want) {
				t.Errorf("service %s: health check %q, want %q", a.Name, hc.Test, want)
			}
			if len(hc.Test) == 4 {
				if u, err := url.Parse(hc.Test[3]); err != nil || u.Port() != strconv.Itoa(a.Port) {
					t.Errorf("service %s: health check URL %q is not on port %d", a.Name, hc.Test[3], a.Port)
				}
			}
		}
	})

	t.Run("published host ports are unique", func(t *testing.T) {
		seen := map[string]string{}
		for name, s := range p.Services {
			for _, port := range s.Ports {
				if port.Published == "" {
					continue
				}
				key := port.HostIP + ":" + port.Published + "/" + port.Protocol
				if other, ok := seen[key]; ok {
					t.Errorf("host port %s published by both %s and %s", key, other, name)
				}
				seen[key] = name
			}
		}
	})

	t.Run("dependencies", func(t *testing.T) {
		want := map[string]string{
			"postgres": types.ServiceConditionHealthy,
			"kafka":    types.ServiceConditionHealthy,
			"init":     types.ServiceConditionCompletedSuccessfully,
		}
		for _, a := range appServices {
			s := service(t, p, a.Name)
			w := maps.Clone(want)
			if a.Name == "notifier" {
				w["mailpit"] = types.ServiceConditionHealthy
			}
			for dep, cond := range w {
				d, ok := s.DependsOn[dep]
				if !ok {
					t.Errorf("service %s does not depend on %s", a.Name, dep)
					continue
				}
				if d.Condition != cond {
					t.Errorf("service %s depends on %s with condition %q, want %q", a.Name, dep, d.Condition, cond)
				}
			}
		}
		// The one-shot services together need Postgres and Kafka up, and
		// init (which the services wait for) completes only after topics.
		initDeps := service(t, p, "init").DependsOn
		for dep, cond := range map[string]string{
			"postgres": types.ServiceConditionHealthy,
			"kafka":    types.ServiceConditionHealthy,
			"topics":   types.ServiceConditionCompletedSuccessfully,
		} {
			if d, ok := initDeps[dep]; !ok || d.Condition != cond {
				t.Errorf("service init: dependency on %s is %+v, want condition %q", dep, d, cond)
			}
		}
		if d, ok := service(t, p, "topics").DependsOn["kafka"]; !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("service topics: dependency on kafka is %+v, want condition %q", d, types.ServiceConditionHealthy)
		}

		// Every condition must be reachable: service_healthy needs a health
		// check, service_completed_successfully a container that exits.
		for name, s := range p.Services {
			for dep, d := range s.DependsOn {
				target, err := p.GetService(dep)
				if err != nil {
					t.Errorf("service %s depends on unknown service %s", name, dep)
					continue
				}
				switch d.Condition {
				case types.ServiceConditionHealthy:
					if target.HealthCheck == nil || target.HealthCheck.Disable || len(target.HealthCheck.Test) == 0 {
						t.Errorf("service %s waits for %s to be healthy, but %s has no health check", name, dep, dep)
					}
				case types.ServiceConditionCompletedSuccessfully:
					if target.Restart != "" && target.Restart != types.RestartPolicyNo {
						t.Errorf("service %s waits for %s to complete, but %s has restart %q", name, dep, dep, target.Restart)
					}
				}
			}
		}
		for _, name := range oneShotServices {
			if r := service(t, p, name).Restart; r != types.RestartPolicyNo {
				t.Errorf("one-shot service %s: restart %q, want %q", name, r, types.RestartPolicyNo)
			}
		}
	})

	t.Run("Kafka", func(t *testing.T) {
		kafka := service(t, p, "kafka")
		kenv := environment(t, kafka)
		listeners := parseListeners(t, "KAFKA_LISTENERS", kenv["KAFKA_LISTENERS"])
		advertised := parseListeners(t, "KAFKA_ADVERTISED_LISTENERS", kenv["KAFKA_ADVERTISED_LISTENERS"])
		protocols := map[string]string{}
		for _, pair := range splitList(kenv["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]) {
			name, proto, _ := strings.Cut(pair, ":")
			protocols[name] = proto
		}

		// The listener other containers use: advertised at the service name.
		var internal []string
		for name, addr := range advertised {
			host, port := splitHostPort(t, "advertised listener "+name, addr)
			if l, ok := listeners[name]; !ok {
				t.Errorf("advertised listener %s is not in KAFKA_LISTENERS", name)
			} else if _, lport := splitHostPort(t, "listener "+name, l); lport != port {
				t.Errorf("listener %s: advertised port %d, bound port %d", name, port, lport)
			}
			if protocols[name] == "" {
				t.Errorf("listener %s has no security protocol in KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", name)
			}
			switch host {
			case "kafka":
				internal = append(internal, addr)
			case "localhost", "127.0.0.1":
				if !publishes(kafka, port) {
					t.Errorf("host listener %s (%s) is not published on the same port", name, addr)
				}
			default:
				t.Errorf("advertised listener %s=%s is reachable neither in the compose network (kafka:PORT) nor from the host (localhost:PORT)", name, addr)
			}
		}
		if len(internal) != 1 {
			t.Fatalf("want one listener advertised as kafka:PORT, have %v", internal)
		}
		if ibl := kenv["KAFKA_INTER_BROKER_LISTENER_NAME"]; advertised[ibl] != internal[0] {
			t.Errorf("inter-broker listener %q is not the in-network listener %s", ibl, internal[0])
		}

		for _, name := range annalsContainers() {
			env := environment(t, service(t, p, name))
			brokers, ok := env["KAFKA_BROKERS"]
			if !ok {
				t.Errorf("service %s: KAFKA_BROKERS not set", name)
				continue
			}
			for _, b := range splitList(brokers) {
				if b != internal[0] {
					t.Errorf("service %s: KAFKA_BROKERS has %s, want kafka's in-network listener %s", name, b, internal[0])
				}
			}
			if rf, ok := env["KAFKA_REPLICATION_FACTOR"]; ok && rf != "1" {
				t.Errorf("service %s: KAFKA_REPLICATION_FACTOR=%s on a single broker", name, rf)
			}
		}

		// KRaft, one combined node.
		if got := kenv["KAFKA_PROCESS_ROLES"]; got != "broker,controller" {
			t.Errorf("KAFKA_PROCESS_ROLES=%q, want broker,controller", got)
		}
		voter := kenv["KAFKA_NODE_ID"] + "@kafka:"
		ctrl := kenv["KAFKA_CONTROLLER_LISTENER_NAMES"]
		if l, ok := listeners[ctrl]; !ok {
			t.Errorf("controller listener %q is not in KAFKA_LISTENERS", ctrl)
		} else if _, port := splitHostPort(t, "controller listener", l); kenv["KAFKA_CONTROLLER_QUORUM_VOTERS"] != voter+strconv.Itoa(port) {
			t.Errorf("KAFKA_CONTROLLER_QUORUM_VOTERS=%q, want %s%d", kenv["KAFKA_CONTROLLER_QUORUM_VOTERS"], voter, port)
		}
		if id, err := base64.RawURLEncoding.DecodeString(kenv["CLUSTER_ID"]); err != nil || len(id) != 16 {
			t.Errorf("CLUSTER_ID=%q is not a base64url-encoded 16-byte UUID", kenv["CLUSTER_ID"])
		}
		for _, k := range []string{
			"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
			"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
			"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
		} {
			if kenv[k] != "1" {
				t.Errorf("%s=%q, want 1 on a single broker", k, kenv[k])
			}
		}
		if got := kenv["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"]; got != "0" {
			t.Errorf("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS=%q, want 0", got)
		}

		// Data in a named volume, at the log directory.
		if v, ok := mountAt(kafka, kenv["KAFKA_LOG_DIRS"]); !ok || v.Type != types.VolumeTypeVolume {
			t.Errorf("kafka: KAFKA_LOG_DIRS=%q is not a named volume (%+v)", kenv["KAFKA_LOG_DIRS"], v)
		}

		hc := kafka.HealthCheck
		if hc == nil || !slices.Contains(hc.Test, "/opt/kafka/bin/kafka-broker-api-versions.sh") {
			t.Errorf("kafka: health check %v does not run kafka-broker-api-versions.sh", hc)
		} else if i := slices.Index(hc.Test, "--bootstrap-server"); i < 0 || i+1 >= len(hc.Test) || hc.Test[i+1] != internal[0] {
			t.Errorf("kafka: health check %q does not bootstrap from %s", hc.Test, internal[0])
		}
	})

	t.Run("PostgreSQL", func(t *testing.T) {
		pg := service(t, p, "postgres")
		penv := environment(t, pg)
		want := pgSettings{
			host:     "postgres",
			port:     5432, // the server's port inside its container
			database: penv["POSTGRES_DB"],
			user:     penv["POSTGRES_USER"],
			password: penv["POSTGRES_PASSWORD"],
		}
		if want.database == "" || want.user == "" || want.password == "" {
			t.Fatalf("postgres: POSTGRES_DB, POSTGRES_USER and POSTGRES_PASSWORD must be set, have %v", penv)
		}
		if _, ok := penv["PGPORT"]; ok {
			t.Errorf("postgres: PGPORT moves the server off 5432")
		}
		if !exposesPort(pg, want.port) {
			t.Errorf("postgres: port %d is not published", want.port)
		}
		if v, ok := mountAt(pg, "/var/lib/postgresql/data"); !ok || v.Type != types.VolumeTypeVolume {
			t.Errorf("postgres: data directory is not a named volume (%+v)", v)
		}
		if hc := pg.HealthCheck; hc == nil || !slices.Contains(hc.Test, "pg_isready") {
			t.Errorf("postgres: health check %v does not use pg_isready", hc)
		}

		for _, name := range annalsContainers() {
			env := environment(t, service(t, p, name))
			got, ok := databaseSettings(t, name, env)
			if !ok {
				t.Errorf("service %s: neither DATABASE_URL nor EVENT_STORE_HOST is set", name)
				continue
			}
			if got != want {
				t.Errorf("service %s: database settings %+v, want the postgres service's %+v", name, got, want)
			}
		}
	})

	t.Run("SMTP", func(t *testing.T) {
		mailpit := service(t, p, "mailpit")
		smtpPort := 1025 // Mailpit's default SMTP port
		if bind, ok := environment(t, mailpit)["MP_SMTP_BIND_ADDR"]; ok {
			_, smtpPort = splitHostPort(t, "MP_SMTP_BIND_ADDR", bind)
		}
		if !exposesPort(mailpit, smtpPort) {
			t.Errorf("mailpit: SMTP port %d is not published", smtpPort)
		}
		env := environment(t, service(t, p, "notifier"))
		host, port := splitHostPort(t, "notifier SMTP_ADDR", env["SMTP_ADDR"])
		if host != "mailpit" || port != smtpPort {
			t.Errorf("notifier: SMTP_ADDR=%q, want mailpit:%d", env["SMTP_ADDR"], smtpPort)
		}
	})

	t.Run("Prometheus scrapes every service", func(t *testing.T) {
		prom := service(t, p, "prometheus")
		configPath := "/etc/prometheus/prometheus.yml"
		for _, arg := range prom.Command {
			if v, ok := strings.CutPrefix(arg, "--config.file="); ok {
				configPath = v
			}
		}
		mount, ok := mountAt(prom, configPath)
		if !ok || mount.Type != types.VolumeTypeBind {
			t.Fatalf("prometheus: no bind mount at its configuration file %s", configPath)
		}
		if mount.Source != filepath.Join(root, "deploy", "prometheus", "prometheus.yml") {
			t.Errorf("prometheus: configuration mounted from %s, want deploy/prometheus/prometheus.yml", mount.Source)
		}
		if !publishes(prom, 9090) {
			t.Errorf("prometheus: port 9090 is not published")
		}
		cfg := readPrometheusConfig(t, mount.Source)
		for _, a := range appServices {
			target := fmt.Sprintf("%s:%d", a.Name, a.Port)
			job, labels, ok := cfg.find(target)
			if !ok {
				t.Errorf("prometheus.yml: no scrape target %s", target)
				continue
			}
			if job.MetricsPath != "" && job.MetricsPath != "/metrics" {
				t.Errorf("prometheus.yml: job %s scrapes %s, the services serve /metrics", job.JobName, job.MetricsPath)
			}
			if job.Scheme != "" && job.Scheme != "http" {
				t.Errorf("prometheus.yml: job %s uses scheme %s, the services serve plain HTTP", job.JobName, job.Scheme)
			}
			if labels["service"] != a.Name {
				t.Errorf("prometheus.yml: target %s has service label %q, want %q (the dashboards group by it)", target, labels["service"], a.Name)
			}
		}
		// Every rule file the repository ships is loaded: each rule_files pattern is matched
		// against what the container sees through its bind mounts.
		rules, err := filepath.Glob(filepath.Join(root, "deploy", "prometheus", "rules", "*.rules.yml"))
		if err != nil || len(rules) == 0 {
			t.Fatalf("no rule files in deploy/prometheus/rules (%v)", err)
		}
		for _, rule := range rules {
			loaded := false
			for _, pattern := range cfg.RuleFiles {
				m, ok := mountAt(prom, filepath.Dir(pattern))
				if ok && m.Source == filepath.Dir(rule) {
					if match, _ := filepath.Match(filepath.Base(pattern), filepath.Base(rule)); match {
						loaded = true
					}
				}
			}
			if !loaded {
				t.Errorf("prometheus: %s is not loaded: rule_files %q and the mounts do not reach it", rule, cfg.RuleFiles)
			}
		}
	})

	t.Run("bind mounts exist", func(t *testing.T) {
		for name, s := range p.Services {
			for _, v := range s.Volumes {
				if v.Type != types.VolumeTypeBind {
					continue
				}
				if !strings.HasPrefix(v.Source, root+string(filepath.Separator)) {
					t.Errorf("service %s mounts %s from outside the repository", name, v.Source)
				}
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("service %s mounts %s: %v", name, v.Source, err)
				}
				if !v.ReadOnly {
					t.Errorf("service %s mounts %s read-write; repository files are mounted read-only", name, v.Source)
				}
			}
		}
	})
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parseListeners parses Kafka's "NAME://host:port,..." lists.
func parseListeners(t testing.TB, what, value string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, l := range splitList(value) {
		name, addr, ok := strings.Cut(l, "://")
		if !ok {
			t.Errorf("%s: %q is not NAME://host:port", what, l)
			continue
		}
		out[name] = addr
	}
	if len(out) == 0 {
		t.Errorf("%s is empty", what)
	}
	return out
}

type pgSettings struct {
	host     string
	port     int
	database string
	user     string
	password string
}

// databaseSettings reads the connection settings a service is given, from
// DATABASE_URL or the EVENT_STORE_* variables (both must agree when both are
// set).
func databaseSettings(t testing.TB, svc string, env map[string]string) (pgSettings, bool) {
	t.Helper()
	var fromURL, fromVars *pgSettings
	if raw, ok := env["DATABASE_URL"]; ok {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			t.Errorf("service %s: DATABASE_URL=%q is not a postgres:// URL", svc, raw)
			return pgSettings{}, true
		}
		s := pgSettings{host: u.Hostname(), port: 5432, database: strings.TrimPrefix(u.Path, "/")}
		if u.Port() != "" {
			s.port, _ = strconv.Atoi(u.Port())
		}
		if u.User != nil {
			s.user = u.User.Username()
			s.password, _ = u.User.Password()
		}
		fromURL = &s
	}
	if host, ok := env["EVENT_STORE_HOST"]; ok {
		s := pgSettings{host: host, port: 5432, database: env["EVENT_STORE_DATABASE"],
			user: env["EVENT_STORE_USERNAME"], password: env["EVENT_STORE_PASSWORD"]}
		if v, ok := env["EVENT_STORE_PORT"]; ok {
			s.port, _ = strconv.Atoi(v)
		}
		fromVars = &s
	}
	switch {
	case fromURL != nil && fromVars != nil:
		if *fromURL != *fromVars {
			t.Errorf("service %s: DATABASE_URL %+v and EVENT_STORE_* %+v disagree", svc, *fromURL, *fromVars)
		}
		return *fromURL, true
	case fromURL != nil:
		return *fromURL, true
	case fromVars != nil:
		return *fromVars, true
	}
	return pgSettings{}, false
}

type promScrapeConfig struct {
	JobName       string `yaml:"job_name"`
	MetricsPath   string `yaml:"metrics_path"`
	Scheme        string `yaml:"scheme"`
	StaticConfigs []struct {
		Targets []string          `yaml:"targets"`
		Labels  map[string]string `yaml:"labels"`
	} `yaml:"static_configs"`
}

type promConfig struct {
	RuleFiles     []string           `yaml:"rule_files"`
	ScrapeConfigs []promScrapeConfig `yaml:"scrape_configs"`
}

func readPrometheusConfig(t testing.TB, path string) promConfig {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg promConfig
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return cfg
}

// find returns the scrape job and labels of a static target.
func (c promConfig) find(target string) (promScrapeConfig, map[string]string, bool) {
	for _, job := range c.ScrapeConfigs {
		for _, sc := range job.StaticConfigs {
			if slices.Contains(sc.Targets, target) {
				return job, sc.Labels, true
			}
		}
	}
	return promScrapeConfig{}, nil, false
}

// jobs returns the job names of the scrape configuration.
func (c promConfig) jobs() []string {
	var out []string
	for _, job := range c.ScrapeConfigs {
		out = append(out, job.JobName)
	}
	return out
}
