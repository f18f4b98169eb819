package readmodel

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

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
type MigrationResult struct {
	Version int64
	Name    string
}

// Migrate applies the embedded migrations of the read models that the database does not have
// yet, each in its own transaction. Several projectors may call it at once: a session-level
// advisory lock lets one apply the migrations while the others wait, then find nothing left.
func Migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) ([]MigrationResult, error) {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	p, err := newProvider(db, log)
	if err != nil {
		return nil, err
	}
	results, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate read models: %w", err)
	}
	out := make([]MigrationResult, 0, len(results))
	for _, r := range results {
		out = append(out, MigrationResult{Version: r.Source.Version, Name: r.Source.Path})
	}
	return out, nil
}

// SchemaVersion reports the newest applied migration of the read models and the newest one
// embedded.
func SchemaVersion(ctx context.Context, pool *pgxpool.Pool) (applied, latest int64, err error) {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	p, err := newProvider(db, nil)
	if err != nil {
		return 0, 0, err
	}
	if applied, err = p.GetDBVersion(ctx); err != nil {
		return 0, 0, fmt.Errorf("read model schema version: %w", err)
	}
	sources := p.ListSources()
	if len(sources) > 0 {
		latest = sources[len(sources)-1].Version
	}
	return applied, latest, nil
}

func newProvider(db *sql.DB, log *slog.Logger) (*goose.Provider, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	locker := postgres.MigrationLocker(migrationLockID)
	opts := []goose.ProviderOption{
		goose.WithSessionLocker(locker),
		goose.WithTableName(MigrationsTable),
		goose.WithDisableGlobalRegistry(true),
	}
	if log != nil {
		opts = append(opts, goose.WithSlog(log))
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub, opts...)
	if err != nil {
		return nil, fmt.Errorf("read model migrations: %w", err)
	}
	return p, nil
}
