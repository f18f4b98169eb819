package lag_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/annals-dev/annals/pkg/kafkasec"
	"github.com/annals-dev/annals/pkg/lag"
)

// TestNew_Security: the monitor refuses security settings that cannot work, naming the
// field at fault, and takes those that can.
func TestNew_Security(t *testing.T) {
	base := lag.Config{Brokers: []string{"b:9093"}, Topics: []string{"t"}}
	for _, tt := range []struct {
		name      string
		sec       kafkasec.Security
		wantField string
	}{
		{"Plaintext", kafkasec.Security{}, ""},
		{"SASLSSL", kafkasec.Security{Protocol: kafkasec.SASLSSL, Mechanism: kafkasec.ScramSHA256, Username: "lag", Password: "pw"}, ""},
		{"SASLWithoutPassword", kafkasec.Security{Protocol: kafkasec.SASLSSL, Mechanism: kafkasec.ScramSHA256, Username: "lag"}, "Password"},
		{"MissingCAFile", kafkasec.Security{Protocol: kafkasec.SSL, CAFile: filepath.Join(t.TempDir(), "ca.crt")}, "CAFile"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			cfg.Security = tt.sec
			_, err := lag.New(cfg)
			var ce *kafkasec.ConfigError
			switch {
			case tt.wantField == "" && err != nil:
				t.Fatalf("New() = %v", err)
			case tt.wantField != "" && (!errors.As(err, &ce) || ce.Field != tt.wantField):
				t.Fatalf("New() error = %v, want a *kafkasec.ConfigError of %s", err, tt.wantField)
			}
		})
	}
}
