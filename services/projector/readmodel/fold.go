package readmodel

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The batch path (HandleBatch) folds the events of each stream in a lane's share of a batch
// into its row in Go and writes every row once, where the rounds of applyBatch would update a
// row once per event: an order of sixteen events in one batch is one insert rather than
// sixteen statements, each of which leaves a dead row version and, when the page has no room
// for it, new entries in every index of the table.
//
// The fold follows the statements of applySQL exactly: a row changes as those statements
// would change it, event by event, and wherever a statement would change nothing (a
// duplicate, a gap, an event its stream refuses) or fail (a broken constraint), the fold gives
// up on the whole batch and the runtime applies its events one by one through those
// statements, which decide. The rows are read without locks; each write is guarded by the
// version that was read, so a row that changed meanwhile makes the batch give up too.

// userRow is a row of the users table.
type userRow struct {
	version              int64
	email, name, status  string
	reason               *string
	createdAt, updatedAt time.Time
	deactivatedAt        *time.Time
}

// orderRow is a row of the orders table.
type orderRow struct {
	version                             int64
	userID                              uuid.UUID
	status                              string
	items                               itemList
	total, count                        int64
	reason                              *string
	createdAt, updatedAt                time.Time
	confirmedAt, cancelledAt, shippedAt *time.Time
}

// Statements of the batch path, on a generation's tables; see generationOf. The updates find
// their rows with "id = any($1)", as those of applySQL do, and so do the reads. The inserts have
// no ON CONFLICT clause, which spares the server a search of the index and a speculative
// insertion for every row: a row that exists although the read did not find it (another
// transaction inserted it since) fails the batch with a unique violation instead.
const (
	readUsersSQL = `select id, version, email, name, status, deactivation_reason, created_at, updated_at, deactivated_at
		from {users} where id = any($1)`
	readOrdersSQL = `select id, version, user_id, status, items::text, total_cents, item_count, cancellation_reason,
			created_at, updated_at, confirmed_at, cancelled_at, shipped_at
		from {orders} where id = any($1)`
	insertUsersSQL = `insert into {users} (id, version, email, name, status, deactivation_reason, created_at, updated_at, deactivated_at)
		select * from unnest($1::uuid[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[],
			$7::timestamptz[], $8::timestamptz[], $9::timestamptz[])`
	updateUsersSQL = `update {users} u set version = x.version, email = x.email, name = x.name, status = x.status,
			deactivation_reason = x.reason, updated_at = x.updated_at, deactivated_at = x.deactivated_at
		from unnest($1::uuid[], $2::int8[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::text[],
			$8::timestamptz[], $9::timestamptz[]) as x(id, prev, version, email, name, status, reason, updated_at, deactivated_at)
		where u.id = any($1) and u.id = x.id and u.version = x.prev`
	insertOrdersSQL = `insert into {orders} (id, version, user_id, status, items, total_cents, item_count, cancellation_reason,
			created_at, updated_at, confirmed_at, cancelled_at, shipped_at)
		select x.id, x.version, x.user_id, x.status, x.items::jsonb, x.total, x.n, x.reason,
			x.created_at, x.updated_at, x.confirmed_at, x.cancelled_at, x.shipped_at
		from unnest($1::uuid[], $2::int8[], $3::uuid[], $4::text[], $5::text[], $6::int8[], $7::int8[], $8::text[],
			$9::timestamptz[], $10::timestamptz[], $11::timestamptz[], $12::timestamptz[], $13::timestamptz[])
			as x(id, version, user_id, status, items, total, n, reason, created_at, updated_at, confirmed_at, cancelled_at, shipped_at)`
	// items is NULL for an order whose lines did not change, which spares the server parsing
	// them again.
	updateOrdersSQL = `update {orders} o set version = x.version, status = x.status, items = coalesce(x.items::jsonb, o.items),
			total_cents = x.total, item_count = x.n, cancellation_reason = x.reason, updated_at = x.updated_at,
			confirmed_at = x.confirmed_at, cancelled_at = x.cancelled_at, shipped_at = x.shipped_at
		from unnest($1::uuid[], $2::int8[], $3::int8[], $4::text[], $5::text[], $6::int8[], $7::int8[], $8::text[],
			$9::timestamptz[], $10::timestamptz[], $11::timestamptz[], $12::timestamptz[])
			as x(id, prev, version, status, items, total, n, reason, updated_at, confirmed_at, cancelled_at, shipped_at)
		where o.id = any($1) and o.id = x.id and o.version = x.prev`
)

// streamFold is one stream's events in a batch and what they make of its row.
type streamFold struct {
	id    uuid.UUID
	steps []step
	// found says whether the row existed; prev is then its version as read.
	found bool
	prev  int64
	user  *userRow
	order *orderRow
}

// batchFold is the streams of a batch, by table, in the order of their first events.
type batchFold struct {
	streams [2][]*streamFold
	byID    [2]map[uuid.UUID]*streamFold
}

// add adds the step to its stream; it reports false when the step does not follow the
// stream's previous step in the batch.
func (f *batchFold) add(s step) bool {
	t := s.kind.table()
	if f.byID[t] == nil {
		f.byID[t] = map[uuid.UUID]*streamFold{}
	}
	sf := f.byID[t][s.id]
	if sf == nil {
		sf = &streamFold{id: s.id}
		f.byID[t][s.id] = sf
		f.streams[t] = append(f.streams[t], sf)
	} else if s.e.Version != sf.steps[len(sf.steps)-1].e.Version+1 {
		return false
	}
	sf.steps = append(sf.steps, s)
	return true
}

// ids are the ids of the table's streams, as [16]byte, which pgx encodes as a uuid directly.
func (f *batchFold) ids(t int) [][16]byte {
	ids := make([][16]byte, len(f.streams[t]))
	for i, sf := range f.streams[t] {
		ids[i] = sf.id
	}
	return ids
}

// queueReads queues the reads of the rows of the batch's streams on b. The rows come back
// through the callbacks when b's results are read.
func (f *batchFold) queueReads(b *pgx.Batch, g *generation) {
	if len(f.streams[usersTable]) > 0 {
		b.Queue(g.readUsers, f.ids(usersTable)).Query(func(rows pgx.Rows) error {
			var id uuid.UUID
			var u userRow
			_, err := pgx.ForEachRow(rows, []any{&id, &u.version, &u.email, &u.name, &u.status, &u.reason,
				&u.createdAt, &u.updatedAt, &u.deactivatedAt}, func() error {
				if sf := f.byID[usersTable][id]; sf != nil {
					row := u
					sf.found, sf.prev, sf.user = true, u.version, &row
				}
				u = userRow{} // the next row's scan allocates its own pointers
				return nil
			})
			return err
		})
	}
	if len(f.streams[ordersTable]) > 0 {
		b.Queue(g.readOrders, f.ids(ordersTable)).Query(func(rows pgx.Rows) error {
			var id uuid.UUID
			var o orderRow
			var items string
			_, err := pgx.ForEachRow(rows, []any{&id, &o.version, &o.userID, &o.status, &items, &o.total, &o.count,
				&o.reason, &o.createdAt, &o.updatedAt, &o.confirmedAt, &o.cancelledAt, &o.shippedAt}, func() error {
				if sf := f.byID[ordersTable][id]; sf != nil {
					row := o
					row.items = itemList{head: []byte(items)}
					sf.found, sf.prev, sf.order = true, o.version, &row
				}
				o = orderRow{} // the next row's scan allocates its own pointers
				return nil
			})
			return err
		})
	}
}

// fold applies each stream's steps to its row as read; it reports false when a statement of
// applySQL would not change the row as the step wants (see the comment at the top).
func (f *batchFold) fold() bool {
	for t, streams := range f.streams {
		for _, sf := range streams {
			first := sf.steps[0]
			creates := first.kind == userCreated || first.kind == orderCreated
			switch {
			case !sf.found && !creates, sf.found && (creates || sf.prev != first.e.Version-1):
				return false // a gap, a duplicate, or a creation of a row that exists
			case !sf.found && t == usersTable:
				sf.user = &userRow{}
			case !sf.found:
				sf.order = &orderRow{}
			case t == ordersTable && !sf.order.items.isArray():
				return false // the statements would not touch the lines of a row like this
			}
			for _, s := range sf.steps {
				var ok bool
				if t == usersTable {
					ok = sf.user.apply(s)
				} else {
					ok = sf.order.apply(s)
				}
				if !ok {
					return false
				}
			}
		}
	}
	return true
}

// apply changes the row as the step's statement would; see applySQL.
func (u *userRow) apply(s step) bool {
	switch s.kind {
	case userCreated:
		*u = userRow{email: *s.c.email, name: *s.c.name, status: "active", createdAt: s.at}
	case userProfileUpdated:
		if s.c.name != nil {
			u.name = *s.c.name
		}
		if s.c.email != nil {
			u.email = *s.c.email
		}
	case userDeactivated:
		reason, at := s.c.reason, s.at
		u.status, u.reason, u.deactivatedAt = "deactivated", &reason, &at
	case userErased:
		u.email, u.name = "", ""
	default:
		return false
	}
	u.updatedAt, u.version = s.at, s.e.Version
	return true
}

// apply changes the row as the step's statement would; see applySQL.
func (o *orderRow) apply(s step) bool {
	at := s.at
	switch s.kind {
	case orderCreated:
		*o = orderRow{userID: s.c.user, status: "pending", items: itemList{head: []byte(s.c.items), changed: true},
			total: s.c.cents, count: s.c.lines, createdAt: s.at}
	case itemAdded:
		if o.total > math.MaxInt64-s.c.cents {
			return false
		}
		o.items.add(s.c.items)
		o.total += s.c.cents
		o.count++
	case itemRemoved:
		line, ok := o.items.remove(s.c.itemID)
		if !ok || o.total-line < 0 || o.count < 1 {
			return false // no such line, or a check constraint the statement would break
		}
		o.total -= line
		o.count--
	case orderConfirmed:
		if o.total != s.c.cents {
			return false
		}
		o.status, o.confirmedAt = "confirmed", &at
	case orderCancelled:
		reason := s.c.reason
		o.status, o.reason, o.cancelledAt = "cancelled", &reason, &at
	case orderShipped:
		o.status, o.shippedAt = "shipped", &at
	default:
		return false
	}
	o.updatedAt, o.version = s.at, s.e.Version
	return true
}

// queueWrites queues on b the statements that write the folded rows: an insert of the new
// rows and an update of the others, per table. Each must change all its rows, or the batch
// gives up (errNotClean) when b's results are read.
func (f *batchFold) queueWrites(b *pgx.Batch, g *generation) {
	var args [2][2][]any // by table: the insert's, the update's
	var rows [2][2]int
	for t, streams := range f.streams {
		for _, sf := range streams {
			w := 0
			if sf.found {
				w = 1
			}
			appendRow(&args[t][w], sf.row())
			rows[t][w]++
		}
	}
	sqls := [2][2]string{{g.insertUsers, g.updateUsers}, {g.insertOrders, g.updateOrders}}
	for t := range sqls {
		for w, sql := range sqls[t] {
			if n := rows[t][w]; n > 0 {
				b.Queue(sql, args[t][w]...).Exec(func(tag pgconn.CommandTag) error {
					if tag.RowsAffected() != int64(n) {
						return errNotClean
					}
					return nil
				})
			}
		}
	}
}

// row is the stream's row of insertUsersSQL or updateUsersSQL (when the row existed), or of
// insertOrdersSQL or updateOrdersSQL.
func (sf *streamFold) row() []any {
	if u := sf.user; u != nil {
		if sf.found {
			return []any{[16]byte(sf.id), sf.prev, u.version, u.email, u.name, u.status, u.reason, u.updatedAt, u.deactivatedAt}
		}
		return []any{[16]byte(sf.id), u.version, u.email, u.name, u.status, u.reason, u.createdAt, u.updatedAt, u.deactivatedAt}
	}
	o := sf.order
	if sf.found {
		var items *string
		if o.items.changed {
			s := o.items.text()
			items = &s
		}
		return []any{[16]byte(sf.id), sf.prev, o.version, o.status, items, o.total, o.count, o.reason,
			o.updatedAt, o.confirmedAt, o.cancelledAt, o.shippedAt}
	}
	items := o.items.text()
	return []any{[16]byte(sf.id), o.version, [16]byte(o.userID), o.status, &items, o.total, o.count, o.reason,
		o.createdAt, o.updatedAt, o.confirmedAt, o.cancelledAt, o.shippedAt}
}

// appendRow appends the row's values to the arrays of *args, one per column, which it creates
// on the first row: [16]byte (a uuid), int64, string, *string and *time.Time (NULL when nil)
// or time.Time.
func appendRow(args *[]any, row []any) {
	if *args == nil {
		*args = make([]any, len(row))
		for c, v := range row {
			switch v.(type) {
			case [16]byte:
				(*args)[c] = [][16]byte{}
			case int64:
				(*args)[c] = []int64{}
			case string:
				(*args)[c] = []string{}
			case *string:
				(*args)[c] = []*string{}
			case time.Time:
				(*args)[c] = []time.Time{}
			case *time.Time:
				(*args)[c] = []*time.Time{}
			}
		}
	}
	for c, v := range row {
		switch col := (*args)[c].(type) {
		case [][16]byte:
			(*args)[c] = append(col, v.([16]byte))
		case []int64:
			(*args)[c] = append(col, v.(int64))
		case []string:
			(*args)[c] = append(col, v.(string))
		case []*string:
			(*args)[c] = append(col, v.(*string))
		case []time.Time:
			(*args)[c] = append(col, v.(time.Time))
		case []*time.Time:
			(*args)[c] = append(col, v.(*time.Time))
		}
	}
}

// itemList is an order's lines, a JSON array of objects: the text of an array (as read from
// the row, or as an OrderCreated event gave it) and the lines added after it, which are split
// into single lines only when a removal needs them.
type itemList struct {
	head    []byte            // a JSON array; nil for none
	lines   []json.RawMessage // the lines after head's
	changed bool              // whether the lines differ from the row's as read
}

func (l *itemList) add(line string) {
	l.lines = append(l.lines, json.RawMessage(line))
	l.changed = true
}

// remove removes the first line with the id, as the statement of itemRemoved does, and
// returns the line's total. ok is false when no line has the id, or when the lines are not
// what the projector writes (objects with a string id and integer price_cents and quantity
// whose product fits), which the statement then sorts out.
func (l *itemList) remove(id string) (total int64, ok bool) {
	if l.head != nil {
		var head []json.RawMessage
		if err := json.Unmarshal(l.head, &head); err != nil {
			return 0, false
		}
		l.lines, l.head = append(head, l.lines...), nil
	}
	for i, raw := range l.lines {
		var line map[string]json.RawMessage
		if err := json.Unmarshal(raw, &line); err != nil {
			return 0, false
		}
		var lineID string
		if err := json.Unmarshal(line["id"], &lineID); err != nil || line["id"][0] != '"' {
			return 0, false
		}
		if lineID != id {
			continue
		}
		price, err1 := strconv.ParseInt(string(line["price_cents"]), 10, 64)
		quantity, err2 := strconv.ParseInt(string(line["quantity"]), 10, 64)
		if err1 != nil || err2 != nil || price < 0 || quantity < 0 || (quantity != 0 && price > math.MaxInt64/quantity) {
			return 0, false
		}
		l.lines = append(l.lines[:i:i], l.lines[i+1:]...)
		l.changed = true
		return price * quantity, true
	}
	return 0, false
}

// isArray reports whether head is empty or looks like a JSON array, as the row's check
// constraint makes it.
func (l *itemList) isArray() bool {
	head := bytes.TrimSpace(l.head)
	return len(head) == 0 || len(head) >= 2 && head[0] == '[' && head[len(head)-1] == ']'
}

// text is the lines as a JSON array.
func (l *itemList) text() string {
	head := bytes.TrimSpace(l.head)
	if len(l.lines) == 0 {
		if len(head) == 0 {
			return "[]"
		}
		return string(head)
	}
	var b bytes.Buffer
	b.WriteByte('[')
	if len(head) >= 2 {
		if inner := bytes.TrimSpace(head[1 : len(head)-1]); len(inner) > 0 {
			b.Write(inner)
			b.WriteByte(',')
		}
	}
	for i, line := range l.lines {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(line)
	}
	b.WriteByte(']')
	return b.String()
}

// foldBatch applies the steps, the events of a lane's share of a batch that the read models
// model, in tx on the live generation g (which tx holds shared; see lockedGeneration): one
// round trip reads the rows of their streams, one writes them. It returns errNotClean when
// the batch does not apply cleanly, with tx to be rolled back.
func foldBatch(ctx context.Context, tx pgx.Tx, g *generation, f *batchFold) error {
	b := &pgx.Batch{}
	f.queueReads(b, g)
	if len(b.QueuedQueries) == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	if !f.fold() {
		return errNotClean
	}
	b = &pgx.Batch{}
	f.queueWrites(b, g)
	return tx.SendBatch(ctx, b).Close()
}
