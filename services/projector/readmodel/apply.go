package readmodel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

// Group is the consumer group of the projector when none is named (a deployment names its
// own, <prefix>-projector), and the one its inbox rows had before they carried the prefix.
const Group = "annals-projector"

// ErrGap: the event's stream has earlier events that the read model has not applied yet. The
// event is not applied; retrying after the earlier ones arrive will apply it.
var ErrGap = errors.New("gap in the stream")

// Options tune a Projection.
type Options struct {
	// BatchSize is how many events a rebuild reads and applies per round trip
	// (PROJECTION_BATCH_SIZE); DefaultBatchSize when 0.
	BatchSize int
	// Metrics, when set, receive the end-to-end latency of the events the consumer applies.
	Metrics *Metrics
	// Keys opens the encrypted email and name of the user events (a *shred.Keyring on the
	// writer's key store and key-encryption key). Nil keeps the values as the events carry
	// them: only for a deployment that records personal data in clear.
	Keys Decrypter
}

// DefaultBatchSize is the rebuild's page size when Options.BatchSize is 0.
const DefaultBatchSize = 2000

// Projection keeps the user and order read models: it applies events, answers queries and
// rebuilds the models from the event store.
type Projection struct {
	pool    *pgxpool.Pool
	batch   int
	metrics *Metrics
	keys    Decrypter
	// inbox records the events HandleBatch applies: under Group, or the group of the
	// Consumer made from it.
	inbox consume.Inbox
	// pollHook, when set, runs before each pause of a read-your-writes wait; readHook between
	// a query's read of the pointer and its query; switchHook in a switch's transaction once
	// it holds the switch lock, with the transaction's backend pid (tests).
	pollHook, readHook func()
	switchHook         func(pid int)
	// reprocessChunk, when set, is the streams a reprocess rebuilds per transaction (tests).
	reprocessChunk int
	wake           wakeups
	// polls are the first and the longest pause of a read-your-writes wait.
	polls [2]time.Duration
}

var _ consume.Handler = (*Projection)(nil)

// New returns the Projection on pool. The read models must be migrated (Migrate).
func New(pool *pgxpool.Pool, opts Options) *Projection {
	p := &Projection{pool: pool, batch: opts.BatchSize, metrics: opts.Metrics, keys: opts.Keys, polls: [2]time.Duration{firstPoll, maxPoll},
		inbox: consume.Inbox{Group: Group}}
	if p.batch <= 0 {
		p.batch = DefaultBatchSize
	}
	return p
}

// Handle applies the message's event in the transaction of the PostgresUnit it runs in; it
// does not record the event in an inbox, which the handler of the Consumer does (inboxed), and
// a handler chained behind the inbox's middleware has done.
func (p *Projection) Handle(ctx context.Context, m *consume.Message) error {
	tx := consume.Tx(ctx)
	if tx == nil {
		return consume.Permanent(fmt.Errorf("projector: %s runs outside a PostgreSQL unit", m))
	}
	ctx, span := tracer.Start(ctx, "apply "+m.Event.Type)
	err := p.Apply(ctx, tx, m.Event)
	endSpan(span, err)
	if err != nil {
		return err
	}
	noteApplied(ctx, m.Event.StreamID, m.Event.RecordedAt)
	return nil
}

// Apply applies one event to the live read models inside tx, a READ COMMITTED transaction, in
// two round trips: it reads the live generation (holding the switch lock shared until tx ends,
// see lockedGeneration and Rebuild) and runs the event's one statement, which changes the
// stream's row only if it is at the event's version minus one. Only when that changes nothing
// does a third round trip read the row's version, to tell why.
//
// An event at or below the row's version was applied before: Apply skips it and returns nil.
// An event further ahead returns an error wrapping ErrGap and changes nothing. Malformed data,
// an event type the projector does not know in a category it models, or an event its stream's
// state refuses (an item that is not in the order) returns a consume.Permanent error. Events
// of other categories are ignored.
//
// The statement is atomic; after an error the caller rolls tx back, as a PostgresUnit does.
func (p *Projection) Apply(ctx context.Context, tx pgx.Tx, e events.Envelope) error {
	s, ok, err := p.plan(ctx, e)
	if err != nil || !ok {
		return err
	}
	g, err := lockedGeneration(ctx, tx)
	if err != nil {
		return err
	}
	_, err = s.run(ctx, tx, g)
	return err
}

// kind is the statement an event runs.
type kind uint8

const (
	userCreated kind = iota
	userProfileUpdated
	userDeactivated
	userErased
	orderCreated
	itemAdded
	itemRemoved
	orderConfirmed
	orderCancelled
	orderShipped
	numKinds
)

const (
	usersTable = iota
	ordersTable
)

func (k kind) table() int {
	if k < orderCreated {
		return usersTable
	}
	return ordersTable
}

// applySQL holds each kind's statement. It takes its rows as arrays, one element per event,
// the row's id and the event's version first: Apply passes one event, a rebuild many, to the
// same statement. A creation inserts version 0 unless the row exists; every other statement
// changes a row only when it is at the event's version minus one and the event fits its state.
// An event whose statement changes no row is a duplicate, a gap or a refusal, which
// step.explain tells apart. One statement never gets two events of one stream.
//
// An update finds its rows with "id = any($1)" besides the join with the arrays: the join
// alone lets the server choose a hash join over a sequential scan of the table, which it does
// for a table that is small when a connection makes the statement's generic plan, and keeps
// doing as the table grows. The condition on the primary key makes every plan look the rows up
// by their ids.
var applySQL = [numKinds]string{
	userCreated: `insert into {users} (id, email, name, status, created_at, updated_at, version)
		select x.id, x.email, x.name, 'active', x.at, x.at, x.version
		from unnest($1::uuid[], $2::int8[], $3::text[], $4::text[], $5::timestamptz[]) as x(id, version, email, name, at)
		on conflict (id) do nothing`,
	userProfileUpdated: `update {users} u set name = coalesce(x.name, u.name), email = coalesce(x.email, u.email),
			updated_at = x.at, version = x.version
		from unnest($1::uuid[], $2::int8[], $3::text[], $4::text[], $5::timestamptz[]) as x(id, version, name, email, at)
		where u.id = any($1) and u.id = x.id and u.version = x.version - 1`,
	userDeactivated: `update {users} u set status = 'deactivated', deactivation_reason = x.reason,
			deactivated_at = x.at, updated_at = x.at, version = x.version
		from unnest($1::uuid[], $2::int8[], $3::text[], $4::timestamptz[]) as x(id, version, reason, at)
		where u.id = any($1) and u.id = x.id and u.version = x.version - 1`,
	// The user's personal data is erased: the row keeps the user, with an empty email and
	// name, as the writer's aggregate does.
	userErased: `update {users} u set email = '', name = '', updated_at = x.at, version = x.version
		from unnest($1::uuid[], $2::int8[], $3::timestamptz[]) as x(id, version, at)
		where u.id = any($1) and u.id = x.id and u.version = x.version - 1`,
	orderCreated: `insert into {orders} (id, user_id, status, items, total_cents, item_count, created_at, updated_at, version)
		select x.id, x.user_id, 'pending', x.items::jsonb, x.total, x.n, x.at, x.at, x.version
		from unnest($1::uuid[], $2::int8[], $3::uuid[], $4::text[], $5::int8[], $6::int8[], $7::timestamptz[])
			as x(id, version, user_id, items, total, n, at)
		on conflict (id) do nothing`,
	// x.line is the line's total; the order's total must stay within bigint.
	itemAdded: `update {orders} o set items = o.items || jsonb_build_array(x.item::jsonb),
			total_cents = o.total_cents + x.line, item_count = o.item_count + 1, updated_at = x.at, version = x.version
		from unnest($1::uuid[], $2::int8[], $3::text[], $4::int8[], $5::timestamptz[]) as x(id, version, item, line, at)
		where o.id = any($1) and o.id = x.id and o.version = x.version - 1 and o.total_cents <= 9223372036854775807 - x.line`,
	// Removes the first line with the item id, as the writer's aggregate does.
	itemRemoved: `update {orders} o set
			items = o.items - (select (t.ord - 1)::int from jsonb_array_elements(o.items) with ordinality t(i, ord)
				where t.i->>'id' = x.item_id order by t.ord limit 1),
			total_cents = o.total_cents - (select (t.i->>'price_cents')::bigint * (t.i->>'quantity')::bigint
				from jsonb_array_elements(o.items) with ordinality t(i, ord)
				where t.i->>'id' = x.item_id order by t.ord limit 1),
			item_count = o.item_count - 1, updated_at = x.at, version = x.version
		from unnest($1::uuid[], $2::int8[], $3::text[], $4::timestamptz[]) as x(id, version, item_id, at)
		where o.id = any($1) and o.id = x.id and o.version = x.version - 1 and o.items @> jsonb_build_array(jsonb_build_object('id', x.item_id))`,
	orderConfirmed: `update {orders} o set status = 'confirmed', confirmed_at = x.at, updated_at = x.at, version = x.version
		from unnest($1::uuid[], $2::int8[], $3::int8[], $4::timestamptz[]) as x(id, version, total, at)
		where o.id = any($1) and o.id = x.id and o.version = x.version - 1 and o.total_cents = x.total`,
	orderCancelled: `update {orders} o set status = 'cancelled', cancellation_reason = x.reason, cancelled_at = x.at,
			updated_at = x.at, version = x.version
		from unnest($1::uuid[], $2::int8[], $3::text[], $4::timestamptz[]) as x(id, version, reason, at)
		where o.id = any($1) and o.id = x.id and o.version = x.version - 1`,
	orderShipped: `update {orders} o set status = 'shipped', shipped_at = x.at, updated_at = x.at, version = x.version
		from unnest($1::uuid[], $2::int8[], $3::timestamptz[]) as x(id, version, at)
		where o.id = any($1) and o.id = x.id and o.version = x.version - 1`,
}

// columns turns the rows of steps of one kind into the statement's arguments: one array per
// column, typed after the first step's values.
func columns(steps []step) []any {
	rows := make([][]any, len(steps))
	for i, s := range steps {
		rows[i] = s.args()
	}
	out := make([]any, len(rows[0]))
	for c := range out {
		switch rows[0][c].(type) {
		case uuid.UUID:
			col := make([][16]byte, len(rows)) // pgx encodes [16]byte directly
			for i, r := range rows {
				col[i] = r[c].(uuid.UUID)
			}
			out[c] = col
		case int64:
			out[c] = column[int64](rows, c)
		case string:
			out[c] = column[string](rows, c)
		case *string:
			out[c] = column[*string](rows, c)
		case time.Time:
			out[c] = column[time.Time](rows, c)
		default:
			panic(fmt.Sprintf("readmodel: argument %d of %s is a %T", c, steps[0].e.Type, rows[0][c]))
		}
	}
	return out
}

func column[T any](rows [][]any, c int) []T {
	col := make([]T, len(rows))
	for i, r := range rows {
		col[i] = r[c].(T)
	}
	return col
}

// step is what one event does: a row of its kind's statement (args), or a change of its
// stream's row in the batch path (fold.go).
type step struct {
	e    events.Envelope
	kind kind
	id   uuid.UUID // the stream's id, which is its row's
	at   time.Time // the event's recording time, in UTC
	c    change
	// refusal says why the event does not fit its stream when the row is at the event's
	// version minus one and the statement still changed nothing.
	refusal string
}

// change is what an event's data sets; which fields count depends on the kind.
type change struct {
	email, name *string   // userCreated (both set), userProfileUpdated (those it changes)
	reason      string    // userDeactivated, orderCancelled
	user        uuid.UUID // orderCreated
	// items is, for orderCreated, the order's lines as a JSON array and, for itemAdded, the
	// line as a JSON object.
	items string
	lines int64 // orderCreated: the number of lines
	// cents is, for orderCreated and orderConfirmed, the order's total and, for itemAdded, the
	// line's total.
	cents  int64
	itemID string // itemRemoved
}

// args is the step's row of its kind's statement in applySQL, in the statement's column
// order: uuid.UUID, int64, string, *string (NULL when nil) or time.Time.
func (s step) args() []any {
	switch s.kind {
	case userCreated:
		return []any{s.id, s.e.Version, *s.c.email, *s.c.name, s.at}
	case userProfileUpdated:
		return []any{s.id, s.e.Version, s.c.name, s.c.email, s.at}
	case userDeactivated, orderCancelled:
		return []any{s.id, s.e.Version, s.c.reason, s.at}
	case orderCreated:
		return []any{s.id, s.e.Version, s.c.user, s.c.items, s.c.cents, s.c.lines, s.at}
	case itemAdded:
		return []any{s.id, s.e.Version, s.c.items, s.c.cents, s.at}
	case itemRemoved:
		return []any{s.id, s.e.Version, s.c.itemID, s.at}
	case orderConfirmed:
		return []any{s.id, s.e.Version, s.c.cents, s.at}
	default: // userErased, orderShipped
		return []any{s.id, s.e.Version, s.at}
	}
}

// plan checks the event and turns it into a step; ok is false for an event of a category the
// projector does not model. Every error is Permanent.
func plan(e events.Envelope) (s step, ok bool, err error) {
	category := e.Category
	if category == "" {
		category = events.Category(e.StreamID)
	}
	if category != domain.UserCategory && category != domain.OrderCategory {
		return s, false, nil
	}
	defer func() {
		if err != nil {
			err = consume.Permanent(fmt.Errorf("%s %s@%d: %w", e.Type, e.StreamID, e.Version, err))
		}
	}()
	id, err := domain.StreamUUID(e.StreamID, category)
	if err != nil {
		return s, false, err
	}
	if e.Version < 0 {
		return s, false, fmt.Errorf("negative version")
	}
	s = step{e: e, id: id, at: e.RecordedAt.UTC()}
	switch e.Type {
	case domain.EventUserCreated:
		var d domain.UserCreated
		if err := decode(e, &d); err != nil {
			return s, false, err
		}
		if d.UserID != "" && d.UserID != id.String() {
			return s, false, fmt.Errorf("user_id %q is not the stream's id", d.UserID)
		}
		if err := d.Check(); err != nil {
			return s, false, err
		}
		s.kind, s.c.email, s.c.name = userCreated, &d.Email, &d.Name
	case domain.EventUserProfileUpdated:
		var d domain.UserProfileUpdated
		if err := decode(e, &d); err != nil {
			return s, false, err
		}
		s.kind, s.c.name, s.c.email = userProfileUpdated, d.Name, d.Email
	case domain.EventUserDeactivated:
		var d domain.UserDeactivated
		if err := decode(e, &d); err != nil {
			return s, false, err
		}
		s.kind, s.c.reason = userDeactivated, d.Reason
	case domain.EventUserPersonalDataErased:
		var d domain.UserPersonalDataErased
		if err := decode(e, &d); err != nil {
			return s, false, err
		}
		if d.UserID != "" && d.UserID != id.String() {
			return s, false, fmt.Errorf("user_id %q is not the stream's id", d.UserID)
		}
		if d.ErasedAt.IsZero() { // as the writer's aggregate refuses it
			return s, false, fmt.Errorf("data needs erased_at")
		}
		s.kind = userErased
	case domain.EventOrderCreated:
		var d domain.OrderCreated
		if err := decode(e, &d); err != nil {
			return s, false, err
		}
		if d.OrderID != "" && d.OrderID != id.String() {
			return s, false, fmt.Errorf("order_id %q is not the stream's id", d.OrderID)
		}
		user, err := domain.CanonicalUUID(d.UserID)
		if err != nil {
			return s, false, fmt.Errorf("user_id: %w", err)
		}
		if d.Items == nil {
			d.Items = []domain.Item{}
		}
		total, err := d.Check()
		if err != nil {
			return s, false, err
		}
		items, err := json.Marshal(d.Items)
		if err != nil {
			return s, false, err
		}
		s.kind, s.c.user, s.c.items, s.c.cents, s.c.lines = orderCreated, user, string(items), total, int64(len(d.Items))
	case domain.EventItemAdded:
		var d domain.ItemAdded
		if err := decode(e, &d); err != nil {
			return s, false, err
		}
		if err := d.Item.Check(); err != nil {
			return s, false, fmt.Errorf("item: %w", err)
		}
		line, _ := d.Item.LineTotal() // Check made sure it fits
		item, err := json.Marshal(d.Item)
		if err != nil {
			return s, false, err
		}
		s.kind, s.c.items, s.c.cents = itemAdded, string(item), line
		s.refusal = "the order's total would overflow"
	case domain.EventItemRemoved:
		var d domain.ItemRemoved
		if err := decode(e, &d); err != nil {
			return s, false, err
		}
		if d.ItemID == "" || strings.ContainsRune(d.ItemID, 0) {
			return s, false, fmt.Errorf("item_id is empty or has a NUL character")
		}
		s.kind, s.c.itemID = itemRemoved, d.ItemID
		s.refusal = fmt.Sprintf("the order has no item %q", d.ItemID)
	case domain.EventOrderConfirmed:
		var d domain.OrderConfirmed
		if err := decode(e, &d); err != nil {
			return s, false, err
		}
		s.kind, s.c.cents = orderConfirmed, d.TotalCents
		s.refusal = fmt.Sprintf("total_cents %d is not the order's total", d.TotalCents)
	case domain.EventOrderCancelled:
		var d domain.OrderCancelled
		if err := decode(e, &d); err != nil {
			return s, false, err
		}
		s.kind, s.c.reason = orderCancelled, d.Reason
	case domain.EventOrderShipped:
		var d domain.OrderShipped
		if err := decode(e, &d); err != nil {
			return s, false, err
		}
		s.kind = orderShipped
	default:
		return s, false, fmt.Errorf("unknown event type of the %s category", category)
	}
	creates := s.kind == userCreated || s.kind == orderCreated
	switch {
	case creates && e.Version != 0:
		return s, false, fmt.Errorf("only the first event of a stream (version 0) may create its %s", category)
	case !creates && e.Version == 0:
		return s, false, fmt.Errorf("a %s stream must start with its creation event", category)
	}
	if s.refusal == "" {
		s.refusal = "the statement changed nothing"
	}
	return s, true, nil
}

// decode reads the event's data into v (empty data reads as {}). Unknown fields are allowed:
// later schema versions may add them. Strings with a NUL character are refused, because
// PostgreSQL text cannot hold one.
func decode(e events.Envelope, v any) error {
	data := e.Data
	if len(data) == 0 {
		data = json.RawMessage(`{}`)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if hasNUL(data) {
		return fmt.Errorf("data: a string has a NUL character")
	}
	return nil
}

// hasNUL reports whether valid JSON has the escape \u0000 in a string. Outside strings valid
// JSON has no backslash, and inside them every backslash starts an escape.
func hasNUL(data []byte) bool {
	for i := 0; i < len(data); i++ {
		if data[i] != '\\' || i+1 >= len(data) {
			continue
		}
		if data[i+1] == 'u' && i+5 < len(data) && string(data[i+2:i+6]) == "0000" {
			return true
		}
		i++ // skip the escaped character
	}
	return false
}

// run executes the step on generation g and, when it changed no row, explains why; applied
// reports whether it changed the row.
func (s step) run(ctx context.Context, q querier, g *generation) (applied bool, err error) {
	tag, err := q.Exec(ctx, g.apply[s.kind], columns([]step{s})...)
	if err != nil {
		return false, s.failed(err)
	}
	if tag.RowsAffected() == 1 {
		return true, nil
	}
	return false, s.explain(ctx, q, g)
}

// explain tells why the step changed no row, from the row's version: at or above the event's,
// a duplicate (nil); below its predecessor, or no row, a gap; at its predecessor, a refusal.
func (s step) explain(ctx context.Context, q querier, g *generation) error {
	var v int64
	err := q.QueryRow(ctx, g.version[s.kind.table()], s.id).Scan(&v)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		v = -1
	case err != nil:
		return fmt.Errorf("%s %s@%d: read the row's version: %w", s.e.Type, s.e.StreamID, s.e.Version, err)
	}
	switch {
	case v >= s.e.Version:
		return nil
	case v < s.e.Version-1:
		return fmt.Errorf("%w: %s %s@%d: the read model is at version %d", ErrGap, s.e.Type, s.e.StreamID, s.e.Version, v)
	}
	return consume.Permanent(fmt.Errorf("%s %s@%d: %s", s.e.Type, s.e.StreamID, s.e.Version, s.refusal))
}

// failed classifies an error of the step's statement: data the database refuses (an
// out-of-range number, a broken constraint) is Permanent; anything else may pass on a retry.
func (s step) failed(err error) error {
	err = fmt.Errorf("%s %s@%d: %w", s.e.Type, s.e.StreamID, s.e.Version, err)
	if postgres.DataException(err) || postgres.IntegrityViolation(err) {
		return consume.Permanent(err)
	}
	return err
}
