package postgres

import (
	"context"
	"embed"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrations embed.FS

// MigrationsTable records which migrations have been applied.
const MigrationsTable = "annals_schema_migrations"

// MigrationResult is one migration that Migrate applied.
type MigrationResult struct {
	Version int64
	Name    string
}

// EventStoreMigrations are the event store's migrations.
var EventStoreMigrations = MigrationSet{Name: "the event store", FS: migrations, Dir: "migrations", Table: MigrationsTable, LockID: EventStoreLockID}

// Migrate applies the event store's migrations that the database does not have yet, each in
// its own transaction. Several processes may call it at once (writers starting together): a
// session-level advisory lock lets one apply the migrations while the others wait, then find
// nothing left to do.
func Migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) ([]MigrationResult, error) {
	return EventStoreMigrations.Up(ctx, pool, log)
}

// SchemaVersion reports the newest applied migration and the newest one embedded.
func SchemaVersion(ctx context.Context, pool *pgxpool.Pool) (applied, latest int64, err error) {
	return EventStoreMigrations.Version(ctx, pool)
}
