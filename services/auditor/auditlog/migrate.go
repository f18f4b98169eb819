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
// The grants, checked on every call and applied when anything differs, so that a changed
// role or a restored database gets them:
//   - the table annals_audit_log and its trigger function belong to Owner (NOLOGIN, created
//     when absent), a role that no service uses, so that the database user the services share
//     cannot ALTER, DISABLE TRIGGER, TRUNCATE or replace the function unless it is a superuser
//     or a member of Owner. The connecting user becomes a member of Owner for the transaction
//     that hands the table over, and stops being one before it commits;
//   - role is created (NOLOGIN) when absent, and the connecting user made a member of it
//     unless it is one already (a superuser is); it gets USAGE on the current schema, exactly
//     INSERT and SELECT on annals_audit_log (any other privilege it had there is revoked), and
//     INSERT, SELECT, UPDATE and DELETE on annals_consumer_blocks, the consumer runtime's
//     table of blocked streams, which a redrive moves on and releases (the event store's
//     migrations create it, so they must have run), and SELECT on MigrationsTable.
//
// Applying them takes a superuser or a user with CREATEROLE that owns the table or is a
// member of Owner; when everything is in place already, Migrate changes nothing and needs
// none of that, so that the auditor can run as a user without CREATEROLE once an
// administrator has run `annals audit migrate`.
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

// Owner is the role that owns the audit log's table and trigger function.
const Owner = "annals_audit_owner"

// GrantMember makes the database user member a member of role (DefaultRole when ""), so that
// an auditor connecting as member can switch to it: `annals audit migrate -member` run by an
// administrator, for an auditor whose own user cannot grant it.
func GrantMember(ctx context.Context, pool *pgxpool.Pool, role, member string) error {
	if role == "" {
		role = DefaultRole
	}
	if _, err := pool.Exec(ctx, `grant `+pgx.Identifier{role}.Sanitize()+` to `+pgx.Identifier{member}.Sanitize()); err != nil {
		return fmt.Errorf("grant %s to %s: %w", role, member, err)
	}
	return nil
}

// grantState is what grant finds in the database.
type grantState struct {
	schema                     string
	roleExists, ownerExists    bool
	tableOwner, functionOwner  string
	member, ownerMember, ready bool
}

// grantStateSQL reads grantState for $1 (the role) and $2 (Owner); ready is true when the
// role's privileges are exactly those grant gives.
const grantStateSQL = `select current_schema(),
	exists (select from pg_roles where rolname = $1), exists (select from pg_roles where rolname = $2),
	(select pg_get_userbyid(relowner) from pg_class where oid = 'annals_audit_log'::regclass),
	(select pg_get_userbyid(proowner) from pg_proc where oid = 'annals_audit_log_append_only()'::regprocedure),
	case when exists (select from pg_roles where rolname = $1) then pg_has_role(current_user, $1, 'MEMBER') else false end,
	case when exists (select from pg_roles where rolname = $2) then pg_has_role(current_user, $2, 'MEMBER') else false end,
	case when exists (select from pg_roles where rolname = $1) then
		has_schema_privilege($1, current_schema(), 'USAGE')
		and has_table_privilege($1, 'annals_audit_log', 'INSERT') and has_table_privilege($1, 'annals_audit_log', 'SELECT')
		and not has_table_privilege($1, 'annals_audit_log', 'UPDATE') and not has_table_privilege($1, 'annals_audit_log', 'DELETE')
		and not has_table_privilege($1, 'annals_audit_log', 'TRUNCATE') and not has_table_privilege($1, 'annals_audit_log', 'REFERENCES')
		and not has_table_privilege($1, 'annals_audit_log', 'TRIGGER')
		and has_table_privilege($1, 'annals_consumer_blocks', 'INSERT, SELECT, UPDATE, DELETE')
		and has_table_privilege($1, '` + MigrationsTable + `', 'SELECT')
	else false end`

// grant creates the roles when absent, hands the table to Owner and grants role the
// auditor's privileges, in one transaction under the migration lock (concurrent GRANTs on one
// object can fail with "tuple concurrently updated", and concurrent CREATE ROLEs with a
// duplicate). When all is in place it changes nothing.
func grant(ctx context.Context, pool *pgxpool.Pool, role string) error {
	r, o := pgx.Identifier{role}.Sanitize(), pgx.Identifier{Owner}.Sanitize()
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `select pg_advisory_xact_lock($1)`, migrationLockID); err != nil {
			return fmt.Errorf("audit log grants: %w", err)
		}
		var st grantState
		if err := tx.QueryRow(ctx, grantStateSQL, role, Owner).Scan(&st.schema, &st.roleExists, &st.ownerExists,
			&st.tableOwner, &st.functionOwner, &st.member, &st.ownerMember, &st.ready); err != nil {
			return fmt.Errorf("audit log grants: %w", err)
		}
		if st.ready && st.member && st.tableOwner == Owner && st.functionOwner == Owner {
			return nil
		}
		for _, name := range []string{role, Owner} {
			if err := createRole(ctx, tx, name); err != nil {
				return err
			}
		}
		var stmts []string
		if !st.ownerMember {
			// For this transaction only: ALTER ... OWNER TO and the grants on the table take a
			// member of the new owner, which the services' user must not stay.
			stmts = append(stmts, `grant `+o+` to current_user`)
		}
		sch := pgx.Identifier{st.schema}.Sanitize()
		stmts = append(stmts,
			`grant usage, create on schema `+sch+` to `+o,
			`alter table annals_audit_log owner to `+o,
			`alter function annals_audit_log_append_only() owner to `+o,
			`grant usage on schema `+sch+` to `+r,
			`revoke all on table annals_audit_log from `+r,
			`grant insert, select on table annals_audit_log to `+r,
			`grant insert, select, update, delete on table annals_consumer_blocks to `+r,
			// So that an auditor whose user did not apply the migrations can see that they are.
			`grant select on table `+MigrationsTable+` to `+r,
		)
		if !st.member {
			stmts = append(stmts, `grant `+r+` to current_user`)
		}
		if !st.ownerMember {
			stmts = append(stmts, `revoke `+o+` from current_user`)
		}
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("audit log grants (run `annals audit migrate` as a superuser or a user with CREATEROLE): %s: %w", s, err)
			}
		}
		return nil
	})
}

// createRole creates the NOLOGIN role name when absent. Roles belong to the cluster: an
// auditor on another database may create it at the same moment, which the savepoint turns
// into "it exists".
func createRole(ctx context.Context, tx pgx.Tx, name string) error {
	var exists bool
	if err := tx.QueryRow(ctx, `select exists (select from pg_roles where rolname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("audit log grants: %w", err)
	}
	if exists {
		return nil
	}
	err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
		_, err := sp.Exec(ctx, `create role `+pgx.Identifier{name}.Sanitize()+` nologin`)
		return err
	})
	var pe *pgconn.PgError
	if err != nil && !(errors.As(err, &pe) && (pe.Code == "42710" || pe.Code == "23505")) {
		return fmt.Errorf("create role %s (the database user needs CREATEROLE, or create it beforehand): %w", name, err)
	}
	return nil
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
