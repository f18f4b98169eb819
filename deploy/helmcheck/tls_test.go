package helmcheck

import (
	"path"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// tlsFiles are the configuration keys that name a TLS file, and the value of the Secret
// that holds it.
var tlsFiles = map[string]string{
	"KAFKA_TLS_CA_FILE":       "kafka.tls.caSecret",
	"KAFKA_TLS_CERT_FILE":     "kafka.tls.clientSecret",
	"KAFKA_TLS_KEY_FILE":      "kafka.tls.clientSecret",
	"EVENT_STORE_SSLROOTCERT": "database.tls.caSecret",
	"EVENT_STORE_SSLCERT":     "database.tls.clientSecret",
	"EVENT_STORE_SSLKEY":      "database.tls.clientSecret",
	"PERSONAL_DATA_KEY_FILE":  "personalData.keySecret",
}

// checkTLSFiles: every container of the services and of the migration Job that is given a
// TLS file finds it in a read-only volume of the Secret its value names, under the key the
// file is named after, and every container is given the files of every Secret set.
func checkTLSFiles(t *testing.T, rel *release, existing map[string]string) {
	check := func(where string, spec corev1.PodSpec, c corev1.Container) {
		env := containerEnv(t, where, rel, existing, c)
		for key, value := range tlsFiles {
			want := stringValue(rel.Values, value)
			file, set := env[key]
			if set != (want != "") {
				t.Errorf("%s: %s is %q with %s %q", where, key, file, value, want)
				continue
			}
			if !set {
				continue
			}
			dir, name := path.Split(file)
			i := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath+"/" == dir })
			if i < 0 {
				t.Errorf("%s: %s=%s lies in no volume mounted at %s", where, key, file, dir)
				continue
			}
			mount := c.VolumeMounts[i]
			if !mount.ReadOnly {
				t.Errorf("%s: the volume of %s is mounted writable", where, key)
			}
			j := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == mount.Name })
			if j < 0 || spec.Volumes[j].Secret == nil || spec.Volumes[j].Secret.SecretName != want {
				t.Errorf("%s: %s=%s is not in a volume of Secret %s", where, key, file, want)
				continue
			}
			wantName := map[string]string{"KAFKA_TLS_CA_FILE": stringValue(rel.Values, "kafka.tls.caKey"),
				"EVENT_STORE_SSLROOTCERT": stringValue(rel.Values, "database.tls.caKey"),
				"PERSONAL_DATA_KEY_FILE":  stringValue(rel.Values, "personalData.keyKey"),
				"KAFKA_TLS_KEY_FILE":      "tls.key", "EVENT_STORE_SSLKEY": "tls.key"}[key]
			if wantName == "" {
				wantName = "tls.crt"
			}
			if name != wantName {
				t.Errorf("%s: %s=%s, want the key %s of Secret %s", where, key, file, wantName, want)
			}
			if mode := spec.Volumes[j].Secret.DefaultMode; mode == nil || *mode&0o007 != 0 {
				t.Errorf("%s: the volume of Secret %s is readable by others (mode %v)", where, want, mode)
			}
		}
	}
	for _, d := range objectsOf[*appsv1.Deployment](rel) {
		spec := d.Spec.Template.Spec
		check("Deployment "+d.Name, spec, spec.Containers[0])
	}
	for _, j := range objectsOf[*batchv1.Job](rel) {
		spec := j.Spec.Template.Spec
		for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
			check("Job "+j.Name+" container "+c.Name, spec, c)
		}
	}
}
