package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/kafkasec"
)

// DirectoryConfig configures a Directory. Zero values take the defaults noted.
type DirectoryConfig struct {
	Brokers []string
	// Security is how to connect to the brokers (TLS, SASL); the zero value is plaintext.
	Security kafkasec.Security
	// Topic is the user topic (<prefix>.user).
	Topic string
	// Decode decodes its records (consume.SchemaDecoder).
	Decode consume.Decoder
	// BatchSize is the most records applied in one transaction (500).
	BatchSize int
	// Refresh is how often the topic's partitions are listed again, to pick up new ones (30 s).
	Refresh time.Duration
	// Backoff is the first pause after a failure, doubled up to MaxBackoff (100 ms, 5 s).
	Backoff    time.Duration
	MaxBackoff time.Duration
	Logger     *slog.Logger
}

// Directory keeps the notifier's user directory: it reads every partition of the user topic
// and applies each user event to annals_notifier_users in PostgreSQL, recording how far it
// read in the same transaction, so that it resumes where it stopped and applies each event
// exactly once. See the package comment for why it is not part of the consumer group.
type Directory struct {
	pool      *pgxpool.Pool
	cfg       DirectoryConfig
	log       *slog.Logger
	metrics   *metrics
	dialer    *kafka.Dialer      // the readers'
	transport kafka.RoundTripper // the metadata requests'
	release   func()
	keys      Decrypter // the Notifier's Options.Keys
}

// Directory returns the directory that feeds n's order emails.
func (n *Notifier) Directory(cfg DirectoryConfig) (*Directory, error) {
	switch {
	case len(cfg.Brokers) == 0:
		return nil, errors.New("notify: directory: no brokers")
	case cfg.Topic == "":
		return nil, errors.New("notify: directory: no user topic")
	case cfg.Decode == nil:
		return nil, errors.New("notify: directory: no decoder")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 30 * time.Second
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = n.log
	}
	dialer, err := cfg.Security.Dialer()
	if err != nil {
		return nil, fmt.Errorf("notify: directory: %w", err)
	}
	transport, release, err := cfg.Security.RoundTripper()
	if err != nil {
		return nil, fmt.Errorf("notify: directory: %w", err)
	}
	return &Directory{pool: n.pool, cfg: cfg, log: log.With("component", "directory", "topic", cfg.Topic), metrics: n.metrics,
		dialer: dialer, transport: transport, release: release, keys: n.opts.Keys}, nil
}

// Run reads the user topic until ctx ends, then returns nil. Kafka or PostgreSQL being
// unreachable only delays it. A broker that refuses the directory (its security, or an ACL:
// Describe on the user topic) ends it with the refusal, a *kafkasec.Error: no retry cures
// that.
func (d *Directory) Run(ctx context.Context) error {
	defer d.release()
	var wg sync.WaitGroup
	defer wg.Wait()
	running := map[int]bool{}
	backoff := d.cfg.Backoff
	for {
		parts, err := d.partitions(ctx)
		pause := d.cfg.Refresh
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var refused *kafkasec.Error
			if errors.As(err, &refused) {
				return err
			}
			d.log.Warn("notify: directory: cannot list the user topic's partitions; retrying", "error", err, "pause", backoff)
			pause, backoff = backoff, min(2*backoff, d.cfg.MaxBackoff)
		} else {
			backoff = d.cfg.Backoff
			for _, p := range parts {
				if !running[p] {
					running[p] = true
					wg.Go(func() { d.tail(ctx, p) })
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(pause):
		}
	}
}

func (d *Directory) partitions(ctx context.Context) ([]int, error) {
	refusal := func(err error) error {
		return kafkasec.Classify(kafkasec.Denied(err, kafkasec.Access{Operation: "Describe", Topic: d.cfg.Topic}, d.cfg.Security), d.cfg.Security)
	}
	client := &kafka.Client{Addr: kafka.TCP(d.cfg.Brokers...), Timeout: 10 * time.Second, Transport: d.transport}
	resp, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{d.cfg.Topic}})
	if err != nil {
		return nil, refusal(err)
	}
	for _, t := range resp.Topics {
		if t.Name != d.cfg.Topic {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("topic %s: %w", t.Name, refusal(t.Error))
		}
		out := make([]int, 0, len(t.Partitions))
		for _, p := range t.Partitions {
			out = append(out, p.ID)
		}
		return out, nil
	}
	return nil, fmt.Errorf("topic %s: not in the metadata", d.cfg.Topic)
}

// tail applies one partition from where the directory stopped, until ctx ends. When a fetch
// fails, the reader is closed and a new one reads on from the next offset after a pause:
// while the broker is away, kafka-go's reader keeps retrying and queues each failure for
// FetchMessage (up to its queue's capacity), so a reader kept across an outage would hand
// out one stale failure per pause long after the broker is back, and the directory would
// lag minutes behind the order emails that wait for it.
func (d *Directory) tail(ctx context.Context, partition int) {
	log := d.log.With("partition", partition)
	backoff := d.cfg.Backoff
	pause := func() bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, d.cfg.MaxBackoff)
		return true
	}
	reset := func() { backoff = d.cfg.Backoff }
	var next int64
	for {
		var err error
		if next, err = d.position(ctx, partition); err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		log.Warn("notify: directory: cannot read its position; retrying", "error", err)
		if !pause() {
			return
		}
	}
	lag := d.metrics.directoryLag.WithLabelValues(strconv.Itoa(partition))
	for {
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers:   d.cfg.Brokers,
			Dialer:    d.dialer,
			Topic:     d.cfg.Topic,
			Partition: partition,
			MinBytes:  1,
			MaxBytes:  8 << 20,
			MaxWait:   250 * time.Millisecond,
			ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
				log.Warn("notify: directory: kafka reader: " + fmt.Sprintf(msg, args...))
			}),
		})
		if err := r.SetOffset(next); err != nil { // only an invalid offset fails: a bug, not a condition
			_ = r.Close()
			log.Error("notify: directory: cannot set the reader's offset; the partition is not read", "offset", next, "error", err)
			return
		}
		err := d.follow(ctx, r, partition, &next, lag, pause, reset)
		_ = r.Close()
		if err == nil || ctx.Err() != nil {
			return
		}
		log.Warn("notify: directory: fetch failed; reading on with a new reader", "error", err, "offset", next, "pause", backoff)
		if !pause() {
			return
		}
	}
}

// follow applies what r reads, batch after batch, moving next past each batch applied, until
// ctx ends (nil) or a fetch fails (its error). A batch that cannot be applied is retried after
// pause until it is.
func (d *Directory) follow(ctx context.Context, r *kafka.Reader, partition int, next *int64, lag prometheus.Gauge,
	pause func() bool, reset func()) error {
	for {
		batch, err := d.fetch(ctx, r)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		reset()
		for {
			err := d.apply(ctx, partition, batch)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			d.log.Warn("notify: directory: cannot apply user events; retrying", "partition", partition, "error", err)
			if !pause() {
				return nil
			}
		}
		reset()
		last := batch[len(batch)-1]
		*next = last.Offset + 1
		lag.Set(float64(max(last.HighWaterMark-last.Offset-1, 0)))
	}
}

// fetch waits for a record, then takes what follows within a few milliseconds, up to
// BatchSize.
func (d *Directory) fetch(ctx context.Context, r *kafka.Reader) ([]kafka.Message, error) {
	m, err := r.FetchMessage(ctx)
	if err != nil {
		return nil, err
	}
	batch := []kafka.Message{m}
	for len(batch) < d.cfg.BatchSize {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
		m, err := r.FetchMessage(lctx)
		cancel()
		if err != nil {
			break
		}
		batch = append(batch, m)
	}
	return batch, nil
}

// position returns the next offset to read on a partition: the stored one, or the first.
func (d *Directory) position(ctx context.Context, partition int) (int64, error) {
	var next int64
	err := d.pool.QueryRow(ctx, `select next_offset from annals_notifier_directory_offsets
		where topic = $1 and partition = $2`, d.cfg.Topic, partition).Scan(&next)
	if errors.Is(err, pgx.ErrNoRows) {
		return kafka.FirstOffset, nil
	}
	return next, err
}

// apply applies a partition's records and moves its position past them, in one transaction.
// When that fails for another reason than the database's own (postgres.Transient: the server
// unreachable, a deadlock, a read-only server, ...), which is retried, it applies them one by
// one, skipping (and logging) each record that cannot be applied (a record the relay did not
// publish among them), so that one bad record never stops the directory and no good one is
// ever skipped for the database's sake.
func (d *Directory) apply(ctx context.Context, partition int, batch []kafka.Message) error {
	err := d.applyTx(ctx, partition, batch, false)
	if err == nil || postgres.Transient(err) || consume.IsUnavailable(err) || ctx.Err() != nil {
		return err
	}
	for i := range batch {
		one := batch[i : i+1]
		err := d.applyTx(ctx, partition, one, false)
		if err == nil {
			continue
		}
		if postgres.Transient(err) || consume.IsUnavailable(err) || ctx.Err() != nil {
			return err
		}
		d.log.Error("notify: directory: skipping a user event that cannot be applied", "partition", partition,
			"offset", batch[i].Offset, "error", err)
		d.metrics.directory.WithLabelValues("skipped").Inc()
		if err := d.applyTx(ctx, partition, one, true); err != nil {
			return err
		}
	}
	return nil
}

// applyTx applies records and moves the partition's position past them in one transaction, in
// one round trip;
// with skip, it only moves the position.
func (d *Directory) applyTx(ctx context.Context, partition int, batch []kafka.Message, skip bool) error {
	// The position first: a second notifier process applying the same records waits here for
	// this transaction instead of taking row locks in another order.
	var b pgx.Batch
	b.Queue(`insert into annals_notifier_directory_offsets (topic, partition, next_offset) values ($1, $2, $3)
		on conflict (topic, partition) do update
		set next_offset = greatest(annals_notifier_directory_offsets.next_offset, excluded.next_offset)`,
		d.cfg.Topic, partition, batch[len(batch)-1].Offset+1)
	applied := 0
	for _, m := range batch {
		if skip {
			break
		}
		e, err := d.cfg.Decode(m)
		if err == nil {
			err = d.queueUserEvent(ctx, &b, e)
		}
		if errors.Is(err, errNotUserEvent) {
			continue
		}
		if err != nil {
			return fmt.Errorf("offset %d: %w", m.Offset, err)
		}
		applied++
	}
	// One round trip: PostgreSQL runs a batch sent outside a transaction as one transaction,
	// which commits at its end, or rolls back when any statement fails.
	if err := d.pool.SendBatch(ctx, &b).Close(); err != nil {
		return err
	}
	d.metrics.directory.WithLabelValues("applied").Add(float64(applied))
	return nil
}

var errNotUserEvent = errors.New("not a user event the directory keeps")

// queueUserEvent queues the statements that apply a user event to the directory: one
// statement, guarded by the stream's version, so a redelivered event changes nothing. The
// email and name are decrypted first (see reveal); those of a user whose data key is
// destroyed, and a UserPersonalDataErased, erase the user's personal data (queueErasure).
func (d *Directory) queueUserEvent(ctx context.Context, b *pgx.Batch, e events.Envelope) error {
	id, err := domain.StreamUUID(e.StreamID, domain.UserCategory)
	if err != nil {
		return err
	}
	switch e.Type {
	case domain.EventUserCreated:
		var data domain.UserCreated
		if err := json.Unmarshal(e.Data, &data); err != nil {
			return fmt.Errorf("%s data: %w", e.Type, err)
		}
		if erased, err := reveal(ctx, d.keys, id, &data.Email, &data.Name); err != nil || erased {
			if erased {
				queueErasure(b, id, e.Version, e.RecordedAt)
			}
			return err
		}
		b.Queue(`insert into annals_notifier_users as u (user_id, email, name, status, deactivated_at, version)
			values ($1, $2, $3, 'active', null, $4)
			on conflict (user_id) do update set email = excluded.email, name = excluded.name, status = 'active',
				deactivated_at = null, version = excluded.version, updated_at = clock_timestamp()
			where u.version < excluded.version and u.erased_at is null`,
			id, clean(data.Email), clean(data.Name), e.Version)
	case domain.EventUserProfileUpdated:
		var data domain.UserProfileUpdated
		if err := json.Unmarshal(e.Data, &data); err != nil {
			return fmt.Errorf("%s data: %w", e.Type, err)
		}
		if erased, err := reveal(ctx, d.keys, id, data.Email, data.Name); err != nil || erased {
			if erased {
				queueErasure(b, id, e.Version, e.RecordedAt)
			}
			return err
		}
		b.Queue(`insert into annals_notifier_users as u (user_id, email, name, status, version)
			values ($1, coalesce($2::text, ''), coalesce($3::text, ''), 'active', $4)
			on conflict (user_id) do update set email = coalesce($2::text, u.email), name = coalesce($3::text, u.name),
				version = excluded.version, updated_at = clock_timestamp()
			where u.version < excluded.version and u.erased_at is null`,
			id, cleanPtr(data.Email), cleanPtr(data.Name), e.Version)
	case domain.EventUserDeactivated:
		b.Queue(`insert into annals_notifier_users as u (user_id, email, name, status, deactivated_at, version)
			values ($1, '', '', 'deactivated', $2, $3)
			on conflict (user_id) do update set status = 'deactivated', deactivated_at = excluded.deactivated_at,
				version = excluded.version, updated_at = clock_timestamp()
			where u.version < excluded.version`,
			id, e.RecordedAt, e.Version)
	case domain.EventUserPersonalDataErased:
		var data domain.UserPersonalDataErased
		if err := json.Unmarshal(e.Data, &data); err != nil {
			return fmt.Errorf("%s data: %w", e.Type, err)
		}
		at := e.RecordedAt
		if !data.ErasedAt.IsZero() {
			at = data.ErasedAt
		}
		queueErasure(b, id, e.Version, at)
	default:
		return errNotUserEvent
	}
	return nil
}

// user is a user as the directory knows it.
type user struct {
	Email         string
	Name          string
	Status        string
	DeactivatedAt *time.Time
	ErasedAt      *time.Time // when the user's personal data was erased; email and name are then empty
	Version       int64      // of the user's last event applied
}

// lookupUser returns the directory's row of a user; ok is false when there is none.
func lookupUser(ctx context.Context, db *pgxpool.Pool, id uuid.UUID) (u user, ok bool, err error) {
	err = db.QueryRow(ctx, `select email, name, status, deactivated_at, erased_at, version from annals_notifier_users where user_id = $1`, id).
		Scan(&u.Email, &u.Name, &u.Status, &u.DeactivatedAt, &u.ErasedAt, &u.Version)
	if errors.Is(err, pgx.ErrNoRows) {
		return user{}, false, nil
	}
	return u, err == nil, err
}

// clean makes s storable as PostgreSQL text: valid UTF-8, without NUL bytes.
func clean(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return strings.ReplaceAll(s, "\x00", "")
}

func cleanPtr(s *string) *string {
	if s == nil {
		return nil
	}
	c := clean(*s)
	return &c
}
