package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/services/notifier/sender"
	"github.com/annals-dev/annals/services/notifier/templates"
)

// Group is the notifier's consumer group.
const Group = "annals-notifier"

// tracer makes the span of each SMTP send, a child of the consumer runtime's span of the
// event's message: OpenTelemetry's global tracer, a no-op unless the service installed an SDK
// (internal/telemetry). Its attributes never name a recipient.
var tracer = otel.Tracer("github.com/annals-dev/annals/services/notifier/notify")

// EventTypes are the event types the notifier's consumer handles: the three that send email
// and the order events that tell it an order's owner and lines. Others count as processed
// without reaching the handler; the user directory reads the user events on its own.
var EventTypes = []string{
	domain.EventUserCreated,
	domain.EventOrderCreated, domain.EventItemAdded, domain.EventItemRemoved,
	domain.EventOrderConfirmed, domain.EventOrderCancelled,
}

// Mailer sends one email; *sender.Sender is one. Its errors must say, through
// sender.IsPermanent, whether sending the same email again could succeed.
type Mailer interface {
	Send(ctx context.Context, e sender.Email) error
}

var _ Mailer = (*sender.Sender)(nil)

// StreamInfoer reads a stream's metadata from the event store; *postgres.Store is one. It
// returns an error wrapping events.ErrNotFound for a stream without events.
type StreamInfoer interface {
	StreamInfo(ctx context.Context, streamID string) (events.StreamInfo, error)
}

var _ StreamInfoer = (*postgres.Store)(nil)

// Options tune a Notifier. Zero values take the defaults noted.
type Options struct {
	// MessageIDDomain is the domain part of the Message-IDs, <event-id@domain>: the domain of
	// SMTP_FROM ("annals.local").
	MessageIDDomain string
	// UserWait is how long an order email waits for its user's address to reach the
	// directory before the notifier asks the event store about the user (30 s): a user the
	// store does not have sends the event to the dead-letter topic; one it has pauses the
	// group until the directory has caught up.
	UserWait time.Duration
	// EventStore says whether an order's user exists. Nil means a *postgres.Store on the
	// notifier's pool: the notifier keeps its tables in the event store's database.
	EventStore StreamInfoer
	// RecordTimeout bounds the retries of the sent log's write after the SMTP server has
	// accepted an email (10 s): past it the event is delivered again, and the email with it.
	RecordTimeout time.Duration
	// EmailsPerPrincipalHour is how many emails the commands of one principal (the actor in
	// an event's metadata) recorded within one hour may cause; the others are not sent but
	// recorded as suppressed. 0 means no limit.
	EmailsPerPrincipalHour int
	// Keys opens the encrypted email and name of the user events (a *shred.Keyring on the
	// writer's key store and key-encryption key), for the welcome emails and the directory.
	// Nil keeps the values as the events carry them: only for a deployment that records
	// personal data in clear.
	Keys   Decrypter
	Logger *slog.Logger
	// Registerer takes the notifier's metrics (none when nil).
	Registerer prometheus.Registerer
}

// Notifier turns events into emails: it is the consumer group's handler (one message at a
// time per stream, in order). See the package comment for what it promises.
type Notifier struct {
	pool    *pgxpool.Pool
	mail    Mailer
	tpl     *templates.Set
	sent    *SentLog
	opts    Options
	log     *slog.Logger
	metrics *metrics
}

// New returns a Notifier that keeps its tables in pool's database (see Migrate), renders with
// tpl and sends with m.
func New(pool *pgxpool.Pool, m Mailer, tpl *templates.Set, opts Options) *Notifier {
	if opts.MessageIDDomain == "" {
		opts.MessageIDDomain = "annals.local"
	}
	if opts.UserWait <= 0 {
		opts.UserWait = 30 * time.Second
	}
	if opts.RecordTimeout <= 0 {
		opts.RecordTimeout = 10 * time.Second
	}
	if opts.EventStore == nil {
		opts.EventStore = postgres.New(pool, postgres.Options{})
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Notifier{pool: pool, mail: m, tpl: tpl, sent: NewSentLog(pool), opts: opts, log: log, metrics: newMetrics(opts.Registerer)}
}

// SentLog is the notifier's sent log.
func (n *Notifier) SentLog() *SentLog { return n.sent }

// MessageID is the Message-ID of the email of an event, without angle brackets:
// <event id>@<domain>. Every attempt at the same email carries the same one.
func MessageID(eventID uuid.UUID, domain string) string { return eventID.String() + "@" + domain }

// Consumer is the notifier's consumer: base (the group's settings, see
// internal/wiring.ConsumerConfig; the group is Group unless base names another) handling one
// message at a time per lane without a unit of work (an email is no transaction: the sent log
// stands in for the inbox), streams blocked behind a dead letter kept in PostgreSQL, and only
// EventTypes reaching the handler.
func (n *Notifier) Consumer(base consume.Config) (*consume.Consumer, error) {
	if base.Group == "" {
		base.Group = Group
	}
	base.Unit = nil
	base.Blocks = consume.PostgresBlocks(n.pool)
	if base.Metrics == nil {
		base.Metrics = consume.NewMetrics(nil)
	}
	base.Middleware = append([]consume.Middleware{
		consume.Types(EventTypes...),
		consume.Timing(base.Metrics, base.Group),
	}, base.Middleware...)
	return consume.New(base, n)
}

// Handle handles one event: the order events update what the notifier knows of orders, and
// UserCreated, OrderConfirmed and OrderCancelled send their email unless the sent log has it.
func (n *Notifier) Handle(ctx context.Context, m *consume.Message) error {
	e := m.Event
	switch e.Type {
	case domain.EventOrderCreated, domain.EventItemAdded, domain.EventItemRemoved:
		return n.applyOrder(ctx, e)
	case domain.EventUserCreated:
		return n.deliver(ctx, e, templates.Welcome, n.welcome)
	case domain.EventOrderConfirmed:
		return n.deliver(ctx, e, templates.OrderConfirmed, n.orderEmail)
	case domain.EventOrderCancelled:
		return n.deliver(ctx, e, templates.OrderCancelled, n.orderEmail)
	}
	return nil
}

// outgoing is an email to send, or a reason to send none.
type outgoing struct {
	user uuid.UUID // whom it is for
	to   mail.Address
	data templates.Data
	skip string
	// erased: the user's personal data is erased; the email is suppressed (ReasonErased).
	erased bool
}

// deliver sends the email of event e once: it checks the sent log, works out the email
// (resolve), renders it, hands it to the SMTP server and records it.
func (n *Notifier) deliver(ctx context.Context, e events.Envelope, kind templates.Kind,
	resolve func(context.Context, events.Envelope) (outgoing, error)) error {
	count := func(outcome string) { n.metrics.emails.WithLabelValues(string(kind), outcome).Inc() }
	done, err := n.sent.Has(ctx, e.EventID)
	if err != nil {
		return dbError(err)
	}
	if done {
		count(OutcomeDuplicate)
		return nil
	}
	out, err := resolve(ctx, e)
	if err != nil {
		if consume.IsPermanent(err) {
			count(OutcomeRejected)
		}
		return err
	}
	row := Notification{EventID: e.EventID, EventType: e.Type, StreamID: e.StreamID, Kind: string(kind),
		To: out.to.Address, MessageID: MessageID(e.EventID, n.opts.MessageIDDomain), UserID: out.user}
	if out.erased {
		row.To, row.Status, row.Reason = Erased, StatusSuppressed, ReasonErased
		if err := n.sent.Record(ctx, row); err != nil {
			return dbError(err)
		}
		count(OutcomeSuppressed)
		n.metrics.suppressed.WithLabelValues(ReasonErased).Inc()
		n.log.InfoContext(ctx, "notify: email suppressed: its user's personal data is erased", "event_id", e.EventID, "kind", kind)
		return nil
	}
	if out.skip != "" {
		row.Status, row.Reason = StatusSkipped, out.skip
		if err := n.sent.Record(ctx, row); err != nil {
			return dbError(err)
		}
		count(OutcomeSkipped)
		n.log.InfoContext(ctx, "notify: no email due", "event_id", e.EventID, "kind", kind, "reason", out.skip)
		return nil
	}
	if err := domain.ValidateEmail("email", out.to.Address); err != nil {
		count(OutcomeRejected)
		// Neither the address nor the error (which does not repeat it) goes into the text: it
		// would outlive an erasure of the user in the dead letter and the logs.
		return consume.Permanent(fmt.Errorf("%s email of event %s: the recipient of user %s: %w", kind, e.EventID, out.user, err))
	}
	r, err := n.tpl.Render(kind, out.data)
	if err != nil {
		count(OutcomeRejected)
		return consume.Permanent(err)
	}
	row.Subject = r.Subject
	if n.opts.EmailsPerPrincipalHour > 0 {
		ok, fresh, err := n.admit(ctx, e, row)
		if err != nil {
			return dbError(err)
		}
		if !ok {
			if fresh {
				count(OutcomeSuppressed)
				n.metrics.suppressed.WithLabelValues(ReasonPrincipalLimit).Inc()
				n.log.InfoContext(ctx, "notify: email suppressed: its principal's commands caused NOTIFIER_EMAILS_PER_PRINCIPAL_HOUR emails in the hour already",
					"event_id", e.EventID, "kind", kind, "actor_kind", principalOf(e.Metadata).kind, "hour", hourOf(e))
			} else {
				count(OutcomeDuplicate)
			}
			return nil
		}
	}
	email := sender.Email{
		MessageID: row.MessageID,
		To:        out.to,
		Subject:   r.Subject,
		Text:      r.Text,
		HTML:      r.HTML,
		Headers: map[string]string{
			"X-Annals-Event-ID":   e.EventID.String(),
			"X-Annals-Event-Type": e.Type,
			"Auto-Submitted":      "auto-generated", // RFC 3834: no auto-replies, please
		},
	}
	start := time.Now()
	sctx, span := tracer.Start(ctx, "smtp send", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("annals.email_kind", string(kind)), attribute.String("annals.message_id", row.MessageID)))
	err = n.mail.Send(sctx, email)
	n.metrics.smtp.Observe(time.Since(start).Seconds())
	// The server's answer usually repeats the address: it is redacted, and the error names the
	// user and the event only (see redact), in the trace as in the dead letter and the logs.
	safe := redact(err, out.to.Address, strings.Trim(row.MessageID, "<>"))
	if err != nil {
		span.RecordError(safe)
		span.SetStatus(codes.Error, safe.Error())
	}
	span.End()
	if err != nil {
		if sender.IsPermanent(err) {
			count(OutcomeRejected)
			return consume.Permanent(fmt.Errorf("%s email of event %s to user %s: %w", kind, e.EventID, out.user, safe))
		}
		count(OutcomeFailed)
		var se *sender.Error
		if errors.As(err, &se) && se.Unknown {
			n.log.WarnContext(ctx, "notify: the SMTP server may have accepted the email before the connection broke; "+
				"it is sent again, with the same Message-ID", "event_id", e.EventID, "message_id", row.MessageID)
		}
		return consume.Unavailable(fmt.Errorf("%s email of event %s to user %s: %w", kind, e.EventID, out.user, safe))
	}
	row.Status = StatusSent
	if err := n.record(ctx, row); err != nil {
		return err
	}
	count(OutcomeSent)
	return nil
}

// record writes the sent log's row of an email the server accepted. The email is out, so it
// tries again after any failure of the database that is not the row's (postgres.Transient),
// for RecordTimeout even past ctx's end: failing here means sending the email again. A row
// the database refuses is Permanent: the event is dead-lettered rather than mailed again
// and again.
func (n *Notifier) record(ctx context.Context, row Notification) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.opts.RecordTimeout)
	defer cancel()
	pause := 50 * time.Millisecond
	for {
		err := n.sent.Record(rctx, row)
		if err == nil {
			return nil
		}
		if !postgres.Transient(err) {
			// The row itself is refused: another try would send the email again for nothing.
			// The event goes to the dead-letter topic with the reason; the email is out.
			n.log.ErrorContext(ctx, "notify: "+errNotRecorded.Error(), "event_id", row.EventID, "message_id", row.MessageID, "error", err)
			return consume.Permanent(fmt.Errorf("%w: %w", errNotRecorded, err))
		}
		if rctx.Err() != nil {
			n.log.ErrorContext(ctx, "notify: "+errNotRecorded.Error(), "event_id", row.EventID, "message_id", row.MessageID, "error", err)
			return consume.Unavailable(fmt.Errorf("%w: %w", errNotRecorded, err))
		}
		select {
		case <-rctx.Done():
		case <-time.After(pause):
		}
		pause = min(2*pause, time.Second)
	}
}

// welcome is the welcome email of a UserCreated: to the address in the event.
func (n *Notifier) welcome(ctx context.Context, e events.Envelope) (outgoing, error) {
	var d domain.UserCreated
	if err := decodeData(e, &d); err != nil {
		return outgoing{}, err
	}
	id, err := domain.StreamUUID(e.StreamID, domain.UserCategory)
	if err != nil {
		return outgoing{}, consume.Permanent(err)
	}
	erased, err := reveal(ctx, n.opts.Keys, id, &d.Email, &d.Name)
	if err != nil || erased {
		return outgoing{user: id, erased: erased}, err
	}
	return outgoing{
		user: id,
		to:   mail.Address{Name: d.Name, Address: d.Email},
		data: templates.Data{Name: d.Name, Email: d.Email, UserID: id.String(), EventID: e.EventID.String(), RecordedAt: e.RecordedAt},
	}, nil
}

// orderEmail is the email of an OrderConfirmed or OrderCancelled: to the order's owner as
// the directory knows them, once it does.
func (n *Notifier) orderEmail(ctx context.Context, e events.Envelope) (outgoing, error) {
	id, err := domain.StreamUUID(e.StreamID, domain.OrderCategory)
	if err != nil {
		return outgoing{}, consume.Permanent(err)
	}
	data := templates.Data{OrderID: id.String(), EventID: e.EventID.String(), RecordedAt: e.RecordedAt}
	switch e.Type {
	case domain.EventOrderConfirmed:
		var d domain.OrderConfirmed
		if err := decodeData(e, &d); err != nil {
			return outgoing{}, err
		}
		data.TotalCents = d.TotalCents
	case domain.EventOrderCancelled:
		var d domain.OrderCancelled
		if err := decodeData(e, &d); err != nil {
			return outgoing{}, err
		}
		data.Reason = d.Reason
	}
	o, ok, err := lookupOrder(ctx, n.pool, id)
	if err != nil {
		return outgoing{}, dbError(err)
	}
	if !ok {
		return outgoing{}, consume.Permanent(fmt.Errorf("order %s is unknown to the notifier: its %s was never seen", id, domain.EventOrderCreated))
	}
	if e.Type == domain.EventOrderCancelled {
		data.TotalCents = o.TotalCents
	}
	for _, it := range o.Items {
		data.Items = append(data.Items, templates.Item{ID: it.ID, Name: it.Name, PriceCents: it.PriceCents,
			Quantity: it.Quantity, LineCents: it.PriceCents * it.Quantity})
	}
	u, err := n.awaitUser(ctx, o.UserID)
	if err != nil {
		return outgoing{}, err
	}
	if u.ErasedAt != nil {
		return outgoing{user: o.UserID, erased: true}, nil
	}
	data.UserID, data.Name, data.Email = o.UserID.String(), u.Name, u.Email
	out := outgoing{user: o.UserID, to: mail.Address{Name: u.Name, Address: u.Email}, data: data}
	if u.Status == string(domain.UserStatusDeactivated) && u.DeactivatedAt != nil && !e.RecordedAt.Before(*u.DeactivatedAt) {
		out.skip = fmt.Sprintf("user %s was deactivated at %s, before this event", o.UserID, u.DeactivatedAt.UTC().Format(time.RFC3339))
	}
	return out, nil
}

// awaitUser returns the directory's row of a user once it has an address, polling with
// backoff for up to UserWait. Past that it asks the event store, the source of truth, about
// the user (see the package comment): a user the store does not have, or whose events the
// directory has all applied without finding an address, is a fault of the event (Permanent);
// any other user is one the directory has not caught up with yet, a dependency that is not
// ready (Unavailable: the group pauses and the email waits again).
func (n *Notifier) awaitUser(ctx context.Context, id uuid.UUID) (user, error) {
	start := time.Now()
	pause := 10 * time.Millisecond
	for {
		u, ok, err := lookupUser(ctx, n.pool, id)
		if err != nil {
			return user{}, dbError(err)
		}
		waited := time.Since(start)
		if ok && (u.Email != "" || u.ErasedAt != nil) {
			n.metrics.userWait.Observe(waited.Seconds())
			return u, nil
		}
		if waited >= n.opts.UserWait {
			return user{}, n.userMissing(ctx, id, u, ok)
		}
		select {
		case <-ctx.Done():
			return user{}, ctx.Err()
		case <-time.After(min(pause, n.opts.UserWait-waited)):
		}
		pause = min(2*pause, time.Second)
	}
}

// ErrDirectoryBehind marks an order email whose user the event store has and the directory
// does not know yet: it waits, with the group paused, until the directory catches up.
var ErrDirectoryBehind = errors.New("the directory has not caught up with the user")

// userMissing decides about a user the directory has no address for after UserWait: u and ok
// are the directory's row, if any.
func (n *Notifier) userMissing(ctx context.Context, id uuid.UUID, u user, ok bool) error {
	stream := events.StreamID(domain.UserCategory, id.String())
	info, err := n.opts.EventStore.StreamInfo(ctx, stream)
	switch {
	case errors.Is(err, events.ErrNotFound):
		return consume.Permanent(fmt.Errorf("the directory has no address for user %s after waiting %s: "+
			"the event store has no such user (no stream %s)", id, n.opts.UserWait, stream))
	case err != nil:
		return dbError(fmt.Errorf("the directory has no address for user %s after waiting %s; "+
			"the event store cannot say whether the user exists: %w", id, n.opts.UserWait, err))
	case ok && u.Version >= info.Version:
		return consume.Permanent(fmt.Errorf("the directory has no address for user %s: it has applied every event "+
			"of the user, to version %d, and none carries one (no %s)", id, info.Version, domain.EventUserCreated))
	}
	applied := "none"
	if ok {
		applied = "up to version " + strconv.FormatInt(u.Version, 10)
	}
	n.metrics.directoryBehind.Inc()
	n.log.WarnContext(ctx, "notify: the directory has not caught up with an order's user; the group pauses and the email waits",
		"user_id", id, "store_version", info.Version, "directory_applied", applied, "waited", n.opts.UserWait)
	return consume.Unavailable(fmt.Errorf("%w %s after waiting %s: the event store has it to version %d, the directory %s",
		ErrDirectoryBehind, id, n.opts.UserWait, info.Version, applied))
}
