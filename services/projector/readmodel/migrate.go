package readmodel

import (
	"context"
	"embed"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/pkg/events/postgres"
)

//go:embed migrations/*.sql
var migrations embed.FS

// MigrationsTable records which of the projector's migrations have been applied. It is not
// the event store's table: the two schemas are migrated independently.
const MigrationsTable = "annals_projector_migrations"

// migrationLockID is the session advisory lock that serialises concurrent Migrate calls. It
// differs from the event store's, so that the two never wait for each other.
const migrationLockID int64 = 0x616e6e616c7370 // "annalsp"

// MigrationResult is one migration that Migrate applied.
type MigrationResult = postgres.MigrationResult

var schema = postgres.MigrationSet{Name: "the read models", FS: migrations, Dir: "migrations", Table: MigrationsTable, LockID: migrationLockID}

// Migrate applies the embedded migrations that the database does not have yet, each in its
// own transaction. Several processes may call it at once: a session-level advisory lock lets
// one apply the migrations while the others wait, then find nothing left.
func Migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) ([]MigrationResult, error) {
	return schema.Up(ctx, pool, log)
}

// SchemaVersion reports the newest applied migration and the newest one embedded.
func SchemaVersion(ctx context.Context, pool *pgxpool.Pool) (applied, latest int64, err error) {
	return schema.Version(ctx, pool)
}
