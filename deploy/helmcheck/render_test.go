package helmcheck

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/wiring"
	"github.com/annals-dev/annals/services/notifier/templates"
)

// Distinctive secret values: none of them can appear in a manifest by chance, so finding one
// outside a Secret means that the chart leaked it.
const (
	dbPassword     = "pw-database-7c1f9e"
	dbURLPassword  = "url-secret-4b2d8a"
	dbURL          = "postgres://annals:" + dbURLPassword + "@db.internal:5432/annals?sslmode=require"
	smtpUser       = "smtp-user-93ae51"
	smtpPassword   = "smtp-password-e61c07"
	signingSecret  = "signing-secret-5d08c3-0123456789abcdef"
	signingKey     = "k1:" + signingSecret
	existingSecret = "annals-credentials"
	kafkaPassword  = "kafka-password-2f81d4"
)

// secretNeedles are the strings that must appear in no manifest but a Secret.
var secretNeedles = []string{dbPassword, dbURLPassword, dbURL, smtpUser, smtpPassword, signingSecret, kafkaPassword}

// chartCase is one way of installing the chart.
type chartCase struct {
	name   string
	values map[string]any
	// apis are the optional API versions the cluster serves.
	apis []string
	// existing is the content of the Secret that existingSecret names, which the chart does
	// not render: the environment checks read it from here.
	existing map[string]string
}

// chartCases are the installs every check runs on: the defaults, each optional feature, and
// every values file in examples/.
func chartCases(t *testing.T) []chartCase {
	t.Helper()
	cases := []chartCase{
		{name: "defaults"},
		{
			name: "secrets in values",
			values: values(
				"database.password", dbPassword,
				"database.url", dbURL,
				"smtp.username", smtpUser,
				"smtp.password", smtpPassword,
				"signing.key", signingKey,
				"notifier.templates", map[string]any{
					"welcome.subject.tmpl":         "Welcome, {{.Name}}",
					"order_cancelled.text.tmpl":    "Order {{.OrderID}} was cancelled: {{.Reason}}\n",
					"order_confirmed.subject.tmpl": "Order {{.OrderID}}: {{money .TotalCents}}",
				},
				"config", map[string]any{"PROJECTION_BATCH_SIZE": 1000000, "SHUTDOWN_TIMEOUT": "20s", "EVENT_SERIALIZATION": "json"},
			),
		},
		{
			name: "existingSecret",
			values: values(
				"existingSecret", existingSecret,
				"existingSecretKeys.smtpPassword", "smtp-pass",
			),
			existing: map[string]string{
				"EVENT_STORE_PASSWORD": dbPassword,
				"SMTP_USERNAME":        smtpUser,
				"smtp-pass":            smtpPassword,
			},
		},
		{
			name: "secured Kafka and PostgreSQL",
			values: values(
				"kafka.securityProtocol", "SASL_SSL",
				"kafka.sasl.mechanism", "SCRAM-SHA-512",
				"kafka.sasl.username", "annals",
				"kafka.sasl.password", kafkaPassword,
				"kafka.tls.caSecret", "kafka-ca",
				"kafka.tls.caKey", "ca.pem",
				"kafka.tls.clientSecret", "annals-kafka-client",
				"database.password", dbPassword,
				"database.sslmode", "verify-full",
				"database.tls.caSecret", "postgres-ca",
				"signing.key", signingKey,
			),
		},
		{
			name: "personal data encrypted",
			values: values(
				"personalData.keySecret", "annals-personal-data",
				"personalData.keyKey", "kek",
				"signing.key", signingKey,
			),
		},
		{
			name: "secured Kafka with existingSecret",
			values: values(
				"existingSecret", existingSecret,
				"kafka.securityProtocol", "SASL_PLAINTEXT",
				"kafka.sasl.mechanism", "SCRAM-SHA-256",
				"kafka.sasl.username", "annals",
				"database.tls.clientSecret", "annals-postgres-client",
			),
			existing: map[string]string{
				"EVENT_STORE_PASSWORD": dbPassword,
				"KAFKA_SASL_PASSWORD":  kafkaPassword,
			},
		},
		{
			name: "redis event store",
			values: values(
				"eventStore.redisUrl", "redis://:"+dbPassword+"@redis:6379/0",
				"config", map[string]any{"EVENT_STORE_TYPE": "redis", "EVENT_STORE_REDIS_PREFIX": "shop"},
			),
		},
		{
			name: "mongodb event store with existingSecret",
			values: values(
				"existingSecret", existingSecret,
				"config", map[string]any{"EVENT_STORE_TYPE": "mongodb", "EVENT_STORE_MONGODB_DATABASE": "shop"},
			),
			existing: map[string]string{
				"EVENT_STORE_PASSWORD":    dbPassword,
				"EVENT_STORE_MONGODB_URI": "mongodb://annals:" + dbPassword + "@mongodb:27017/",
			},
		},
		{
			name: "keda",
			values: values(
				"writer.autoscaling.enabled", true,
				"projector.keda.enabled", true,
				"projector.keda.maxReplicas", 12,
				"notifier.keda.enabled", true,
				"notifier.keda.minReplicas", 0,
				"auditor.keda.enabled", true,
				"kafka.topicPrefix", "shop",
			),
			apis: []string{kedaAPI},
		},
		{
			name: "hpa",
			values: values(
				"writer.autoscaling.enabled", true,
				"projector.autoscaling.enabled", true,
				"projector.autoscaling.targetMemoryUtilizationPercentage", 80,
				"notifier.autoscaling.enabled", true,
				"auditor.autoscaling.enabled", true,
				"auditor.autoscaling.maxReplicas", 12,
				"projector.podDisruptionBudget.minAvailable", "50%",
				"projector.podDisruptionBudget.maxUnavailable", nil,
			),
		},
		{
			name: "servicemonitor",
			values: values(
				"metrics.serviceMonitor.enabled", true,
				"metrics.serviceMonitor.labels", map[string]any{"release": "prometheus"},
				"metrics.prometheusRule.enabled", true,
			),
			apis: []string{monitoringAPI},
		},
		{
			name: "servicemonitor without the operator",
			values: values(
				"metrics.serviceMonitor.enabled", true,
				"metrics.prometheusRule.enabled", true,
			),
		},
		{
			name: "without migrations, notifier and test",
			values: values(
				"migrations.enabled", false,
				"notifier.enabled", false,
				"tests.enabled", false,
				"grafana.dashboards.enabled", false,
				"serviceAccount.create", false,
				"podSecurityContext.runAsUser", nil,
			),
		},
	}
	for _, path := range examples(t) {
		c := chartCase{
			name:   "examples/" + filepath.Base(path),
			values: readValuesFile(t, path),
			apis:   []string{monitoringAPI, kedaAPI},
		}
		if name, _ := c.values["existingSecret"].(string); name != "" {
			// Fill the Secret the example expects under the default key names.
			c.existing = map[string]string{
				"EVENT_STORE_PASSWORD": dbPassword,
				"SMTP_USERNAME":        smtpUser,
				"SMTP_PASSWORD":        smtpPassword,
			}
		}
		cases = append(cases, c)
	}
	return cases
}

func TestChart(t *testing.T) {
	for _, c := range chartCases(t) {
		t.Run(c.name, func(t *testing.T) {
			rel := mustRender(t, c.values, c.apis...)
			t.Run("labels", func(t *testing.T) { checkLabels(t, rel) })
			t.Run("selectors", func(t *testing.T) { checkSelectors(t, rel) })
			t.Run("pods", func(t *testing.T) { checkPods(t, rel) })
			t.Run("secrets", func(t *testing.T) { checkSecrets(t, rel) })
			var cfgs map[string]*config.Config
			t.Run("environment", func(t *testing.T) { cfgs = checkEnvironment(t, rel, c.existing) })
			t.Run("autoscaling", func(t *testing.T) { checkAutoscaling(t, rel, cfgs) })
			t.Run("monitoring", func(t *testing.T) { checkMonitoring(t, rel, c.apis) })
			t.Run("hooks", func(t *testing.T) { checkHooks(t, rel) })
			t.Run("notifier templates", func(t *testing.T) { checkNotifierTemplates(t, rel) })
			t.Run("audit checkpoints", func(t *testing.T) { checkAuditCheckpoints(t, rel) })
			t.Run("signing key", func(t *testing.T) { checkSigningNote(t, rel) })
			t.Run("tls files", func(t *testing.T) { checkTLSFiles(t, rel, c.existing) })
		})
	}
}

// checkSigningNote: the install's notes say that the services will refuse to start when no
// signing key is given (in the values or, presumably, in existingSecret), and only then.
func checkSigningNote(t *testing.T, rel *release) {
	required, _ := rel.Values["config"].(map[string]any)["EVENT_SIGNING_REQUIRED"].(bool)
	if _, set := rel.Values["config"].(map[string]any)["EVENT_SIGNING_REQUIRED"]; !set {
		required = true
	}
	missing := required && stringValue(rel.Values, "signing.key") == "" && stringValue(rel.Values, "existingSecret") == ""
	if got := strings.Contains(rel.Notes, "no signing key is set"); got != missing {
		t.Errorf("the notes warn of a missing signing key: %v, want %v", got, missing)
	}
}

// checkLabels: every resource has the recommended labels, and every resource of one service
// names it as its component.
func checkLabels(t *testing.T, rel *release) {
	chartLabel := "annals-" + chartVersion(t)
	for _, m := range rel.Manifests {
		want := map[string]string{
			"app.kubernetes.io/name":       "annals",
			"app.kubernetes.io/instance":   releaseName,
			"app.kubernetes.io/part-of":    "annals",
			"app.kubernetes.io/managed-by": "Helm",
			"helm.sh/chart":                chartLabel,
		}
		for k, v := range want {
			if got := m.Labels[k]; got != v {
				t.Errorf("%s: label %s is %q, want %q", m, k, got, v)
			}
		}
		if m.Labels["app.kubernetes.io/version"] == "" {
			t.Errorf("%s: no app.kubernetes.io/version label", m)
		}
		switch m.Kind {
		case "Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "ScaledObject":
			if c := m.Labels["app.kubernetes.io/component"]; !slices.Contains(services, c) {
				t.Errorf("%s: component label %q is none of %v", m, c, services)
			}
		}
	}
	for _, d := range objectsOf[*appsv1.Deployment](rel) {
		for _, k := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/component", "app.kubernetes.io/part-of"} {
			if d.Spec.Template.Labels[k] == "" {
				t.Errorf("Deployment %s: the pod template has no %s label", d.Name, k)
			}
		}
	}
}

// chartVersion is the chart's version from Chart.yaml.
func chartVersion(tb testing.TB) string {
	tb.Helper()
	chrt, err := loadChart()
	if err != nil {
		tb.Fatal(err)
	}
	return chrt.Metadata.Version
}

// checkSelectors: each Deployment selects its own pods, each Service and
// PodDisruptionBudget selects the pods of exactly one Deployment (its own component's), the
// autoscalers target rendered Deployments, and the ServiceMonitor selects every Service.
func checkSelectors(t *testing.T, rel *release) {
	deployments := objectsOf[*appsv1.Deployment](rel)
	selected := func(sel labels.Selector) []*appsv1.Deployment {
		var out []*appsv1.Deployment
		for _, d := range deployments {
			if sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				out = append(out, d)
			}
		}
		return out
	}
	for _, d := range deployments {
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || sel.Empty() {
			t.Errorf("Deployment %s: selector %v: %v", d.Name, d.Spec.Selector, err)
			continue
		}
		if got := selected(sel); len(got) != 1 || got[0] != d {
			t.Errorf("Deployment %s: its selector matches the pods of %d Deployments, want only its own", d.Name, len(got))
		}
		if d.Spec.Selector.MatchLabels["app.kubernetes.io/version"] != "" {
			t.Errorf("Deployment %s: the selector holds the version, which changes on upgrades (selectors are immutable)", d.Name)
		}
	}
	for _, s := range objectsOf[*corev1.Service](rel) {
		got := selected(labels.SelectorFromSet(s.Spec.Selector))
		if len(s.Spec.Selector) == 0 || len(got) != 1 {
			t.Errorf("Service %s: selector %v matches %d Deployments' pods, want 1", s.Name, s.Spec.Selector, len(got))
			continue
		}
		if a, b := got[0].Labels["app.kubernetes.io/component"], s.Labels["app.kubernetes.io/component"]; a != b {
			t.Errorf("Service %s (%s) selects the pods of %s", s.Name, b, a)
		}
		for _, p := range s.Spec.Ports {
			if !hasContainerPort(got[0].Spec.Template.Spec, p.TargetPort.String()) {
				t.Errorf("Service %s: port %s targets %s, which the pods of %s do not name", s.Name, p.Name, p.TargetPort.String(), got[0].Name)
			}
		}
	}
	for _, p := range objectsOf[*policyv1.PodDisruptionBudget](rel) {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil || sel.Empty() {
			t.Errorf("PodDisruptionBudget %s: selector %v: %v", p.Name, p.Spec.Selector, err)
			continue
		}
		got := selected(sel)
		if len(got) != 1 || got[0].Labels["app.kubernetes.io/component"] != p.Labels["app.kubernetes.io/component"] {
			t.Errorf("PodDisruptionBudget %s: matches the pods of %d Deployments, want exactly its own component's", p.Name, len(got))
		}
		if (p.Spec.MinAvailable == nil) == (p.Spec.MaxUnavailable == nil) {
			t.Errorf("PodDisruptionBudget %s: want exactly one of minAvailable and maxUnavailable", p.Name)
		}
	}
	isDeployment := func(kind, name string) bool {
		return kind == "Deployment" && slices.ContainsFunc(deployments, func(d *appsv1.Deployment) bool { return d.Name == name })
	}
	for _, h := range objectsOf[*autoscalingv2.HorizontalPodAutoscaler](rel) {
		if r := h.Spec.ScaleTargetRef; r.APIVersion != "apps/v1" || !isDeployment(r.Kind, r.Name) {
			t.Errorf("HorizontalPodAutoscaler %s targets %s %s %s, not a rendered Deployment", h.Name, r.APIVersion, r.Kind, r.Name)
		}
	}
	for _, so := range objectsOf[*scaledObject](rel) {
		if r := so.Spec.ScaleTargetRef; r.APIVersion != "apps/v1" || !isDeployment(r.Kind, r.Name) {
			t.Errorf("ScaledObject %s targets %s %s %s, not a rendered Deployment", so.Metadata.Name, r.APIVersion, r.Kind, r.Name)
		}
	}
	svcs := objectsOf[*corev1.Service](rel)
	for _, sm := range objectsOf[*monitoringv1.ServiceMonitor](rel) {
		sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
		if err != nil || sel.Empty() {
			t.Errorf("ServiceMonitor %s: selector: %v", sm.Name, err)
			continue
		}
		for _, s := range svcs {
			if !sel.Matches(labels.Set(s.Labels)) {
				t.Errorf("ServiceMonitor %s does not select Service %s", sm.Name, s.Name)
			}
			for _, e := range sm.Spec.Endpoints {
				if !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == e.Port }) {
					t.Errorf("ServiceMonitor %s: endpoint port %q is not a port of Service %s", sm.Name, e.Port, s.Name)
				}
			}
		}
		if ns := sm.Spec.NamespaceSelector; !ns.Any && !slices.Contains(ns.MatchNames, namespace) {
			t.Errorf("ServiceMonitor %s: namespaceSelector %v leaves out the release's namespace", sm.Name, ns)
		}
	}
}

func hasContainerPort(spec corev1.PodSpec, name string) bool {
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			if p.Name == name || strconv.Itoa(int(p.ContainerPort)) == name {
				return true
			}
		}
	}
	return false
}

// podSpecs are every pod the release creates: the Deployments', the migration Job's and the
// test pod.
func podSpecs(rel *release) map[string]corev1.PodSpec {
	out := map[string]corev1.PodSpec{}
	for _, d := range objectsOf[*appsv1.Deployment](rel) {
		out["Deployment "+d.Name] = d.Spec.Template.Spec
	}
	for _, j := range objectsOf[*batchv1.Job](rel) {
		out["Job "+j.Name] = j.Spec.Template.Spec
	}
	for _, p := range objectsOf[*corev1.Pod](rel) {
		out["Pod "+p.Name] = p.Spec
	}
	return out
}

// checkPods: the restrictive security context everywhere, no API token, resources, probes on
// /livez and /readyz, the right binary and the right image.
func checkPods(t *testing.T, rel *release) {
	repo := stringValue(rel.Values, "image.repository")
	tag := stringValue(rel.Values, "image.tag")
	if tag == "" {
		chrt, _ := loadChart()
		tag = chrt.Metadata.AppVersion
	}
	wantImage := repo + ":" + tag
	if d := stringValue(rel.Values, "image.digest"); d != "" {
		wantImage = repo + "@" + d
	}
	for what, spec := range podSpecs(rel) {
		psc := spec.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
			t.Errorf("%s: the pod does not require a non-root user", what)
		}
		if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: the pod's seccomp profile is not RuntimeDefault", what)
		}
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Errorf("%s: mounts a ServiceAccount token, which no Annals program uses", what)
		}
		containers := append(slices.Clone(spec.InitContainers), spec.Containers...)
		for _, c := range containers {
			where := what + " container " + c.Name
			sc := c.SecurityContext
			switch {
			case sc == nil:
				t.Errorf("%s: no securityContext", where)
				continue
			case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
				t.Errorf("%s: runAsNonRoot is not true", where)
			case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
				t.Errorf("%s: readOnlyRootFilesystem is not true", where)
			case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
				t.Errorf("%s: allowPrivilegeEscalation is not false", where)
			case sc.Privileged != nil && *sc.Privileged:
				t.Errorf("%s: privileged", where)
			case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
				t.Errorf("%s: capabilities %v, want drop [ALL] and nothing added", where, sc.Capabilities)
			case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
				t.Errorf("%s: seccomp profile is not RuntimeDefault", where)
			}
			if c.Image != wantImage {
				t.Errorf("%s: image %s, want %s", where, c.Image, wantImage)
			}
			if c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
				t.Errorf("%s: no memory limit or CPU request", where)
			}
			if len(c.Command) != 1 || !strings.HasPrefix(c.Command[0], "/usr/local/bin/annals") {
				t.Errorf("%s: command %v is not one of the image's binaries", where, c.Command)
			}
		}
	}
	programs := map[string]bool{}
	for _, s := range app.Services() {
		programs["/usr/local/bin/annals-"+s.Name] = true
	}
	for _, d := range objectsOf[*appsv1.Deployment](rel) {
		component := d.Labels["app.kubernetes.io/component"]
		if len(d.Spec.Template.Spec.Containers) != 1 {
			t.Errorf("Deployment %s: %d containers, want 1", d.Name, len(d.Spec.Template.Spec.Containers))
			continue
		}
		c := d.Spec.Template.Spec.Containers[0]
		if want := "/usr/local/bin/annals-" + component; len(c.Command) != 1 || c.Command[0] != want || !programs[want] {
			t.Errorf("Deployment %s: command %v, want [%s], a service of internal/app", d.Name, c.Command, want)
		}
		for _, p := range []struct {
			what  string
			probe *corev1.Probe
			path  string
		}{{"liveness", c.LivenessProbe, "/livez"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
			if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "http" {
				t.Errorf("Deployment %s: %s probe %+v, want GET %s on port http", d.Name, p.what, p.probe, p.path)
			}
		}
		if !hasContainerPort(d.Spec.Template.Spec, "http") {
			t.Errorf("Deployment %s: no container port named http", d.Name)
		}
		if d.Spec.Template.Annotations["checksum/config"] == "" {
			t.Errorf("Deployment %s: no checksum/config annotation on the pods, so a changed setting would not roll them", d.Name)
		}
	}
}

// checkSecrets: no secret value anywhere but in a Secret (ConfigMaps, annotations, literal
// environment, the notes), and every secret configuration key comes from a Secret.
func checkSecrets(t *testing.T, rel *release) {
	for _, m := range rel.Manifests {
		if m.Kind == "Secret" {
			continue
		}
		for _, needle := range secretNeedles {
			if strings.Contains(m.Text, needle) {
				t.Errorf("%s (%s) contains the secret value %q", m, m.Source, needle)
			}
		}
	}
	for _, needle := range secretNeedles {
		if strings.Contains(rel.Notes, needle) {
			t.Errorf("NOTES.txt contains the secret value %q", needle)
		}
	}
	for _, cm := range objectsOf[*corev1.ConfigMap](rel) {
		for k, v := range cm.Data {
			if key, ok := config.LookupEnv(k); ok && (key.Secure || k == "SMTP_USERNAME") {
				t.Errorf("ConfigMap %s holds %s, a credential", cm.Name, k)
			}
			for _, needle := range secretNeedles {
				if strings.Contains(v, needle) {
					t.Errorf("ConfigMap %s: %s holds the secret value %q", cm.Name, k, needle)
				}
			}
		}
	}
	for what, spec := range podSpecs(rel) {
		for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
			for _, e := range c.Env {
				if key, ok := config.LookupEnv(e.Name); ok && (key.Secure || e.Name == "SMTP_USERNAME") {
					if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
						t.Errorf("%s container %s: %s is not read from a Secret", what, c.Name, e.Name)
					}
				}
			}
		}
	}
}

// checkEnvironment assembles each container's environment as the kubelet would (from its
// ConfigMaps, Secrets and literal values), checks that every variable is a configuration key
// and that the services' configuration loader accepts the whole environment with the
// configuration file the image carries, and that each service listens where its probes and
// Service look. It returns each Deployment's configuration, by component.
func checkEnvironment(t *testing.T, rel *release, existing map[string]string) map[string]*config.Config {
	tsk := filepath.Join(repoRoot(t), filepath.FromSlash(config.DefaultPath))
	cfgs := map[string]*config.Config{}
	load := func(where string, c corev1.Container) *config.Config {
		env := containerEnv(t, where, rel, existing, c)
		for name := range env {
			if _, ok := config.LookupEnv(name); !ok {
				t.Errorf("%s: sets %s, which is not a configuration key (the services ignore it)", where, name)
			}
		}
		cfg, err := config.Load(tsk, func(name string) (string, bool) {
			v, ok := env[name]
			return v, ok
		})
		if err != nil {
			t.Errorf("%s: the configuration loader refuses the environment: %v", where, err)
			return nil
		}
		return cfg
	}
	for _, d := range objectsOf[*appsv1.Deployment](rel) {
		component := d.Labels["app.kubernetes.io/component"]
		c := d.Spec.Template.Spec.Containers[0]
		cfg := load("Deployment "+d.Name, c)
		if cfg == nil {
			continue
		}
		cfgs[component] = cfg
		port := 0
		for _, p := range c.Ports {
			if p.Name == "http" {
				port = int(p.ContainerPort)
			}
		}
		if want := ":" + strconv.Itoa(port); cfg.HTTP.Addr != want {
			t.Errorf("Deployment %s: HTTP_ADDR is %q, but the container port named http is %d", d.Name, cfg.HTTP.Addr, port)
		}
		if want := intValue(t, rel.Values, "kafka.topicPartitions"); cfg.Kafka.TopicPartitions != want {
			t.Errorf("Deployment %s: KAFKA_TOPIC_PARTITIONS is %d, kafka.topicPartitions %d", d.Name, cfg.Kafka.TopicPartitions, want)
		}
		if want := !boolValue(rel.Values, "migrations.enabled"); cfg.Writer.MigrateOnStart != want {
			t.Errorf("Deployment %s: MIGRATE_ON_START is %v with migrations.enabled %v", d.Name, cfg.Writer.MigrateOnStart, !want)
		}
		if want := stringValue(rel.Values, "signing.key"); want != "" && cfg.EventSigning.Key.Reveal() != want {
			t.Errorf("Deployment %s: EVENT_SIGNING_KEY is not signing.key", d.Name)
		}
	}
	for _, j := range objectsOf[*batchv1.Job](rel) {
		spec := j.Spec.Template.Spec
		for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
			load("Job "+j.Name+" container "+c.Name, c)
		}
	}
	return cfgs
}

// containerEnv is a container's environment: envFrom first, then env, which wins.
func containerEnv(t *testing.T, where string, rel *release, existing map[string]string, c corev1.Container) map[string]string {
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef == nil {
			t.Errorf("%s: envFrom other than a ConfigMap: %+v", where, from)
			continue
		}
		cm, ok := configMap(rel, from.ConfigMapRef.Name)
		if !ok {
			t.Errorf("%s: envFrom ConfigMap %s is not rendered", where, from.ConfigMapRef.Name)
			continue
		}
		maps.Copy(env, cm.Data)
	}
	secretExistingName := stringValue(rel.Values, "existingSecret")
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			optional := ref.Optional != nil && *ref.Optional
			var data map[string]string
			if ref.Name == secretExistingName && secretExistingName != "" {
				data = existing
			} else if s, ok := secret(rel, ref.Name); ok {
				data = maps.Clone(s.StringData)
				for k, v := range s.Data {
					data[k] = string(v)
				}
			} else {
				t.Errorf("%s: %s reads Secret %s, which is neither rendered nor existingSecret", where, e.Name, ref.Name)
				continue
			}
			v, ok := data[ref.Key]
			switch {
			case ok:
				env[e.Name] = v
			case !optional:
				t.Errorf("%s: %s reads key %s of Secret %s, which it does not hold", where, e.Name, ref.Key, ref.Name)
			}
		default:
			t.Errorf("%s: %s comes from an unexpected source %+v", where, e.Name, e.ValueFrom)
		}
	}
	return env
}

// kafkaScalerParameters are the metadata parameters of KEDA's kafka scaler
// (keda.sh/docs/scalers/apache-kafka), so that a misspelt one fails here instead of being
// ignored by KEDA.
var kafkaScalerParameters = []string{
	"bootstrapServers", "consumerGroup", "topic", "partitionLimitation", "lagThreshold",
	"activationLagThreshold", "offsetResetPolicy", "allowIdleConsumers",
	"scaleToZeroOnInvalidOffset", "excludePersistentLag", "limitToPartitionsWithLag",
	"ensureEvenDistributionOfPartitions", "version", "sasl", "tls",
}

// checkAutoscaling: at most one autoscaler per Deployment and then no replica count; no
// consumer above its topics' partitions; KEDA triggers on the consumer group and topics that
// the service really uses (from its loaded configuration).
func checkAutoscaling(t *testing.T, rel *release, cfgs map[string]*config.Config) {
	partitions := intValue(t, rel.Values, "kafka.topicPartitions")
	hpas := objectsOf[*autoscalingv2.HorizontalPodAutoscaler](rel)
	sos := objectsOf[*scaledObject](rel)
	for _, d := range objectsOf[*appsv1.Deployment](rel) {
		component := d.Labels["app.kubernetes.io/component"]
		consumer := slices.Contains(consumers, component)
		var scalers []string
		for _, h := range hpas {
			if h.Spec.ScaleTargetRef.Name == d.Name {
				scalers = append(scalers, "HorizontalPodAutoscaler")
				if consumer && int(h.Spec.MaxReplicas) > partitions {
					t.Errorf("HorizontalPodAutoscaler %s: maxReplicas %d is more than the %d partitions", h.Name, h.Spec.MaxReplicas, partitions)
				}
				if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas > h.Spec.MaxReplicas {
					t.Errorf("HorizontalPodAutoscaler %s: minReplicas %v above maxReplicas %d", h.Name, h.Spec.MinReplicas, h.Spec.MaxReplicas)
				}
			}
		}
		for _, so := range sos {
			if so.Spec.ScaleTargetRef.Name != d.Name {
				continue
			}
			scalers = append(scalers, "ScaledObject")
			if !consumer {
				t.Errorf("ScaledObject %s scales %s, which reads no consumer group", so.Metadata.Name, component)
				continue
			}
			if so.Spec.MaxReplicaCount == nil || int(*so.Spec.MaxReplicaCount) > partitions {
				t.Errorf("ScaledObject %s: maxReplicaCount %v is unset or more than the %d partitions", so.Metadata.Name, so.Spec.MaxReplicaCount, partitions)
			}
			checkTriggers(t, so, cfgs[component], component)
		}
		if len(scalers) > 1 {
			t.Errorf("Deployment %s has several autoscalers: %v", d.Name, scalers)
		}
		if len(scalers) > 0 && d.Spec.Replicas != nil {
			t.Errorf("Deployment %s sets replicas although %s is in charge of them (an upgrade would reset them)", d.Name, scalers[0])
		}
		if len(scalers) == 0 && d.Spec.Replicas == nil {
			t.Errorf("Deployment %s: no replica count and no autoscaler", d.Name)
		}
		if consumer && d.Spec.Replicas != nil && int(*d.Spec.Replicas) > partitions {
			t.Errorf("Deployment %s: %d replicas, more than the %d partitions", d.Name, *d.Spec.Replicas, partitions)
		}
	}
}

// checkTriggers: one kafka trigger per event topic, on the service's own consumer group.
func checkTriggers(t *testing.T, so *scaledObject, cfg *config.Config, component string) {
	name := so.Metadata.Name
	if cfg == nil {
		t.Errorf("ScaledObject %s: no configuration loaded for %s", name, component)
		return
	}
	var topics []string
	for _, tr := range so.Spec.Triggers {
		if tr.Type != "kafka" {
			t.Errorf("ScaledObject %s: trigger type %q, want kafka", name, tr.Type)
			continue
		}
		for k := range tr.Metadata {
			if !slices.Contains(kafkaScalerParameters, k) {
				t.Errorf("ScaledObject %s: %q is not a parameter of KEDA's kafka scaler", name, k)
			}
		}
		if got, want := tr.Metadata["consumerGroup"], cfg.ConsumerGroup(component); got != want {
			t.Errorf("ScaledObject %s: consumerGroup %q, but the %s's group is %q", name, got, component, want)
		}
		if got, want := tr.Metadata["bootstrapServers"], strings.Join(cfg.Kafka.Brokers, ","); got != want {
			t.Errorf("ScaledObject %s: bootstrapServers %q, the services use %q", name, got, want)
		}
		if n, err := strconv.Atoi(tr.Metadata["lagThreshold"]); err != nil || n < 1 {
			t.Errorf("ScaledObject %s: lagThreshold %q is not a positive integer", name, tr.Metadata["lagThreshold"])
		}
		if tr.Metadata["allowIdleConsumers"] == "true" {
			t.Errorf("ScaledObject %s: allowIdleConsumers lets KEDA scale past the partitions", name)
		}
		topics = append(topics, tr.Metadata["topic"])
	}
	var want []string
	for _, c := range wiring.Categories {
		want = append(want, cfg.TopicName(c))
	}
	slices.Sort(topics)
	slices.Sort(want)
	if !slices.Equal(topics, want) {
		t.Errorf("ScaledObject %s: triggers on topics %v, the group reads %v", name, topics, want)
	}
}

// checkMonitoring: the ServiceMonitor and PrometheusRule exactly when enabled and served,
// the rules as in the rule file, and one dashboard ConfigMap per dashboard file.
func checkMonitoring(t *testing.T, rel *release, apis []string) {
	served := slices.Contains(apis, monitoringAPI)
	sms := objectsOf[*monitoringv1.ServiceMonitor](rel)
	if want := count(boolValue(rel.Values, "metrics.serviceMonitor.enabled") && served); len(sms) != want {
		t.Errorf("%d ServiceMonitors, want %d (enabled, and %s served: %v)", len(sms), want, monitoringAPI, served)
	}
	for _, sm := range sms {
		for _, e := range sm.Spec.Endpoints {
			if e.Path != "/metrics" {
				t.Errorf("ServiceMonitor %s scrapes %q, want /metrics", sm.Name, e.Path)
			}
			relabeled := map[string]string{}
			for _, r := range e.RelabelConfigs {
				src := ""
				if len(r.SourceLabels) == 1 {
					src = string(r.SourceLabels[0])
				}
				if r.Replacement != nil && src == "" {
					src = "=" + *r.Replacement
				}
				relabeled[r.TargetLabel] = src
			}
			if relabeled["job"] != "=annals" || relabeled["service"] != "__meta_kubernetes_service_label_app_kubernetes_io_component" {
				t.Errorf("ServiceMonitor %s: relabelings %v do not give job=annals and service=<component>, which the dashboards and rules select on", sm.Name, relabeled)
			}
		}
		for k, v := range mapValue(rel.Values, "metrics.serviceMonitor.labels") {
			if sm.Labels[k] != v {
				t.Errorf("ServiceMonitor %s: label %s=%q missing", sm.Name, k, v)
			}
		}
	}
	prs := objectsOf[*monitoringv1.PrometheusRule](rel)
	if want := count(boolValue(rel.Values, "metrics.prometheusRule.enabled") && served); len(prs) != want {
		t.Errorf("%d PrometheusRules, want %d (enabled, and %s served: %v)", len(prs), want, monitoringAPI, served)
	}
	for _, pr := range prs {
		var want monitoringv1.PrometheusRuleSpec
		data, err := os.ReadFile(filepath.Join(chartDir(t), "files", "annals.rules.yml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.UnmarshalStrict(data, &want); err != nil {
			t.Fatalf("files/annals.rules.yml is not a rule file with only groups: %v", err)
		}
		if !reflect.DeepEqual(pr.Spec, want) {
			t.Errorf("PrometheusRule %s: its groups differ from files/annals.rules.yml", pr.Name)
		}
		if len(pr.Spec.Groups) == 0 {
			t.Errorf("PrometheusRule %s has no groups", pr.Name)
		}
	}
	if boolValue(rel.Values, "metrics.serviceMonitor.enabled") && !served && !strings.Contains(rel.Notes, "no ServiceMonitor was created") {
		t.Errorf("NOTES.txt does not say that no ServiceMonitor was created without %s", monitoringAPI)
	}

	files, err := filepath.Glob(filepath.Join(chartDir(t), "files", "dashboards", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	dashboards := map[string]*corev1.ConfigMap{}
	label, labelValue := stringValue(rel.Values, "grafana.dashboards.label"), stringValue(rel.Values, "grafana.dashboards.labelValue")
	for _, cm := range objectsOf[*corev1.ConfigMap](rel) {
		if _, ok := cm.Labels[label]; !ok {
			continue
		}
		if cm.Labels[label] != labelValue {
			t.Errorf("ConfigMap %s: %s=%q, want %q", cm.Name, label, cm.Labels[label], labelValue)
		}
		for k := range cm.Data {
			dashboards[k] = cm
		}
	}
	if !boolValue(rel.Values, "grafana.dashboards.enabled") {
		if len(dashboards) > 0 {
			t.Errorf("dashboard ConfigMaps while grafana.dashboards.enabled is false")
		}
		return
	}
	if label != "grafana_dashboard" || labelValue != "1" {
		return // the checks below are about the default sidecar label
	}
	if len(dashboards) != len(files) {
		t.Errorf("%d dashboard ConfigMap entries for %d files in files/dashboards", len(dashboards), len(files))
	}
	for _, f := range files {
		name := filepath.Base(f)
		cm, ok := dashboards[name]
		if !ok {
			t.Errorf("no ConfigMap labelled grafana_dashboard=1 holds %s", name)
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimRight(cm.Data[name], "\n") != strings.TrimRight(string(data), "\n") {
			t.Errorf("ConfigMap %s: %s differs from files/dashboards/%s", cm.Name, name, name)
		}
		if !json.Valid([]byte(cm.Data[name])) {
			t.Errorf("ConfigMap %s: %s is not valid JSON", cm.Name, name)
		}
	}
}

// count is 1 for true and 0 for false: how many of a resource a condition asks for.
func count(b bool) int {
	if b {
		return 1
	}
	return 0
}

// mapValue reads a map of strings from the values.
func mapValue(vals map[string]any, path string) map[string]string {
	v, _ := lookup(vals, path)
	m, _ := v.(map[string]any)
	out := map[string]string{}
	for k, x := range m {
		out[k] = fmt.Sprint(x)
	}
	return out
}

// migrationSteps are the CLI commands the migration Job runs, in order, when every service
// is enabled.
var migrationSteps = [][]string{{"topics"}, {"migrate"}, {"projector", "migrate"}, {"audit", "migrate"}}

// checkHooks: the migration Job runs before installs and upgrades, the commands in order
// (topics first, the event store before the services' own schemas, which depend on it), its
// Secret before it; the test pod asks the writer's /readyz through its Service.
func checkHooks(t *testing.T, rel *release) {
	jobs := objectsOf[*batchv1.Job](rel)
	if !boolValue(rel.Values, "migrations.enabled") {
		if len(jobs) > 0 {
			t.Errorf("a migration Job although migrations.enabled is false")
		}
		return
	}
	if len(jobs) != 1 {
		t.Fatalf("%d Jobs, want the migration Job", len(jobs))
	}
	var want [][]string
	for _, s := range migrationSteps {
		switch {
		case s[0] == "topics" && !boolValue(rel.Values, "migrations.createTopics"),
			s[0] == "projector" && !boolValue(rel.Values, "projector.enabled"),
			s[0] == "audit" && !boolValue(rel.Values, "auditor.enabled"):
			continue
		}
		want = append(want, s)
	}
	j := jobs[0]
	var got [][]string
	for _, c := range append(slices.Clone(j.Spec.Template.Spec.InitContainers), j.Spec.Template.Spec.Containers...) {
		if len(c.Command) != 1 || c.Command[0] != "/usr/local/bin/annals" {
			t.Errorf("Job %s container %s: command %v, want the annals CLI", j.Name, c.Name, c.Command)
		}
		got = append(got, c.Args)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Job %s runs %v, want %v", j.Name, got, want)
	}
	if j.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("Job %s: restartPolicy %s", j.Name, j.Spec.Template.Spec.RestartPolicy)
	}
	weights := map[string]int{}
	for _, m := range rel.Manifests {
		if !m.Hook {
			if m.Annotations["helm.sh/hook"] != "" {
				t.Errorf("%s: a hook among the release's resources", m)
			}
			continue
		}
		hook := m.Annotations["helm.sh/hook"]
		switch m.Kind {
		case "Job", "Secret":
			if hook != "pre-install,pre-upgrade" {
				t.Errorf("%s: hook %q, want pre-install,pre-upgrade", m, hook)
			}
			w, err := strconv.Atoi(m.Annotations["helm.sh/hook-weight"])
			if err != nil {
				t.Errorf("%s: hook weight: %v", m, err)
			}
			weights[m.Kind] = w
			if !strings.Contains(m.Annotations["helm.sh/hook-delete-policy"], "before-hook-creation") {
				t.Errorf("%s: without before-hook-creation the next upgrade fails on the old one", m)
			}
		case "Pod":
			if hook != "test" {
				t.Errorf("%s: hook %q, want test", m, hook)
			}
		default:
			t.Errorf("%s: an unexpected hook", m)
		}
	}
	if w, ok := weights["Secret"]; ok && w >= weights["Job"] {
		t.Errorf("the migration Job's Secret (weight %d) is not created before the Job (weight %d)", w, weights["Job"])
	}

	pods := objectsOf[*corev1.Pod](rel)
	if !boolValue(rel.Values, "tests.enabled") || !boolValue(rel.Values, "writer.enabled") {
		if len(pods) > 0 {
			t.Errorf("a test pod although tests or the writer are disabled")
		}
		return
	}
	if len(pods) != 1 {
		t.Fatalf("%d test pods, want 1", len(pods))
	}
	url := fmt.Sprintf("http://%s-writer.%s.svc:%d/readyz", fullName(), namespace, intValue(t, rel.Values, "writer.service.port"))
	if c := pods[0].Spec.Containers[0]; !slices.Equal(c.Args, []string{"probe", url}) {
		t.Errorf("test pod: args %v, want [probe %s]", c.Args, url)
	}
	if pods[0].Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("test pod: restartPolicy %s, want Never", pods[0].Spec.RestartPolicy)
	}
}

// checkAuditCheckpoints: auditor.checkpoints.keySecret reaches the auditor, and only it, as
// AUDITOR_CHECKPOINT_KEY_FILE on a read-only mount of that Secret, readable by the pods' group
// only; persistentVolumeClaim as AUDITOR_CHECKPOINT_FILE on a writable mount of that claim.
func checkAuditCheckpoints(t *testing.T, rel *release) {
	for _, name := range []string{"writer", "projector", "notifier"} {
		if d, ok := deployment(rel, name); ok {
			for _, e := range d.Spec.Template.Spec.Containers[0].Env {
				if strings.HasPrefix(e.Name, "AUDITOR_CHECKPOINT_") {
					t.Errorf("%s: has %s", name, e.Name)
				}
			}
		}
	}
	d, ok := deployment(rel, "auditor")
	if !ok {
		return
	}
	c := d.Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	mountOf := func(file string) (corev1.VolumeMount, *corev1.Volume) {
		for _, m := range c.VolumeMounts {
			if strings.HasPrefix(file, m.MountPath+"/") {
				for i, v := range d.Spec.Template.Spec.Volumes {
					if v.Name == m.Name {
						return m, &d.Spec.Template.Spec.Volumes[i]
					}
				}
			}
		}
		return corev1.VolumeMount{}, nil
	}
	secret, key := stringValue(rel.Values, "auditor.checkpoints.keySecret"), stringValue(rel.Values, "auditor.checkpoints.keyKey")
	file, set := env["AUDITOR_CHECKPOINT_KEY_FILE"]
	switch m, v := mountOf(file); {
	case secret == "" && set:
		t.Errorf("auditor: AUDITOR_CHECKPOINT_KEY_FILE %q without auditor.checkpoints.keySecret", file)
	case secret == "":
	case v == nil || v.Secret == nil || v.Secret.SecretName != secret || !m.ReadOnly || filepath.Base(file) != key:
		t.Errorf("auditor: AUDITOR_CHECKPOINT_KEY_FILE %q is not %s of a read-only mount of Secret %s", file, key, secret)
	case v.Secret.DefaultMode == nil || *v.Secret.DefaultMode != 0o440:
		t.Errorf("auditor: the checkpoint key's Secret is mounted with another mode than 0440")
	}
	claim := stringValue(rel.Values, "auditor.checkpoints.persistentVolumeClaim")
	file, set = env["AUDITOR_CHECKPOINT_FILE"]
	switch m, v := mountOf(file); {
	case claim == "" && set:
		t.Errorf("auditor: AUDITOR_CHECKPOINT_FILE %q without auditor.checkpoints.persistentVolumeClaim", file)
	case claim == "":
	case v == nil || v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != claim || m.ReadOnly:
		t.Errorf("auditor: AUDITOR_CHECKPOINT_FILE %q is not on a writable mount of claim %s", file, claim)
	}
}

// checkNotifierTemplates: templates given in notifier.templates reach the notifier as files
// in NOTIFIER_TEMPLATES_DIR, and the notifier's template loader accepts them.
func checkNotifierTemplates(t *testing.T, rel *release) {
	given := mapValue(rel.Values, "notifier.templates")
	d, ok := deployment(rel, "notifier")
	if !ok || len(given) == 0 {
		return
	}
	c := d.Spec.Template.Spec.Containers[0]
	dir := ""
	for _, e := range c.Env {
		if e.Name == "NOTIFIER_TEMPLATES_DIR" {
			dir = e.Value
		}
	}
	var volume string
	for _, m := range c.VolumeMounts {
		if m.MountPath == dir {
			volume = m.Name
		}
	}
	var cmName string
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == volume && v.ConfigMap != nil {
			cmName = v.ConfigMap.Name
		}
	}
	cm, ok := configMap(rel, cmName)
	if dir == "" || !ok {
		t.Fatalf("notifier: NOTIFIER_TEMPLATES_DIR %q is not a mounted ConfigMap", dir)
	}
	if !maps.Equal(cm.Data, given) {
		t.Errorf("ConfigMap %s holds other templates than notifier.templates", cm.Name)
	}
	tmp := t.TempDir()
	for name, text := range cm.Data {
		if err := os.WriteFile(filepath.Join(tmp, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := templates.Load(tmp); err != nil {
		t.Errorf("the notifier refuses the templates of notifier.templates: %v", err)
	}
}
