package wiring

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/shred"
	"github.com/annals-dev/annals/pkg/shred/pgkeys"
)

// Keyring is the keyring of users' personal data: the key of PERSONAL_DATA_KEY_FILE wrapping
// the data keys kept in the pool's database (pkg/shred/pgkeys). It is nil when the setting is
// empty, and an error when the file cannot be read or holds no 32-byte base64 key.
func Keyring(pool *pgxpool.Pool, cfg *config.Config) (*shred.Keyring, error) {
	path := cfg.EventSourcing.PersonalDataKeyFile
	if path == "" {
		return nil, nil
	}
	kek, err := shred.LoadLocalKEK(path)
	if err != nil {
		return nil, fmt.Errorf("PERSONAL_DATA_KEY_FILE (event_sourcing.personal_data_key_file): %w", err)
	}
	return shred.NewKeyring(kek, pgkeys.New(pool), shred.Options{}), nil
}

// Migrate applies the event store's migrations and those of the key store of users' data keys
// (pkg/shred/pgkeys), which lives beside it; concurrent callers are safe.
func Migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) ([]postgres.MigrationResult, error) {
	applied, err := postgres.Migrate(ctx, pool, log)
	if err != nil {
		return applied, err
	}
	keys, err := pgkeys.Migrate(ctx, pool, log)
	return append(applied, keys...), err
}

// PersonalDataKeyring is Keyring for the readers of personal data (the projector, the
// notifier, rebuild and reprocess): nil, an interface without a value, when
// PERSONAL_DATA_KEY_FILE is empty, so that an Options field it is assigned to reads nil.
func PersonalDataKeyring(cfg *config.Config, pool *pgxpool.Pool) (shred.Cipher, error) {
	k, err := Keyring(pool, cfg)
	if k == nil || err != nil {
		return nil, err
	}
	return k, nil
}

// MigrateKeyStore applies the key store's migrations when personal data is encrypted, so that
// a reader that starts before the writer (or before `annals migrate`) finds the table of the
// keys; a no-op otherwise.
func MigrateKeyStore(ctx context.Context, pool *pgxpool.Pool, cfg *config.Config, log *slog.Logger) error {
	if cfg.EventSourcing.PersonalDataKeyFile == "" {
		return nil
	}
	if _, err := pgkeys.Migrate(ctx, pool, log); err != nil {
		return fmt.Errorf("migrate the personal data key store: %w", err)
	}
	return nil
}
