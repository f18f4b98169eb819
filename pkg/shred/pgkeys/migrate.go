package pgkeys

import (
	"context"
	"embed"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/pkg/events/postgres"
)

//go:embed migrations/*.sql
var migrations embed.FS

// MigrationsTable records which of the key store's migrations have been applied.
const MigrationsTable = "annals_subject_keys_migrations"

// migrationLockID serialises concurrent Migrate calls; it is no other migration set's.
const migrationLockID int64 = 0x616e6e616c736b // "annalsk"

// Migrations are the key store's migrations.
var Migrations = postgres.MigrationSet{Name: "the subject keys", FS: migrations, Dir: "migrations", Table: MigrationsTable, LockID: migrationLockID}

// Migrate applies the key store's migrations that the database does not have yet, each in
// its own transaction; processes starting together wait for one another.
func Migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) ([]postgres.MigrationResult, error) {
	return Migrations.Up(ctx, pool, log)
}
