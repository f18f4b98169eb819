package wiring_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/internal/wiring"
	"github.com/annals-dev/annals/pkg/shred"
)

func TestPersonalDataKeyring(t *testing.T) {
	ctx := context.Background()
	pool, _ := testenv.SchemaPool(t)

	t.Run("Off", func(t *testing.T) {
		cfg := config.Default()
		keys, err := wiring.PersonalDataKeyring(cfg, pool)
		if err != nil || keys != nil {
			t.Fatalf("got %v, %v; want no keyring", keys, err)
		}
		if err := wiring.MigrateKeyStore(ctx, pool, cfg, nil); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("OK", func(t *testing.T) {
		key, err := shred.NewKeyFile()
		if err != nil {
			t.Fatal(err)
		}
		cfg := config.Default()
		cfg.EventSourcing.PersonalDataKeyFile = filepath.Join(t.TempDir(), "key")
		if err := os.WriteFile(cfg.EventSourcing.PersonalDataKeyFile, key, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := wiring.MigrateKeyStore(ctx, pool, cfg, nil); err != nil {
			t.Fatal(err)
		}
		keys, err := wiring.PersonalDataKeyring(cfg, pool)
		if err != nil {
			t.Fatal(err)
		}
		sealed, err := keys.Encrypt(ctx, "u-1", "ada@example.com")
		if err != nil {
			t.Fatal(err)
		}
		// Another process with the same key file reads the same key store.
		other, err := wiring.PersonalDataKeyring(cfg, pool)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := other.Decrypt(ctx, "u-1", sealed); err != nil || got != "ada@example.com" {
			t.Fatalf("got %q, %v", got, err)
		}
		if err := keys.(*shred.Keyring).Erase(ctx, "u-1"); err != nil {
			t.Fatal(err)
		}
		fresh, _ := wiring.PersonalDataKeyring(cfg, pool)
		if _, err := fresh.Decrypt(ctx, "u-1", sealed); !errors.Is(err, shred.ErrErased) {
			t.Fatalf("after the erasure: %v, want ErrErased", err)
		}
	})

	t.Run("BadFile", func(t *testing.T) {
		cfg := config.Default()
		cfg.EventSourcing.PersonalDataKeyFile = filepath.Join(t.TempDir(), "missing")
		if _, err := wiring.PersonalDataKeyring(cfg, pool); err == nil {
			t.Fatal("no error for a key file that does not exist")
		}
	})
}
