package auditlog_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/services/auditor/auditlog"
)

func TestLog_HandleBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ms := messages(7, 250)
	e.appendAll(t, ms[:1], 1)
	e.appendAll(t, ms[1:], 37)
	if got := e.count(t); got != 250 {
		t.Fatalf("%d entries, want 250", got)
	}
	entries := e.all(t)
	for i, en := range entries {
		m := ms[i] // one lane: the log keeps the order of appends
		ev := m.Event
		if en.Seq != int64(i+1) {
			t.Fatalf("entry %d has seq %d", i, en.Seq)
		}
		if en.EventID != ev.EventID || en.Type != ev.Type || en.StreamID != ev.StreamID ||
			en.StreamVersion != ev.Version || en.GlobalPosition != ev.GlobalPosition || en.SchemaVersion != int64(ev.SchemaVersion) ||
			string(en.Data) != string(ev.Data) || !en.RecordedAt.Equal(ev.RecordedAt) ||
			en.CorrelationID != ev.CorrelationID || en.CausationID != ev.CausationID ||
			fmt.Sprint(en.Metadata) != fmt.Sprint(ev.Metadata) ||
			en.Topic != m.Topic || int(en.Partition) != m.Partition || en.Offset != m.Offset {
			t.Fatalf("entry %d:\n got %+v\nwant %+v from %s", i, en, ev, m)
		}
		if en.AuditedAt.IsZero() || time.Since(en.AuditedAt) > time.Minute {
			t.Errorf("entry %d audited at %v", i, en.AuditedAt)
		}
		if i == 0 && en.PrevHash != auditlog.Genesis {
			t.Errorf("the first entry's prev_hash is %s, want zeros", en.PrevHash)
		}
		if i > 0 && en.PrevHash != entries[i-1].Hash {
			t.Errorf("entry %d's prev_hash is not entry %d's hash", en.Seq, en.Seq-1)
		}
		if en.Hash != en.ComputeHash() {
			t.Errorf("entry %d's hash is not its content's", en.Seq)
		}
	}
	e.mustVerify(t, 250)
}

// A redelivered event is skipped, alone, in a batch, or repeated within a batch; the chain
// stays intact.
func TestLog_Redelivery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ms := messages(5, 100)
	e.appendAll(t, ms, 25)
	e.appendAll(t, ms, 25)       // every batch again
	e.appendAll(t, ms[40:41], 1) // one again
	again := append(messages(2, 10), ms[3], ms[7])
	again = append(again, again[0]) // a new event twice in one batch
	e.appendBatch(t, again)
	if got := e.count(t); got != 110 {
		t.Fatalf("%d entries, want 110", got)
	}
	e.mustVerify(t, 110)
	// The log keeps the first delivery: a later one from elsewhere changes nothing.
	moved := *ms[0]
	moved.Topic, moved.Offset = "audit.elsewhere", 999
	e.appendBatch(t, []*consume.Message{&moved})
	first := e.all(t)[0]
	if first.Topic != "audit.test" || first.Offset != 0 {
		t.Errorf("the first entry now says %s@%d", first.Topic, first.Offset)
	}
}

// Many appenders at once, over two pools (as two processes would), never fork the chain.
func TestLog_ConcurrentAppends(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	other, err := auditlog.RolePool(context.Background(), e.owner, "")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	second := &env{owner: e.owner, role: other, log: auditlog.New(other, auditlog.Options{})}
	const workers, batches, size = 12, 20, 8
	all := messages(50, workers*batches*size)
	var wg sync.WaitGroup
	for w := range workers {
		ee := e
		if w%2 == 1 {
			ee = second
		}
		mine := all[w*batches*size : (w+1)*batches*size]
		wg.Go(func() {
			for b := range batches {
				ms := mine[b*size : (b+1)*size]
				err := consume.PostgresUnit(ee.role)(context.Background(), func(ctx context.Context) error {
					if b%5 == 0 { // also one at a time, as the runtime's fallback does
						for _, m := range ms {
							if err := ee.log.Handle(ctx, m); err != nil {
								return err
							}
						}
						return nil
					}
					return ee.log.HandleBatch(ctx, ms)
				})
				if err != nil {
					t.Errorf("append: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	e.mustVerify(t, workers*batches*size)
}

// The events the log cannot store exactly are refused as Permanent, before anything is
// appended.
func TestLog_RefusesUnstorable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for name, spoil := range map[string]func(*consume.Message){
		"DataNotJSON":     func(m *consume.Message) { m.Event.Data = json.RawMessage(`{"a":`) },
		"DataNotUTF8":     func(m *consume.Message) { m.Event.Data = json.RawMessage("\"\xff\"") },
		"NULInCausation":  func(m *consume.Message) { m.Event.CausationID = "a\x00b" },
		"MetadataNotUTF8": func(m *consume.Message) { m.Event.Metadata = map[string]string{"k": "\xc3"} },
	} {
		ms := messages(1, 3)
		spoil(ms[1])
		err := consume.PostgresUnit(e.role)(context.Background(), func(ctx context.Context) error {
			return e.log.HandleBatch(ctx, ms)
		})
		if !consume.IsPermanent(err) {
			t.Errorf("%s: %v, want a permanent error", name, err)
		}
	}
	if got := e.count(t); got != 0 {
		t.Errorf("%d entries appended", got)
	}
	if err := e.log.HandleBatch(context.Background(), messages(1, 1)); !consume.IsPermanent(err) {
		t.Errorf("outside a unit: %v, want a permanent error", err)
	}
}

// The auditor's role may insert and select, and PostgreSQL refuses it anything else on the
// log.
func TestRole_OnlyInsertsAndSelects(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.appendAll(t, messages(2, 10), 10)
	ctx := context.Background()
	var user string
	if err := e.role.QueryRow(ctx, `select current_user`).Scan(&user); err != nil || user != auditlog.DefaultRole {
		t.Fatalf("the role pool runs as %q (%v), want %s", user, err, auditlog.DefaultRole)
	}
	var idle string
	if err := e.role.QueryRow(ctx, `show idle_in_transaction_session_timeout`).Scan(&idle); err != nil || idle != "1min" {
		t.Errorf("idle_in_transaction_session_timeout %q (%v), want 1min", idle, err)
	}
	for _, sql := range []string{
		`update annals_audit_log set event_type = 'Forged' where seq = 3`,
		`delete from annals_audit_log where seq = 3`,
		`truncate annals_audit_log`,
		`alter table annals_audit_log disable trigger user`,
	} {
		_, err := e.role.Exec(ctx, sql)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || (pe.Code != "42501" && pe.Code != "42809") {
			t.Errorf("%s as %s: %v, want permission denied", sql, auditlog.DefaultRole, err)
		} else if pe.Code == "42501" && !strings.Contains(pe.Message, "permission denied") && !strings.Contains(pe.Message, "must be owner") {
			t.Errorf("%s: %v", sql, pe)
		}
	}
	for _, p := range []string{"INSERT", "SELECT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"} {
		var has bool
		if err := e.owner.QueryRow(ctx, `select has_table_privilege($1, 'annals_audit_log', $2)`, auditlog.DefaultRole, p).Scan(&has); err != nil {
			t.Fatal(err)
		}
		if want := p == "INSERT" || p == "SELECT"; has != want {
			t.Errorf("%s has %s: %v, want %v", auditlog.DefaultRole, p, has, want)
		}
	}
	if got := e.count(t); got != 10 {
		t.Errorf("%d entries, want 10", got)
	}
	e.mustVerify(t, 10)
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	// Again, and several at once: nothing to apply, grants redone without errors.
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			applied, err := auditlog.Migrate(ctx, e.owner, nil, "")
			if err != nil || len(applied) != 0 {
				t.Errorf("migrate again: %v, %v", applied, err)
			}
		})
	}
	wg.Wait()
	applied, latest, err := auditlog.SchemaVersion(ctx, e.owner)
	if err != nil || applied != latest || latest < 1 {
		t.Errorf("schema version %d of %d: %v", applied, latest, err)
	}
	var table string
	if err := e.owner.QueryRow(ctx, `select to_regclass($1)::text`, auditlog.MigrationsTable).Scan(&table); err != nil || table != auditlog.MigrationsTable {
		t.Errorf("migrations table %q: %v", table, err)
	}
	// A role that does not exist yet is created, NOLOGIN.
	role := "annals_auditor_test_" + strings.ReplaceAll(fmt.Sprint(time.Now().UnixNano()), "-", "")
	t.Cleanup(func() {
		admin := e.owner
		admin.Exec(context.Background(), `revoke all on annals_audit_log, annals_consumer_blocks from `+pgx.Identifier{role}.Sanitize())
		admin.Exec(context.Background(), `revoke usage on schema `+pgx.Identifier{currentSchema(t, e)}.Sanitize()+` from `+pgx.Identifier{role}.Sanitize())
		admin.Exec(context.Background(), `drop role if exists `+pgx.Identifier{role}.Sanitize())
	})
	if _, err := auditlog.Migrate(ctx, e.owner, nil, role); err != nil {
		t.Fatal(err)
	}
	var login bool
	if err := e.owner.QueryRow(ctx, `select rolcanlogin from pg_roles where rolname = $1`, role).Scan(&login); err != nil || login {
		t.Errorf("role %s: login %v, %v; want NOLOGIN", role, login, err)
	}
	p, err := auditlog.RolePool(ctx, e.owner, role)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var n int
	if err := p.QueryRow(ctx, `select count(*) from annals_audit_log`).Scan(&n); err != nil {
		t.Errorf("select as %s: %v", role, err)
	}
	if _, err := p.Exec(ctx, `delete from annals_audit_log`); err == nil {
		t.Errorf("delete as %s succeeded", role)
	}
}

func currentSchema(tb testing.TB, e *env) string {
	tb.Helper()
	var s string
	if err := e.owner.QueryRow(context.Background(), `select current_schema()`).Scan(&s); err != nil {
		tb.Fatal(err)
	}
	return s
}

// Append stores what it hashed: times with nanoseconds and metadata left nil still verify.
func TestLog_AppendNormalises(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	en := auditlog.Entry{EventID: messages(1, 1)[0].Event.EventID, Type: "UserCreated", StreamID: "user-x",
		Data: json.RawMessage(`{"a": 1}`), RecordedAt: time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("CET", 3600)),
		Topic: "annals.user"}
	err := consume.PostgresUnit(e.role)(context.Background(), func(ctx context.Context) error {
		n, err := e.log.Append(ctx, consume.Tx(ctx), []auditlog.Entry{en})
		if err == nil && n != 1 {
			err = fmt.Errorf("appended %d", n)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	e.mustVerify(t, 1)
	got := e.all(t)[0]
	if !got.RecordedAt.Equal(en.RecordedAt.Truncate(time.Microsecond)) || got.Metadata == nil || string(got.Data) != `{"a": 1}` {
		t.Errorf("stored %+v", got)
	}
}

// TestMigrate_Owner: the log belongs to a role of its own, so that the database user the
// services share (here a plain role with CREATE on the schema and the auditor's role, as an
// administrator's `annals audit migrate -member` leaves it) cannot disable the trigger,
// truncate, replace the trigger's function or take the table; its own Migrate at start finds
// everything in place and changes nothing.
func TestMigrate_Owner(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	var table, function string
	if err := e.owner.QueryRow(ctx, `select pg_get_userbyid(relowner) from pg_class where oid = 'annals_audit_log'::regclass`).Scan(&table); err != nil {
		t.Fatal(err)
	}
	if err := e.owner.QueryRow(ctx, `select pg_get_userbyid(proowner) from pg_proc where oid = 'annals_audit_log_append_only()'::regprocedure`).Scan(&function); err != nil {
		t.Fatal(err)
	}
	if table != auditlog.Owner || function != auditlog.Owner {
		t.Errorf("the table belongs to %s and its trigger function to %s, want %s", table, function, auditlog.Owner)
	}

	shared := "annals_shared_test_" + strings.ReplaceAll(fmt.Sprint(time.Now().UnixNano()), "-", "")
	id, sch := pgx.Identifier{shared}.Sanitize(), pgx.Identifier{currentSchema(t, e)}.Sanitize()
	for _, s := range []string{`create role ` + id + ` nologin`, `grant usage, create on schema ` + sch + ` to ` + id} {
		if _, err := e.owner.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		e.owner.Exec(context.Background(), `drop owned by `+id)
		e.owner.Exec(context.Background(), `drop role if exists `+id)
	})
	if err := auditlog.GrantMember(ctx, e.owner, "", shared); err != nil {
		t.Fatal(err)
	}
	pool, err := auditlog.RolePool(ctx, e.owner, shared)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := auditlog.Migrate(ctx, pool, nil, ""); err != nil {
		t.Fatalf("migrate as the shared user, with everything in place: %v", err)
	}
	for _, sql := range []string{
		`alter table annals_audit_log disable trigger user`,
		`truncate annals_audit_log`,
		`delete from annals_audit_log`,
		`create or replace function annals_audit_log_append_only() returns trigger language plpgsql as $$ begin return old; end $$`,
		`alter table annals_audit_log owner to ` + id,
		`grant ` + pgx.Identifier{auditlog.Owner}.Sanitize() + ` to current_user`,
	} {
		_, err := pool.Exec(ctx, sql)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" {
			t.Errorf("%s as the shared user: %v, want permission denied", sql, err)
		}
	}
}
