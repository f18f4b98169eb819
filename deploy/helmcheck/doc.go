// Package helmcheck holds the tests of the Helm chart in deploy/helm/annals.
//
// No cluster is needed. The chart is rendered with the Helm SDK the way `helm install
// --dry-run` renders it without a cluster (action.Install with ClientOnly), for its defaults,
// for KEDA, for the Prometheus Operator's resources (with monitoring.coreos.com/v1 among the
// capabilities), for existingSecret and for every values file in examples/. Then:
//
//   - every manifest, hooks included, decodes strictly into its Kubernetes type (an unknown
//     or misplaced field fails), the Prometheus Operator's into its own Go types and KEDA's
//     ScaledObject into a small struct of the fields the chart uses;
//   - the selectors of the Deployments, Services, PodDisruptionBudgets and ServiceMonitor
//     match the pods' and Services' labels, and autoscalers target the Deployments;
//   - every container's environment, assembled from its ConfigMap, Secret and literal
//     variables, names only configuration keys and is accepted by the services' own
//     configuration loader with the image's configuration file;
//   - no secret value appears anywhere but in a Secret;
//   - a consumer's replicas and autoscaling maxima stay within the topics' partitions, its
//     KEDA triggers name its real consumer group and topics, and the chart refuses an HPA and
//     a ScaledObject together;
//   - values.schema.json closes every object it defines, rejects misspelt keys and wrongly
//     typed values, and accepts exactly the configuration keys that the chart passes through;
//   - the README's values table lists every value with its default;
//   - the dashboards and alert rules in the chart are byte-identical copies of
//     deploy/grafana/dashboards and deploy/prometheus/rules (`make helm-sync` copies them);
//   - the CLI commands of the migration Job and of the test pod exist in cmd/annals;
//   - `helm lint`, built from the Helm module this module requires, passes, also with
//     --strict and with each example.
//
// This package lives in the deploy module (deploy/go.mod) so that the Helm SDK is not a
// dependency of the annals library.
//
// Run with:
//
//	cd deploy && go test ./helmcheck/
package helmcheck
