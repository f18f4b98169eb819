package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
)

// MigrationSet is a set of embedded goose migrations with a version table and an advisory
// lock of its own: the event store's, or the tables a service owns (read models, a sent log,
// an audit log), which are migrated independently of one another.
type MigrationSet struct {
	Name   string // what the migrations are of, for errors: "the read models"
	FS     fs.FS  // the embedded .sql files
	Dir    string // their folder in FS ("migrations")
	Table  string // the version table
	LockID int64  // the advisory lock (MigrationLocker) that serialises concurrent Up calls
}

// Up applies the migrations the database does not have yet, each in its own transaction.
// Several processes may call it at once: the lock lets one apply them while the others wait,
// then find nothing left to do.
func (m MigrationSet) Up(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) ([]MigrationResult, error) {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	p, err := m.provider(db, log)
	if err != nil {
		return nil, err
	}
	results, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate %s: %w", m.Name, err)
	}
	out := make([]MigrationResult, 0, len(results))
	for _, r := range results {
		out = append(out, MigrationResult{Version: r.Source.Version, Name: r.Source.Path})
	}
	return out, nil
}

// Version reports the newest applied migration and the newest one embedded.
func (m MigrationSet) Version(ctx context.Context, pool *pgxpool.Pool) (applied, latest int64, err error) {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	p, err := m.provider(db, nil)
	if err != nil {
		return 0, 0, err
	}
	if applied, err = p.GetDBVersion(ctx); err != nil {
		return 0, 0, fmt.Errorf("schema version of %s: %w", m.Name, err)
	}
	if sources := p.ListSources(); len(sources) > 0 {
		latest = sources[len(sources)-1].Version
	}
	return applied, latest, nil
}

func (m MigrationSet) provider(db *sql.DB, log *slog.Logger) (*goose.Provider, error) {
	opts := []goose.ProviderOption{
		goose.WithSessionLocker(MigrationLocker(m.LockID)),
		goose.WithTableName(m.Table),
		goose.WithDisableGlobalRegistry(true),
	}
	if log != nil {
		opts = append(opts, goose.WithSlog(log))
	}
	sub, err := fs.Sub(m.FS, m.Dir)
	if err != nil {
		return nil, fmt.Errorf("migrations of %s: %w", m.Name, err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub, opts...)
	if err != nil {
		return nil, fmt.Errorf("migrations of %s: %w", m.Name, err)
	}
	return p, nil
}
