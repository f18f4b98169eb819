package consume

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// lazyTx is the transaction of a PostgresUnit: it begins with the unit's first statement, in
// the same round trip (pgx.Batch.BeginTx), instead of spending a round trip on BEGIN alone,
// and a unit that runs no statement begins nothing. Once begun, everything goes to the pgx.Tx
// that the begin made. What cannot carry the begin along (a statement with pgx options, an
// Exec without arguments, which pgx sends as a simple query that may hold several
// statements, a savepoint, CopyFrom, Prepare, LargeObjects, Conn) begins the transaction on
// its own first, as pgx's Begin does.
type lazyTx struct {
	ctx  context.Context // the unit's, for the methods that take none
	conn *pgx.Conn
	tx   pgx.Tx // nil until begun
	// beginErr is the begin's failure; the unit then comes back Unavailable.
	beginErr error
	closed   bool
}

var _ pgx.Tx = (*lazyTx)(nil)

// ready reports whether the transaction is open for a statement, and why not.
func (t *lazyTx) ready() error {
	switch {
	case t.closed:
		return pgx.ErrTxClosed
	case t.beginErr != nil:
		return t.beginErr
	}
	return nil
}

// begin begins the transaction on its own, unless it has begun.
func (t *lazyTx) begin(ctx context.Context) error {
	if err := t.ready(); err != nil || t.tx != nil {
		return err
	}
	tx, err := t.conn.Begin(ctx)
	if err != nil {
		t.beginErr = err
		return err
	}
	t.tx = tx
	return nil
}

// carries reports whether a statement with args can go in a batch behind the begin: only
// QueryRewriter among pgx's options works in a batch, and an Exec without arguments is a
// simple query, which may hold several statements.
func carries(args []any) bool {
	if len(args) == 0 {
		return false
	}
	switch args[0].(type) {
	case pgx.QueryExecMode, pgx.QueryResultFormats, pgx.QueryResultFormatsByOID:
		return false
	}
	return true
}

// send sends b, which begins the transaction (BeginTx) before the caller's statements, and
// reads the begin's result. It returns no results and no error when the batch failed with the
// connection open and outside a transaction: pgx could not prepare or encode the caller's
// statements (a statement the server refuses to prepare, an argument it cannot encode, a
// query rewriter's failure) and so ran nothing, or the server refused the begin itself. The
// caller then begins on its own (which fails again, as a failed begin, if the begin was the
// fault) and runs its statements as pgx's transaction does, which fail as they always have,
// and leave the transaction aborted as they always have. A lost connection is a failed begin.
func (t *lazyTx) send(ctx context.Context, b *pgx.Batch) (pgx.BatchResults, error) {
	br := t.conn.SendBatch(ctx, b)
	_, err := br.Exec()
	if err == nil {
		t.tx = br.Tx()
		return br, nil
	}
	_ = br.Close()
	if !t.conn.IsClosed() && t.conn.PgConn().TxStatus() == 'I' && ctx.Err() == nil {
		return nil, t.begin(ctx)
	}
	t.beginErr = err
	return nil, err
}

// first sends sql behind the begin, in one round trip, unless the transaction has begun or
// alone says that sql cannot carry the begin along, in which case it begins on its own. It
// returns no results and no error when t.tx is to run sql.
func (t *lazyTx) first(ctx context.Context, sql string, args []any, alone bool) (pgx.BatchResults, error) {
	if err := t.ready(); err != nil {
		return nil, err
	}
	if t.tx != nil || alone {
		return nil, t.begin(ctx)
	}
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	b.Queue(sql, args...)
	return t.send(ctx, b)
}

// Exec runs sql in the transaction; the first statement carries the begin.
func (t *lazyTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	br, err := t.first(ctx, sql, args, !carries(args))
	switch {
	case err != nil:
		return pgconn.CommandTag{}, err
	case br == nil:
		return t.tx.Exec(ctx, sql, args...)
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

// Query runs sql in the transaction; the first statement carries the begin.
func (t *lazyTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	br, err := t.first(ctx, sql, args, len(args) > 0 && !carries(args))
	switch {
	case err != nil:
		return failedRows(err), err
	case br == nil:
		return t.tx.Query(ctx, sql, args...)
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return rows, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

// QueryRow runs sql in the transaction; the first statement carries the begin.
func (t *lazyTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if t.ready() == nil && t.tx != nil {
		return t.tx.QueryRow(ctx, sql, args...)
	}
	rows, _ := t.Query(ctx, sql, args...)
	return rowOf{rows}
}

// SendBatch sends b in the transaction; the first batch carries the begin.
func (t *lazyTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if err := t.ready(); err != nil {
		return pgx.FailedBatchResults(b, err)
	}
	// A batch that begins a transaction of its own (Batch.BeginTx), which pgx's transaction
	// refuses, or passes pgx options to a statement, which pgx's batch fails to encode, goes
	// to pgx's transaction, for its errors.
	alone := t.tx != nil || pgx.FailedBatchResults(b, nil).Tx() != nil
	for _, q := range b.QueuedQueries {
		alone = alone || (len(q.Arguments) > 0 && !carries(q.Arguments))
	}
	if alone {
		if err := t.begin(ctx); err != nil {
			return pgx.FailedBatchResults(b, err)
		}
		return t.tx.SendBatch(ctx, b)
	}
	withBegin := &pgx.Batch{}
	withBegin.BeginTx(pgx.TxOptions{})
	withBegin.QueuedQueries = append(withBegin.QueuedQueries, b.QueuedQueries...)
	br, err := t.send(ctx, withBegin)
	switch {
	case err != nil:
		return pgx.FailedBatchResults(b, err)
	case br == nil:
		return t.tx.SendBatch(ctx, b)
	}
	return callerResults{br}
}

// Begin begins a pseudo nested transaction, a savepoint.
func (t *lazyTx) Begin(ctx context.Context) (pgx.Tx, error) {
	if err := t.begin(ctx); err != nil {
		return nil, err
	}
	return t.tx.Begin(ctx)
}

// Commit commits the transaction, if it has begun: a unit that ran no statement has nothing
// to commit.
func (t *lazyTx) Commit(ctx context.Context) error {
	if err := t.ready(); err != nil {
		return err
	}
	t.closed = true
	if t.tx == nil {
		return nil
	}
	return t.tx.Commit(ctx)
}

// Rollback rolls the transaction back, if it has begun.
func (t *lazyTx) Rollback(ctx context.Context) error {
	if t.closed {
		return pgx.ErrTxClosed
	}
	t.closed = true
	if t.tx == nil {
		return nil
	}
	return t.tx.Rollback(ctx)
}

// CopyFrom copies rows into a table in the transaction.
func (t *lazyTx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	if err := t.begin(ctx); err != nil {
		return 0, err
	}
	return t.tx.CopyFrom(ctx, table, columns, src)
}

// Prepare prepares a statement on the transaction's connection.
func (t *lazyTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	if err := t.begin(ctx); err != nil {
		return nil, err
	}
	return t.tx.Prepare(ctx, name, sql)
}

// LargeObjects begins the transaction and returns its large objects. When the begin fails,
// their methods fail, and so does the unit.
func (t *lazyTx) LargeObjects() pgx.LargeObjects {
	if err := t.begin(t.ctx); err != nil {
		// The large objects of a closed transaction: their methods fail with ErrTxClosed.
		b := &pgx.Batch{}
		b.BeginTx(pgx.TxOptions{})
		return pgx.FailedBatchResults(b, err).Tx().LargeObjects()
	}
	return t.tx.LargeObjects()
}

// Conn begins the transaction, so that statements run on the connection are in it, and returns
// the connection. When the begin fails, the unit fails, and the connection is closed (pgx
// closes a connection whose begin failed), so nothing run on it takes effect outside the
// transaction.
func (t *lazyTx) Conn() *pgx.Conn {
	_ = t.begin(t.ctx)
	return t.conn
}

// callerResults are the results of a caller's batch sent behind the begin, whose result has
// been read: they are the caller's own, and began no transaction of the caller's.
type callerResults struct{ pgx.BatchResults }

// Tx is nil: the caller's batch began no transaction of its own.
func (callerResults) Tx() pgx.Tx { return nil }

// batchRows are the rows of the first statement, sent behind the begin: once read or closed,
// they close the batch, which frees the connection.
type batchRows struct {
	pgx.Rows
	br   pgx.BatchResults
	err  error
	done bool
}

func (r *batchRows) finish() {
	if !r.done {
		r.done = true
		r.err = r.br.Close()
	}
}

// Next advances to the next row, closing the batch after the last.
func (r *batchRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.finish()
	return false
}

// Close closes the rows and the batch.
func (r *batchRows) Close() {
	r.Rows.Close()
	r.finish()
}

// Err is the rows' error, or else the batch's.
func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

// rowOf is the first row of rows, as pgx's QueryRow gives it.
type rowOf struct{ rows pgx.Rows }

// Scan reads the first row into dest, pgx.ErrNoRows without one, and closes the rows.
func (r rowOf) Scan(dest ...any) error {
	defer r.rows.Close()
	if err := r.rows.Err(); err != nil {
		return err
	}
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}

// failedRows are pgx's rows of a statement that was not sent, which fail with err.
func failedRows(err error) pgx.Rows {
	rows, _ := pgx.FailedBatchResults(&pgx.Batch{}, err).Query()
	return rows
}
