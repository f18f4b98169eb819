package helmcheck

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/releaseutil"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const (
	modulePath = "github.com/annals-dev/annals"

	// The release every test renders: a name without the chart's, so that resource names
	// are "<release>-annals-<component>", in a namespace of its own.
	releaseName = "demo"
	namespace   = "annals-test"

	// The API versions of the optional operators.
	monitoringAPI = "monitoring.coreos.com/v1"
	kedaAPI       = "keda.sh/v1alpha1"
)

// services are the chart's components, as the services name themselves (internal/app), and
// consumers those that read the event topics in a consumer group.
var (
	services  = []string{"writer", "projector", "notifier", "auditor"}
	consumers = []string{"projector", "notifier", "auditor"}
)

// repoRoot is the root of the annals module: two levels above this package.
func repoRoot(tb testing.TB) string {
	tb.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		tb.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		tb.Fatalf("repository root: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "module" {
			if f[1] != modulePath {
				tb.Fatalf("%s/go.mod declares module %s, want %s", root, f[1], modulePath)
			}
			return root
		}
	}
	tb.Fatalf("%s/go.mod declares no module", root)
	return ""
}

// chartDir is the chart's folder.
func chartDir(tb testing.TB) string {
	tb.Helper()
	return filepath.Join(repoRoot(tb), "deploy", "helm", "annals")
}

// loadChart loads the chart once for all tests; the chart's files do not change while they
// run.
var loadChart = sync.OnceValues(func() (*chart.Chart, error) {
	dir, err := filepath.Abs(filepath.Join("..", "helm", "annals"))
	if err != nil {
		return nil, err
	}
	return loader.Load(dir)
})

// manifest is one rendered Kubernetes object.
type manifest struct {
	Source      string // the template it came from
	Hook        bool   // a Helm hook rather than a release resource
	Kind        string
	Name        string
	Labels      map[string]string
	Annotations map[string]string
	Text        string
	Object      any // the strictly decoded object
}

// release is what a client-only install renders.
type release struct {
	Values    chartutil.Values // the chart's values merged with the ones given
	Manifests []manifest
	Notes     string
}

// render renders the chart as `helm install --dry-run` does without a cluster, with the
// given values over the chart's and the API versions a cluster would serve. The error is
// Helm's: schema validation and a template's fail end up there.
func render(tb testing.TB, vals map[string]any, apiVersions ...string) (*release, error) {
	tb.Helper()
	chrt, err := loadChart()
	if err != nil {
		tb.Fatalf("load chart: %v", err)
	}
	if vals == nil {
		vals = map[string]any{}
	}
	install := action.NewInstall(&action.Configuration{
		Releases: storage.Init(driver.NewMemory()),
		Log:      func(string, ...any) {},
	})
	install.DryRun = true
	install.ClientOnly = true
	install.ReleaseName = releaseName
	install.Namespace = namespace
	install.KubeVersion = &chartutil.KubeVersion{Version: "v1.33.0", Major: "1", Minor: "33"}
	install.APIVersions = chartutil.VersionSet(apiVersions)
	rel, err := install.Run(chrt, vals)
	if err != nil {
		return nil, err
	}
	merged, err := chartutil.CoalesceValues(chrt, vals)
	if err != nil {
		tb.Fatalf("merge values: %v", err)
	}
	out := &release{Values: merged, Notes: rel.Info.Notes}
	split := releaseutil.SplitManifests(rel.Manifest)
	keys := make([]string, 0, len(split))
	for k := range split {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if m, ok := decodeManifest(tb, split[k], false); ok {
			out.Manifests = append(out.Manifests, m)
		}
	}
	for _, h := range rel.Hooks {
		if m, ok := decodeManifest(tb, h.Manifest, true); ok {
			m.Source = h.Path
			out.Manifests = append(out.Manifests, m)
		}
	}
	return out, nil
}

// mustRender renders the chart and fails the test on an error.
func mustRender(tb testing.TB, vals map[string]any, apiVersions ...string) *release {
	tb.Helper()
	rel, err := render(tb, vals, apiVersions...)
	if err != nil {
		tb.Fatalf("render: %v", err)
	}
	return rel
}

// kinds are the types the chart may render, by "apiVersion/kind". A manifest of any other
// kind fails the test, as does one with a field its type does not have.
var kinds = map[string]func() any{
	"v1/ConfigMap":                           func() any { return new(corev1.ConfigMap) },
	"v1/Secret":                              func() any { return new(corev1.Secret) },
	"v1/Service":                             func() any { return new(corev1.Service) },
	"v1/ServiceAccount":                      func() any { return new(corev1.ServiceAccount) },
	"v1/Pod":                                 func() any { return new(corev1.Pod) },
	"apps/v1/Deployment":                     func() any { return new(appsv1.Deployment) },
	"batch/v1/Job":                           func() any { return new(batchv1.Job) },
	"policy/v1/PodDisruptionBudget":          func() any { return new(policyv1.PodDisruptionBudget) },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return new(autoscalingv2.HorizontalPodAutoscaler) },
	monitoringAPI + "/ServiceMonitor":        func() any { return new(monitoringv1.ServiceMonitor) },
	monitoringAPI + "/PrometheusRule":        func() any { return new(monitoringv1.PrometheusRule) },
	kedaAPI + "/ScaledObject":                func() any { return new(scaledObject) },
}

// decodeManifest decodes one rendered document strictly into its type. A document with no
// object (only comments) is skipped.
func decodeManifest(tb testing.TB, text string, hook bool) (manifest, bool) {
	tb.Helper()
	var head struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   metav1.ObjectMeta `json:"metadata"`
	}
	if err := yaml.Unmarshal([]byte(text), &head); err != nil {
		tb.Fatalf("rendered YAML does not parse: %v\n%s", err, text)
	}
	if head.APIVersion == "" && head.Kind == "" {
		return manifest{}, false
	}
	m := manifest{
		Source: sourceOf(text), Hook: hook, Kind: head.Kind, Name: head.Metadata.Name,
		Labels: head.Metadata.Labels, Annotations: head.Metadata.Annotations, Text: text,
	}
	newObject, ok := kinds[head.APIVersion+"/"+head.Kind]
	if !ok {
		tb.Errorf("%s: %s %s of an API this test does not know (add it to kinds)", m.Source, head.APIVersion, head.Kind)
		return m, true
	}
	m.Object = newObject()
	if err := yaml.UnmarshalStrict([]byte(text), m.Object); err != nil {
		tb.Errorf("%s: %s %s does not decode strictly into its type: %v", m.Source, head.Kind, m.Name, err)
	}
	return m, true
}

// sourceOf reads the "# Source: path" line Helm puts above each document.
func sourceOf(text string) string {
	for line := range strings.SplitSeq(text, "\n") {
		if rest, ok := strings.CutPrefix(line, "# Source: "); ok {
			return rest
		}
	}
	return "?"
}

// scaledObject is the part of KEDA's ScaledObject (keda.sh/v1alpha1) that the chart writes.
// KEDA's Go module is heavy, so these few fields are declared here, with KEDA's JSON names;
// decoding strictly into them fails on any other field.
type scaledObject struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		ScaleTargetRef struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Name       string `json:"name"`
		} `json:"scaleTargetRef"`
		MinReplicaCount *int32 `json:"minReplicaCount"`
		MaxReplicaCount *int32 `json:"maxReplicaCount"`
		PollingInterval *int32 `json:"pollingInterval"`
		CooldownPeriod  *int32 `json:"cooldownPeriod"`
		Triggers        []struct {
			Type string `json:"type"`
			// KEDA takes every trigger parameter as a string.
			Metadata map[string]string `json:"metadata"`
		} `json:"triggers"`
	} `json:"spec"`
}

// objectsOf returns the decoded objects of type T, release resources and hooks alike.
func objectsOf[T any](rel *release) []T {
	var out []T
	for _, m := range rel.Manifests {
		if o, ok := m.Object.(T); ok {
			out = append(out, o)
		}
	}
	return out
}

// configMap returns the rendered ConfigMap of that name.
func configMap(rel *release, name string) (*corev1.ConfigMap, bool) {
	for _, cm := range objectsOf[*corev1.ConfigMap](rel) {
		if cm.Name == name {
			return cm, true
		}
	}
	return nil, false
}

// secret returns the rendered Secret of that name.
func secret(rel *release, name string) (*corev1.Secret, bool) {
	for _, s := range objectsOf[*corev1.Secret](rel) {
		if s.Name == name {
			return s, true
		}
	}
	return nil, false
}

// deployment returns the rendered Deployment of a component.
func deployment(rel *release, component string) (*appsv1.Deployment, bool) {
	for _, d := range objectsOf[*appsv1.Deployment](rel) {
		if d.Labels["app.kubernetes.io/component"] == component {
			return d, true
		}
	}
	return nil, false
}

// fullName is the prefix of the names of the rendered resources.
func fullName() string { return releaseName + "-annals" }

// values builds a values map from dotted paths: values("a.b", 1, "a.c", "x").
func values(pairs ...any) map[string]any {
	if len(pairs)%2 != 0 {
		panic("values: odd number of arguments")
	}
	out := map[string]any{}
	for i := 0; i < len(pairs); i += 2 {
		setPath(out, pairs[i].(string), pairs[i+1])
	}
	return out
}

// setPath sets a dotted path in a nested values map, creating the maps on the way.
func setPath(m map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = v
}

// lookup reads a dotted path from merged values.
func lookup(vals chartutil.Values, path string) (any, bool) {
	v, err := vals.PathValue(path)
	if err != nil {
		// PathValue only reads scalars and lists; a table is read with Table.
		t, terr := vals.Table(path)
		if terr != nil {
			return nil, false
		}
		return map[string]any(t), true
	}
	return v, true
}

// intValue reads an integer value, whichever numeric type the YAML or the test gave it.
func intValue(tb testing.TB, vals chartutil.Values, path string) int {
	tb.Helper()
	v, ok := lookup(vals, path)
	if !ok {
		tb.Fatalf("values: no %s", path)
	}
	switch n := v.(type) {
	case int:
		return n
	case int64:
		return int(n)
	case float64:
		return int(n)
	}
	tb.Fatalf("values: %s is %T, not a number", path, v)
	return 0
}

// boolValue reads a boolean value; a missing one is false.
func boolValue(vals chartutil.Values, path string) bool {
	v, _ := lookup(vals, path)
	b, _ := v.(bool)
	return b
}

// stringValue reads a string value; a missing one is "".
func stringValue(vals chartutil.Values, path string) string {
	v, _ := lookup(vals, path)
	s, _ := v.(string)
	return s
}

// examples are the values files shipped in the chart's examples folder.
func examples(tb testing.TB) []string {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir(tb), "examples", "*.yaml"))
	if err != nil {
		tb.Fatal(err)
	}
	if len(files) == 0 {
		tb.Fatal("no values examples in deploy/helm/annals/examples")
	}
	return files
}

// readValuesFile reads a values file as Helm does.
func readValuesFile(tb testing.TB, path string) map[string]any {
	tb.Helper()
	v, err := chartutil.ReadValuesFile(path)
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return v
}

// String names a manifest in messages.
func (m manifest) String() string {
	hook := ""
	if m.Hook {
		hook = " (hook)"
	}
	return fmt.Sprintf("%s %s%s", m.Kind, m.Name, hook)
}
