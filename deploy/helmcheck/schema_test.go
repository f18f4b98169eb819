package helmcheck

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/annals-dev/annals/internal/config"
)

// schemaNode is the part of a JSON schema the tests read.
type schemaNode struct {
	Type                 any                    `json:"type"`
	Properties           map[string]*schemaNode `json:"properties"`
	PatternProperties    map[string]*schemaNode `json:"patternProperties"`
	AdditionalProperties json.RawMessage        `json:"additionalProperties"`
	Items                *schemaNode            `json:"items"`
	AnyOf                []*schemaNode          `json:"anyOf"`
	Enum                 []any                  `json:"enum"`
	Pattern              string                 `json:"pattern"`
}

func (n *schemaNode) hasType(t string) bool {
	switch v := n.Type.(type) {
	case string:
		return v == t
	case []any:
		return slices.Contains(v, any(t))
	}
	return false
}

func readSchema(tb testing.TB) *schemaNode {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(chartDir(tb), "values.schema.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var root schemaNode
	if err := json.Unmarshal(data, &root); err != nil {
		tb.Fatalf("values.schema.json: %v", err)
	}
	return &root
}

// passThrough are the objects whose structure is not the chart's but Kubernetes' (the pod
// spec's affinity, given to the pods as it is) or a parent chart's (global): the schema
// leaves them open, and Kubernetes or nobody validates them.
var passThrough = []string{"global", "writer.affinity", "projector.affinity", "notifier.affinity", "auditor.affinity"}

// TestSchema_Closed: every object the schema defines refuses unknown properties, so a
// misspelt key anywhere fails the install instead of being ignored. String maps (labels,
// annotations, node selectors) are maps, not objects of the chart's; they must hold strings.
func TestSchema_Closed(t *testing.T) {
	var walk func(path string, n *schemaNode)
	walk = func(path string, n *schemaNode) {
		if n == nil {
			return
		}
		if n.hasType("object") && !slices.Contains(passThrough, path) {
			var compact bytes.Buffer
			_ = json.Compact(&compact, n.AdditionalProperties)
			switch ap := compact.String(); {
			case ap == "false":
			case ap == `{"type":"string"}` && len(n.Properties) == 0:
			default:
				t.Errorf("values.schema.json: %s: additionalProperties is %s, want false (or a string map)", orRoot(path), orNone(ap))
			}
		}
		for k, p := range n.Properties {
			walk(join(path, k), p)
		}
		for k, p := range n.PatternProperties {
			walk(join(path, "<"+k+">"), p)
		}
		walk(join(path, "[]"), n.Items)
		for _, a := range n.AnyOf {
			walk(path, a)
		}
	}
	walk("", readSchema(t))
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orRoot(path string) string {
	if path == "" {
		return "the root"
	}
	return path
}

func orNone(s string) string {
	if s == "" {
		return "absent"
	}
	return s
}

// TestSchema_MatchesValues: the schema and values.yaml describe the same keys, so that every
// value has a default (and a row in the README) and every default is validated.
func TestSchema_MatchesValues(t *testing.T) {
	root := readSchema(t)
	vals := readValuesFile(t, filepath.Join(chartDir(t), "values.yaml"))
	var walk func(path string, v map[string]any, n *schemaNode)
	walk = func(path string, v map[string]any, n *schemaNode) {
		for k, x := range v {
			p := join(path, k)
			child, ok := n.Properties[k]
			if !ok {
				t.Errorf("values.yaml has %s, which values.schema.json does not describe", p)
				continue
			}
			if m, ok := x.(map[string]any); ok && len(child.Properties) > 0 {
				walk(p, m, child)
			}
		}
		for k := range n.Properties {
			p := join(path, k)
			// Resource names other than the defaults' (a CPU limit, ephemeral storage) are
			// optional, as is global, and config takes any of the keys it lists.
			if _, ok := v[k]; ok || p == "global" || path == "config" || strings.Contains(p, ".resources.") {
				continue
			}
			t.Errorf("values.schema.json describes %s, which values.yaml does not set", p)
		}
	}
	walk("", vals, root)
}

// chartSetEnv are the configuration keys the chart sets from values of its own (or from a
// Secret), which config therefore does not accept.
var chartSetEnv = []string{
	"EVENT_STORE_HOST", "EVENT_STORE_PORT", "EVENT_STORE_DATABASE", "EVENT_STORE_USERNAME",
	"EVENT_STORE_CONNECTION_POOL",
	"KAFKA_BROKERS", "KAFKA_TOPIC_PREFIX", "KAFKA_TOPIC_PARTITIONS", "KAFKA_REPLICATION_FACTOR",
	"SMTP_ADDR", "SMTP_FROM", "SMTP_USERNAME", "SMTP_STARTTLS", "SMTP_TIMEOUT",
	"LOG_LEVEL", "LOG_FORMAT",
	"KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", // kafka.securityProtocol, kafka.sasl
	"KAFKA_TLS_CA_FILE", "KAFKA_TLS_CERT_FILE", "KAFKA_TLS_KEY_FILE", // the files of kafka.tls's Secrets
	"EVENT_STORE_SSLMODE", "EVENT_STORE_SSLROOTCERT", "EVENT_STORE_SSLCERT", "EVENT_STORE_SSLKEY", // database.sslmode, database.tls
	"PERSONAL_DATA_KEY_FILE", // the file of personalData's Secret
	"HTTP_ADDR",              // each container listens on its service's own port
	"MIGRATE_ON_START",       // from migrations.enabled
	"NOTIFIER_TEMPLATES_DIR", // from notifier.templates
	"OTEL_SERVICE_NAME",      // each container's own: <fullname>-<service>
}

// TestSchema_Config: config accepts every configuration key of internal/config that the
// chart does not set itself and that is not a secret, each with the type its kind parses
// and the values it allows. A key added to the services shows up here until the chart
// passes it through or sets it.
func TestSchema_Config(t *testing.T) {
	props := readSchema(t).Properties["config"].Properties
	var want []string
	for _, k := range config.Keys() {
		if k.Secure || slices.Contains(chartSetEnv, k.Env) {
			continue
		}
		want = append(want, k.Env)
		p, ok := props[k.Env]
		if !ok {
			t.Errorf("config does not accept %s (%s): add it to values.schema.json and the README, or set it from a value of its own", k.Env, k.Path())
			continue
		}
		wantType := map[config.Kind]string{
			config.KindBool: "boolean", config.KindInt: "integer", config.KindDuration: "string",
			config.KindString: "string", config.KindList: "string",
		}[k.Kind]
		if !p.hasType(wantType) {
			t.Errorf("config.%s: type %v, want %s (a %s key)", k.Env, p.Type, wantType, k.Kind)
		}
		if len(k.Allowed) > 0 {
			var enum []string
			for _, e := range p.Enum {
				s, _ := e.(string)
				enum = append(enum, s)
			}
			if !slices.Equal(enum, k.Allowed) {
				t.Errorf("config.%s: enum %v, the services allow %v", k.Env, enum, k.Allowed)
			}
		}
		if k.Kind == config.KindDuration && p.Pattern == "" {
			t.Errorf("config.%s: a duration without a pattern", k.Env)
		}
	}
	for name := range props {
		if !slices.Contains(want, name) {
			if _, ok := config.LookupEnv(name); !ok {
				t.Errorf("config accepts %s, which is not a configuration key", name)
			} else {
				t.Errorf("config accepts %s, which is a secret or set by the chart", name)
			}
		}
	}
	for _, name := range chartSetEnv {
		if _, ok := config.LookupEnv(name); !ok {
			t.Errorf("chartSetEnv lists %s, which is not a configuration key", name)
		}
	}
}
