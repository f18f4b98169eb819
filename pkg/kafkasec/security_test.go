package kafkasec_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/kafkasec"
)

// fields are the Fields of the *ConfigErrors in err, in order.
func fields(err error) []string {
	var out []string
	var walk func(error)
	walk = func(err error) {
		var ce *kafkasec.ConfigError
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
		} else if errors.As(err, &ce) {
			out = append(out, ce.Field)
		}
	}
	walk(err)
	return out
}

func TestSecurity_Validate(t *testing.T) {
	sasl := kafkasec.Security{Protocol: kafkasec.SASLSSL, Mechanism: kafkasec.ScramSHA512, Username: "projector", Password: "s3cret"}
	tests := []struct {
		name string
		s    kafkasec.Security
		want []string // the fields at fault, in order
	}{
		{"ZeroIsPlaintext", kafkasec.Security{}, nil},
		{"Plaintext", kafkasec.Security{Protocol: kafkasec.Plaintext}, nil},
		{"SSLWithSystemRoots", kafkasec.Security{Protocol: kafkasec.SSL}, nil},
		{"SSLWithClientCertificate", kafkasec.Security{Protocol: kafkasec.SSL, CAFile: "ca", CertFile: "c", KeyFile: "k"}, nil},
		{"SASLSSL", sasl, nil},
		{"SASLPlaintextPLAIN", kafkasec.Security{Protocol: kafkasec.SASLPlaintext, Mechanism: kafkasec.Plain, Username: "u", Password: "p"}, nil},
		{"UnknownProtocol", kafkasec.Security{Protocol: "TLS"}, []string{"Protocol"}},
		{"SASLWithoutAnything", kafkasec.Security{Protocol: kafkasec.SASLSSL}, []string{"Mechanism", "Username", "Password"}},
		{"SASLWithoutPassword", kafkasec.Security{Protocol: kafkasec.SASLPlaintext, Mechanism: kafkasec.Plain, Username: "u"}, []string{"Password"}},
		{"UnknownMechanism", kafkasec.Security{Protocol: kafkasec.SASLSSL, Mechanism: "GSSAPI", Username: "u", Password: "p"}, []string{"Mechanism"}},
		{"PlaintextWithCredentials", kafkasec.Security{Username: "u", Password: "p"}, []string{"Username", "Password"}},
		{"SSLWithMechanism", kafkasec.Security{Protocol: kafkasec.SSL, Mechanism: kafkasec.Plain}, []string{"Mechanism"}},
		{"PlaintextWithCAFile", kafkasec.Security{CAFile: "ca.crt"}, []string{"CAFile"}},
		{"SASLPlaintextWithCertificate", kafkasec.Security{Protocol: kafkasec.SASLPlaintext, Mechanism: kafkasec.Plain, Username: "u", Password: "p", CertFile: "c", KeyFile: "k"},
			[]string{"CertFile", "KeyFile"}},
		{"CertificateWithoutKey", kafkasec.Security{Protocol: kafkasec.SSL, CertFile: "c"}, []string{"KeyFile"}},
		{"KeyWithoutCertificate", kafkasec.Security{Protocol: kafkasec.SSL, KeyFile: "k"}, []string{"CertFile"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.s.Validate()
			if got := fields(err); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("Validate() = %v: fields %v, want %v", err, got, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error quotes the password: %v", err)
			}
		})
	}
}

func TestSecurity_TLSConfig(t *testing.T) {
	ca := testenv.NewCA(t, "ca")
	client := issue(t, ca, "client", nil, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	other := issue(t, ca, "other", nil, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))

	t.Run("OK", func(t *testing.T) {
		cfg, err := kafkasec.Security{Protocol: kafkasec.SSL, CAFile: ca.CertFile, CertFile: client.certFile, KeyFile: client.keyFile}.TLSConfig()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.InsecureSkipVerify || cfg.ServerName != "" || cfg.MinVersion < tls.VersionTLS12 {
			t.Errorf("InsecureSkipVerify %v, ServerName %q, MinVersion %x: want verification of each host dialled, TLS 1.2 at least",
				cfg.InsecureSkipVerify, cfg.ServerName, cfg.MinVersion)
		}
		if cfg.RootCAs == nil || !cfg.RootCAs.Equal(mustPool(t, ca.CertFile)) || cfg.RootCAs.Equal(mustPool(t, testenv.NewCA(t, "another").CertFile)) {
			t.Error("RootCAs is not the CA file's")
		}
		if len(cfg.Certificates) != 1 {
			t.Errorf("got %d client certificates, want 1", len(cfg.Certificates))
		}
	})
	t.Run("SystemRoots", func(t *testing.T) {
		cfg, err := kafkasec.Security{Protocol: kafkasec.SASLSSL, Mechanism: kafkasec.Plain, Username: "u", Password: "p"}.TLSConfig()
		if err != nil || cfg == nil {
			t.Fatalf("TLSConfig() = %v, %v", cfg, err)
		}
		if cfg.RootCAs != nil || len(cfg.Certificates) != 0 {
			t.Error("RootCAs or Certificates set without files")
		}
	})
	t.Run("NoTLS", func(t *testing.T) {
		for _, p := range []kafkasec.Protocol{"", kafkasec.Plaintext, kafkasec.SASLPlaintext} {
			if cfg, err := (kafkasec.Security{Protocol: p}).TLSConfig(); cfg != nil || err != nil {
				t.Errorf("%q: TLSConfig() = %v, %v, want nil, nil", p, cfg, err)
			}
		}
	})
	for _, tt := range []struct {
		name      string
		s         kafkasec.Security
		wantField string
	}{
		{"ErrCAFileMissing", kafkasec.Security{Protocol: kafkasec.SSL, CAFile: ca.CertFile + ".missing"}, "CAFile"},
		{"ErrCAFileWithoutCertificate", kafkasec.Security{Protocol: kafkasec.SSL, CAFile: client.keyFile}, "CAFile"},
		{"ErrCAFileNotPEM", kafkasec.Security{Protocol: kafkasec.SSL, CAFile: writeFile(t, "ca.txt", "not a certificate\n")}, "CAFile"},
		{"ErrCertFileMissing", kafkasec.Security{Protocol: kafkasec.SSL, CertFile: client.certFile + ".missing", KeyFile: client.keyFile}, "CertFile"},
		{"ErrKeyFileMissing", kafkasec.Security{Protocol: kafkasec.SSL, CertFile: client.certFile, KeyFile: client.keyFile + ".missing"}, "KeyFile"},
		{"ErrKeyNotTheCertificates", kafkasec.Security{Protocol: kafkasec.SSL, CertFile: client.certFile, KeyFile: other.keyFile}, "KeyFile"},
		{"ErrCertFileWithoutCertificate", kafkasec.Security{Protocol: kafkasec.SSL, CertFile: client.keyFile, KeyFile: client.keyFile}, "CertFile"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.s.TLSConfig()
			var ce *kafkasec.ConfigError
			if !errors.As(err, &ce) || ce.Field != tt.wantField {
				t.Fatalf("TLSConfig() error = %v, want a *ConfigError of %s", err, tt.wantField)
			}
			if err := tt.s.CheckFiles(); !errors.As(err, &ce) || ce.Field != tt.wantField {
				t.Errorf("CheckFiles() = %v, want a *ConfigError of %s", err, tt.wantField)
			}
			if _, err := tt.s.Dialer(); !errors.As(err, &ce) {
				t.Errorf("Dialer() error = %v, want the *ConfigError", err)
			}
			if _, err := tt.s.Transport(); !errors.As(err, &ce) {
				t.Errorf("Transport() error = %v, want the *ConfigError", err)
			}
		})
	}
}

func mustPool(t *testing.T, file string) *x509.CertPool {
	t.Helper()
	p, err := kafkasec.LoadCAFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSecurity_SASL(t *testing.T) {
	for _, m := range kafkasec.Mechanisms() {
		t.Run(string(m), func(t *testing.T) {
			for _, p := range []kafkasec.Protocol{kafkasec.SASLPlaintext, kafkasec.SASLSSL} {
				s := kafkasec.Security{Protocol: p, Mechanism: m, Username: "projector", Password: "s3cret"}
				mech, err := s.SASL()
				if err != nil {
					t.Fatal(err)
				}
				if got := mech.Name(); got != string(m) {
					t.Errorf("%s: Name() = %q, want %q", p, got, m)
				}
				d, err := s.Dialer()
				if err != nil {
					t.Fatal(err)
				}
				if d.SASLMechanism == nil || d.SASLMechanism.Name() != string(m) || (d.TLS != nil) != p.TLS() {
					t.Errorf("%s: Dialer() = SASL %v, TLS %v", p, d.SASLMechanism, d.TLS != nil)
				}
				tr, err := s.Transport()
				if err != nil {
					t.Fatal(err)
				}
				if tr.SASL == nil || tr.SASL.Name() != string(m) || (tr.TLS != nil) != p.TLS() {
					t.Errorf("%s: Transport() = SASL %v, TLS %v", p, tr.SASL, tr.TLS != nil)
				}
			}
		})
	}
	t.Run("None", func(t *testing.T) {
		for _, p := range []kafkasec.Protocol{"", kafkasec.Plaintext, kafkasec.SSL} {
			if m, err := (kafkasec.Security{Protocol: p}).SASL(); m != nil || err != nil {
				t.Errorf("%q: SASL() = %v, %v, want nil, nil", p, m, err)
			}
		}
	})
	t.Run("ZeroValue", func(t *testing.T) {
		d, err := kafkasec.Security{}.Dialer()
		if err != nil || d.TLS != nil || d.SASLMechanism != nil || d.Timeout != kafkasec.DialTimeout {
			t.Errorf("Dialer() = %+v, %v, want a plaintext dialer", d, err)
		}
		tr, err := kafkasec.Security{}.Transport()
		if err != nil || tr.TLS != nil || tr.SASL != nil {
			t.Errorf("Transport() = %+v, %v, want a plaintext transport", tr, err)
		}
	})
}

func TestSecurity_RoundTripper(t *testing.T) {
	rt, release, err := kafkasec.Security{}.RoundTripper()
	if err != nil || rt != kafka.DefaultTransport {
		t.Errorf("plaintext: RoundTripper() = %v, %v, want kafka.DefaultTransport, as clients without a transport share it", rt, err)
	}
	release()
	ca := testenv.NewCA(t, "ca")
	rt, release, err = kafkasec.Security{Protocol: kafkasec.SSL, CAFile: ca.CertFile}.RoundTripper()
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if tr, ok := rt.(*kafka.Transport); !ok || tr == kafka.DefaultTransport || tr.TLS == nil {
		t.Errorf("SSL: RoundTripper() = %#v, want a transport of its own with TLS", rt)
	}
	if _, _, err := (kafkasec.Security{Protocol: kafkasec.SSL, CAFile: ca.CertFile + ".missing"}).RoundTripper(); err == nil {
		t.Error("a missing CA file: RoundTripper() error = nil")
	}
	if _, _, err := (kafkasec.Security{Username: "u"}).RoundTripper(); err == nil {
		t.Error("PLAINTEXT with a user name: RoundTripper() error = nil")
	}
}

func TestSecurity_String(t *testing.T) {
	s := kafkasec.Security{Protocol: kafkasec.SASLSSL, Mechanism: kafkasec.ScramSHA256, Username: "projector", Password: "s3cret", CAFile: "/etc/ca.crt"}
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("x", "kafka", s)
	for _, out := range []string{s.String(), fmt.Sprint(s), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s), fmt.Sprintf("%+v", struct{ S kafkasec.Security }{s}), b.String()} {
		if strings.Contains(out, "s3cret") {
			t.Errorf("the password is printed: %s", out)
		}
		if !strings.Contains(out, "SASL_SSL SCRAM-SHA-256 user=projector password=[redacted] ca=/etc/ca.crt") {
			t.Errorf("got %s, want the protocol, mechanism, user and files", out)
		}
	}
	if got := (kafkasec.Security{}).String(); got != "PLAINTEXT" {
		t.Errorf("zero value: got %q, want PLAINTEXT", got)
	}
}
