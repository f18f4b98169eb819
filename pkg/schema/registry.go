package schema

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DB is what Register, List and Lookup need of PostgreSQL: a *pgxpool.Pool, a *pgx.Conn or a
// pgx.Tx. The catalog table, annals_schemas, comes with the event store's migrations
// (pkg/events/postgres).
type DB interface {
	Exec(ctx context.Context, sql string, arguments ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Registration is one row of the catalog table.
type Registration struct {
	// Fingerprint is stored as the bigint with the same 64 bits.
	Fingerprint    uint64
	FingerprintHex string
	Type           string
	Version        int
	// Schema is the Parsing Canonical Form.
	Schema       string
	RegisteredAt time.Time
}

// Register records every schema of the catalog in the catalog table. It is idempotent and safe
// to run from several processes at once: rows already there are left as they are. A
// fingerprint registered as another type or version, or a type and version registered with
// another fingerprint (a published schema edited in place), is ErrConflict.
func (c *Catalog) Register(ctx context.Context, db DB) error {
	n := len(c.infos)
	fps, types, versions, schemas := make([]int64, n), make([]string, n), make([]int32, n), make([]string, n)
	for i, in := range c.infos {
		fps[i], types[i], versions[i], schemas[i] = int64(in.Fingerprint), in.Type, int32(in.Version), in.Schema
	}
	if _, err := db.Exec(ctx, `insert into annals_schemas (fingerprint, type, version, schema)
		select * from unnest($1::bigint[], $2::text[], $3::int[], $4::text[])
		on conflict do nothing`, fps, types, versions, schemas); err != nil {
		return fmt.Errorf("register schemas: %w", err)
	}
	// A concurrent Register's rows are committed by now: the insert waited for them. Read
	// back what the table says about these fingerprints and types.
	rows, err := list(ctx, db, `where fingerprint = any($1) or type = any($2)`, fps, slices.Compact(slices.Clone(types)))
	if err != nil {
		return fmt.Errorf("register schemas: %w", err)
	}
	for _, r := range rows {
		if v, ok := c.byFingerprint[r.Fingerprint]; ok {
			if r.Type != v.typ || r.Version != v.version || r.Schema != v.canonical {
				return fmt.Errorf("register schemas: %w: fingerprint %s is registered as %s v%d, here it is %s v%d",
					ErrConflict, r.FingerprintHex, r.Type, r.Version, v.typ, v.version)
			}
			continue
		}
		if t, ok := c.types[r.Type]; ok && r.Version >= 1 && r.Version <= len(t.versions) {
			v := t.versions[r.Version-1]
			return fmt.Errorf("register schemas: %w: %s v%d is registered with fingerprint %s, here it has %s; a published schema must not change, add a version instead",
				ErrConflict, r.Type, r.Version, r.FingerprintHex, FormatFingerprint(v.fingerprint))
		}
		// A version this catalog does not have yet, registered by a newer writer.
	}
	return nil
}

// List returns the rows of the catalog table by type and version.
func List(ctx context.Context, db DB) ([]Registration, error) {
	rows, err := list(ctx, db, "")
	if err != nil {
		return nil, fmt.Errorf("list schemas: %w", err)
	}
	return rows, nil
}

// Lookup returns the row of the catalog table with the given fingerprint;
// ErrUnknownFingerprint when there is none.
func Lookup(ctx context.Context, db DB, fingerprint uint64) (Registration, error) {
	rows, err := list(ctx, db, "where fingerprint = $1", int64(fingerprint))
	if err != nil {
		return Registration{}, fmt.Errorf("look up schema %s: %w", FormatFingerprint(fingerprint), err)
	}
	if len(rows) == 0 {
		return Registration{}, fmt.Errorf("look up schema: %w: %s", ErrUnknownFingerprint, FormatFingerprint(fingerprint))
	}
	return rows[0], nil
}

func list(ctx context.Context, db DB, where string, args ...any) ([]Registration, error) {
	rows, err := db.Query(ctx, `select fingerprint, type, version, schema, registered_at
		from annals_schemas `+where+` order by type, version`, args...)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Registration, error) {
		var (
			r  Registration
			fp int64
		)
		err := row.Scan(&fp, &r.Type, &r.Version, &r.Schema, &r.RegisteredAt)
		r.Fingerprint = uint64(fp)
		r.FingerprintHex = FormatFingerprint(r.Fingerprint)
		return r, err
	})
	if out == nil {
		out = []Registration{}
	}
	return out, err
}
