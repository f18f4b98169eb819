package notify

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Statuses of the sent log.
const (
	StatusSent       = "sent"       // the SMTP server accepted the email
	StatusSkipped    = "skipped"    // no email was due; Reason says why
	StatusSuppressed = "suppressed" // not sent: its principal was over NOTIFIER_EMAILS_PER_PRINCIPAL_HOUR; Reason says so
)

// Paging of List.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// Notification is one row of the sent log: the email of one event.
type Notification struct {
	EventID   uuid.UUID `json:"event_id"`
	EventType string    `json:"event_type"`
	StreamID  string    `json:"stream_id"`
	Kind      string    `json:"kind"`
	To        string    `json:"to"`
	Subject   string    `json:"subject"`
	MessageID string    `json:"message_id"`
	Status    string    `json:"status"`
	Reason    string    `json:"reason,omitempty"`
	SentAt    time.Time `json:"sent_at"`
	// UserID is the user the email is for (uuid.Nil: unknown). The sent log keeps it so that
	// an erasure of the user's personal data finds their rows; the API does not show it.
	UserID uuid.UUID `json:"-"`
}

// SentQuery filters and pages the sent log. Zero values mean no filter; Limit is
// DefaultLimit when 0, at most MaxLimit.
type SentQuery struct {
	To      string    // the recipient's address, case-insensitively
	EventID uuid.UUID // one event
	After   uuid.UUID // the cursor: the event id of the last row of the page before
	Limit   int
}

// SentLog is the notifier's record of the emails it sent, keyed by event id
// (annals_notifier_sent).
type SentLog struct {
	pool *pgxpool.Pool
}

// NewSentLog returns the sent log in pool's database.
func NewSentLog(pool *pgxpool.Pool) *SentLog { return &SentLog{pool: pool} }

// Has reports whether the event has a row.
func (l *SentLog) Has(ctx context.Context, eventID uuid.UUID) (bool, error) {
	var found bool
	err := l.pool.QueryRow(ctx, `select exists (select from annals_notifier_sent where event_id = $1)`, eventID).Scan(&found)
	if err != nil {
		return false, fmt.Errorf("sent log: %w", err)
	}
	return found, nil
}

// Record writes n's row; a row of the same event stays as it is. It takes one round trip: the
// statements go in one batch, which PostgreSQL runs as one transaction.
func (l *SentLog) Record(ctx context.Context, n Notification) error {
	return record(ctx, l.pool, n)
}

// batcher sends a batch of statements: the pool, which runs them as one transaction (pgx's
// SendBatch), or a transaction.
type batcher interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// record writes n's row through db, in one batch; a row of the same event stays as it is.
// With a user, the batch takes the user's lock (userLockSQL) first, held until the batch's
// transaction ends, and a row of a user whose personal data is erased is written without
// recipient and subject: the insert is a statement of its own after the lock, so that its
// snapshot sees an erasure that the lock waited for.
func record(ctx context.Context, db batcher, n Notification) error {
	var user *uuid.UUID
	b := &pgx.Batch{}
	if n.UserID != uuid.Nil {
		user = &n.UserID
		b.Queue(userLockSQL, n.UserID)
	}
	b.Queue(`insert into annals_notifier_sent
		(event_id, event_type, stream_id, kind, recipient, subject, message_id, status, reason, user_id)
		select $1, $2, $3, $4, case when e.erased then '`+Erased+`' else $5 end,
			case when e.erased then '`+Erased+`' else $6 end, $7, $8, $9, $10
		from (select exists (select from annals_notifier_users where user_id = $10 and erased_at is not null) as erased) e
		on conflict (event_id) do nothing`,
		n.EventID, clean(n.EventType), clean(n.StreamID), n.Kind, clean(n.To), clean(n.Subject),
		clean(n.MessageID), n.Status, clean(n.Reason), user)
	if err := db.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("sent log: %w", err)
	}
	return nil
}

// List returns a page of the sent log in event id order (the order of the events' times), and
// whether more rows follow.
func (l *SentLog) List(ctx context.Context, q SentQuery) ([]Notification, bool, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.To != "" {
		where = append(where, "lower(recipient) = lower("+arg(q.To)+")")
	}
	if q.EventID != uuid.Nil {
		where = append(where, "event_id = "+arg(q.EventID))
	}
	if q.After != uuid.Nil {
		where = append(where, "event_id > "+arg(q.After))
	}
	sql := `select event_id, event_type, stream_id, kind, recipient, subject, message_id, status, reason, sent_at
		from annals_notifier_sent`
	if len(where) > 0 {
		sql += " where " + strings.Join(where, " and ")
	}
	sql += " order by event_id limit " + arg(limit+1)
	rows, err := l.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, false, fmt.Errorf("sent log: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Notification, error) {
		var n Notification
		err := row.Scan(&n.EventID, &n.EventType, &n.StreamID, &n.Kind, &n.To, &n.Subject, &n.MessageID, &n.Status, &n.Reason, &n.SentAt)
		n.SentAt = n.SentAt.UTC()
		return n, err
	})
	if err != nil {
		return nil, false, fmt.Errorf("sent log: %w", err)
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	if out == nil {
		out = []Notification{}
	}
	return out, more, nil
}

// errNotRecorded explains a failure to record an email that was sent.
var errNotRecorded = errors.New("the email was sent but the sent log could not record it: a redelivery sends it again, with the same Message-ID")
