package wiring

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/pkg/shred"
	"github.com/annals-dev/annals/pkg/shred/pgkeys"
)

// PersonalDataKeyring is the keyring of users' personal data: the key-encryption key of
// PERSONAL_DATA_KEY_FILE over the PostgreSQL key store in pool's database, where the writer
// keeps the users' data keys (a *shred.Keyring). It is nil, with no error, when the setting is
// empty: personal data is then recorded and read in clear.
func PersonalDataKeyring(cfg *config.Config, pool *pgxpool.Pool) (shred.Cipher, error) {
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

// MigrateKeyStore applies the key store's migrations when personal data is encrypted, so that
// a reader that starts before the writer finds the table of the keys; a no-op otherwise.
func MigrateKeyStore(ctx context.Context, pool *pgxpool.Pool, cfg *config.Config, log *slog.Logger) error {
	if cfg.EventSourcing.PersonalDataKeyFile == "" {
		return nil
	}
	if _, err := pgkeys.Migrate(ctx, pool, log); err != nil {
		return fmt.Errorf("migrate the personal data key store: %w", err)
	}
	return nil
}
