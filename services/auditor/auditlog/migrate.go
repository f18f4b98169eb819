package auditlog

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/pkg/events/postgres"
)

//go:embed migrations/*.sql
var migrations embed.FS

// MigrationsTable records which of the auditor's migrations have been applied. It is not the
// event store's table: the two schemas are migrated independently.
const MigrationsTable = "annals_auditor_migrations"

// DefaultRole is the database role the auditor runs as after its migrations.
const DefaultRole = "annals_auditor"

// migrationLockID is the advisory lock that serialises concurrent Migrate calls. It differs
// from the event store's and the projector's, so that none waits for another.
const migrationLockID int64 = 0x616e6e616c7361 // "annalsa"

// MigrationResult is one migration that Migrate applied.
type MigrationResult = postgres.MigrationResult

var schema = postgres.MigrationSet{Name: "the audit log", FS: migrations, Dir: "migrations", Table: MigrationsTable, LockID: migrationLockID}

// Migrate applies the embedded migrations of the audit log that the database does not have
// yet, each in its own transaction, and then grants role (DefaultRole when "") what the
// auditor needs and nothing more. Several auditors may call it at once: advisory locks let
// one apply the migrations and grants while the others wait.
//
// The grants, applied on every call so that a changed role or a restored database gets them:
// the role is created (NOLOGIN) when absent, and the connecting user made a member of it
// unless it is one already (a superuser is); the role gets USAGE on the current schema,
// exactly INSERT and SELECT on annals_audit_log (any other privilege it had there is revoked),
// and INSERT, SELECT, UPDATE and DELETE on annals_consumer_blocks, the consumer runtime's
// table of blocked streams, which a redrive moves on and releases (the event store's
// migrations create it, so they must have run).
func Migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger, role string) ([]MigrationResult, error) {
	if role == "" {
		role = DefaultRole
	}
	out, err := schema.Up(ctx, pool, log)
	if err != nil {
		return nil, err
	}
	if err := grant(ctx, pool, role); err != nil {
		return out, err
	}
	return out, nil
}

// grant creates the role when absent and grants it the auditor's privileges, in one
// transaction under the migration lock (concurrent GRANTs on one object can fail with "tuple
// concurrently updated", and concurrent CREATE ROLEs with a duplicate).
func grant(ctx context.Context, pool *pgxpool.Pool, role string) error {
	r := pgx.Identifier{role}.Sanitize()
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `select pg_advisory_xact_lock($1)`, migrationLockID); err != nil {
			return fmt.Errorf("audit log grants: %w", err)
		}
		var exists, member bool
		var schema string
		if err := tx.QueryRow(ctx, `select exists (select from pg_roles where rolname = $1), current_schema()`, role).
			Scan(&exists, &schema); err != nil {
			return fmt.Errorf("audit log grants: %w", err)
		}
		if !exists {
			// Roles belong to the cluster: an auditor on another database may create it at the
			// same moment, which the savepoint turns into "it exists".
			err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
				_, err := sp.Exec(ctx, `create role `+r+` nologin`)
				return err
			})
			var pe *pgconn.PgError
			if err != nil && !(errors.As(err, &pe) && (pe.Code == "42710" || pe.Code == "23505")) {
				return fmt.Errorf("create role %s (the database user needs CREATEROLE, or create it beforehand): %w", role, err)
			}
		}
		if err := tx.QueryRow(ctx, `select pg_has_role(current_user, $1, 'MEMBER')`, role).Scan(&member); err != nil {
			return fmt.Errorf("audit log grants: %w", err)
		}
		stmts := []string{
			`grant usage on schema ` + pgx.Identifier{schema}.Sanitize() + ` to ` + r,
			`revoke all on table annals_audit_log from ` + r,
			`grant insert, select on table annals_audit_log to ` + r,
			`grant insert, select, update, delete on table annals_consumer_blocks to ` + r,
		}
		if !member {
			stmts = append(stmts, `grant `+r+` to current_user`)
		}
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("audit log grants: %s: %w", s, err)
			}
		}
		return nil
	})
}

// SchemaVersion reports the newest applied migration of the audit log and the newest one
// embedded.
func SchemaVersion(ctx context.Context, pool *pgxpool.Pool) (applied, latest int64, err error) {
	return schema.Version(ctx, pool)
}

// RolePool opens a pool like pool (same server, user, run-time parameters and size) whose
// connections switch to role (DefaultRole when "") as soon as they connect, so that whatever
// runs on it has the role's privileges only: on the audit log, INSERT and SELECT. Its
// sessions also end a transaction left idle for a minute (idle_in_transaction_session_timeout,
// unless pool's parameters set it), so that a hung appender cannot hold the chain's lock for
// ever. The caller closes it. Migrate must have granted the role.
func RolePool(ctx context.Context, pool *pgxpool.Pool, role string) (*pgxpool.Pool, error) {
	if role == "" {
		role = DefaultRole
	}
	cfg := pool.Config()
	// A transaction that holds the chain's lock and then hangs (a frozen process) would stop
	// every other appender: PostgreSQL ends it after a minute of idling instead.
	if _, ok := cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"]; !ok {
		cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = "60s"
	}
	setRole := `set role ` + pgx.Identifier{role}.Sanitize()
	after := cfg.AfterConnect
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		if after != nil {
			if err := after(ctx, conn); err != nil {
				return err
			}
		}
		if _, err := conn.Exec(ctx, setRole); err != nil {
			return fmt.Errorf("switch to role %s: %w", role, err)
		}
		return nil
	}
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pool as role %s: %w", role, err)
	}
	return p, nil
}
