package mongodb

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/annals-dev/annals/pkg/events"
)

// Options tune a Store. The zero value means the defaults.
type Options struct {
	// MaxEventsPerStream refuses appends that would take a stream past this many events, as
	// the PostgreSQL store's option of the same name does; 0 means no limit.
	MaxEventsPerStream int
	// MaxEventBytes refuses appends with an event larger than this (events.Event.Size, data
	// and metadata), as the PostgreSQL store's option of the same name does; 0 means no limit.
	MaxEventBytes int
	// OnAppend, when set, is called after every append that landed, for example to wake a
	// relay of the same process. It must not block. The Outbox of Store.Outbox wakes its
	// relay without it.
	OnAppend func()
	// LeaseTTL is how long the publishing relay's lease on the outbox lasts without being
	// renewed (10 s): after a relay stops without closing its session (a crash, a lost
	// network), another takes over after at most this long. Only the Outbox reads it.
	LeaseTTL time.Duration
}

// Store is an event store in one MongoDB database. It is safe for concurrent use.
type Store struct {
	opts      Options
	next      sync.Mutex // held by an append while it takes the next position
	appends   *mongo.Collection
	ids       *mongo.Collection
	snapshots *mongo.Collection
	db        *mongo.Database

	wakeMu sync.Mutex
	wakers map[*func()]struct{} // the relays of this process listening on the store's Outbox
}

var _ events.Store = (*Store)(nil)

// Names of the collections.
const (
	collAppends   = "appends"
	collIDs       = "event_ids"
	collSnapshots = "snapshots"
)

// New returns a Store in db and creates its indexes when they are missing. db's client should
// have been connected with the write concern the package doc describes; the Store sets it on
// its collections either way.
func New(ctx context.Context, db *mongo.Database, opts Options) (*Store, error) {
	co := options.Collection().
		SetWriteConcern(&writeconcern.WriteConcern{W: "majority", Journal: ptr(true)}).
		SetReadConcern(readconcern.Majority())
	s := &Store{
		opts:      opts,
		appends:   db.Collection(collAppends, co),
		ids:       db.Collection(collIDs, co),
		snapshots: db.Collection(collSnapshots, co),
		db:        db,
		wakers:    map[*func()]struct{}{},
	}
	if err := s.migrate(ctx); err != nil {
		return nil, fmt.Errorf("mongodb store: %w", err)
	}
	if err := migrateOutbox(ctx, db); err != nil {
		return nil, fmt.Errorf("mongodb store: %w", err)
	}
	return s, nil
}

// appended tells whoever listens that an append landed.
func (s *Store) appended() {
	if s.opts.OnAppend != nil {
		s.opts.OnAppend()
	}
	s.wakeMu.Lock()
	defer s.wakeMu.Unlock()
	for w := range s.wakers {
		(*w)()
	}
}

// listen calls wake after every append of this Store until the returned function is called.
func (s *Store) listen(wake func()) (stop func()) {
	s.wakeMu.Lock()
	defer s.wakeMu.Unlock()
	s.wakers[&wake] = struct{}{}
	return func() {
		s.wakeMu.Lock()
		defer s.wakeMu.Unlock()
		delete(s.wakers, &wake)
	}
}

// migrate creates the indexes; creating one that exists is a no-op.
func (s *Store) migrate(ctx context.Context) error {
	for _, ix := range []struct {
		coll  *mongo.Collection
		name  string
		model mongo.IndexModel
	}{
		{s.appends, "stream_first_version", mongo.IndexModel{
			Keys:    bson.D{{Key: "stream", Value: 1}, {Key: "fv", Value: 1}},
			Options: options.Index().SetName("stream_first_version").SetUnique(true),
		}},
		{s.appends, "outbox", mongo.IndexModel{
			Keys:    bson.D{{Key: "ob", Value: 1}, {Key: "_id", Value: 1}},
			Options: options.Index().SetName("outbox"),
		}},
		{s.appends, "outbox_held", mongo.IndexModel{
			Keys:    bson.D{{Key: "held", Value: 1}, {Key: "stream", Value: 1}},
			Options: options.Index().SetName("outbox_held").SetSparse(true),
		}},
		{s.appends, "last_position", mongo.IndexModel{
			Keys:    bson.D{{Key: "last", Value: 1}},
			Options: options.Index().SetName("last_position"),
		}},
		// Sparse: documents without a key are not in it (on FerretDB, whose backends do not
		// take the option, a missing key indexes as NULL, and NULLs do not collide).
		{s.appends, "idempotency_key", mongo.IndexModel{
			Keys:    bson.D{{Key: "ik", Value: 1}},
			Options: options.Index().SetName("idempotency_key").SetUnique(true).SetSparse(true),
		}},
		{s.appends, "idempotency_time", mongo.IndexModel{
			Keys:    bson.D{{Key: "ikat", Value: 1}},
			Options: options.Index().SetName("idempotency_time").SetSparse(true),
		}},
		{s.snapshots, "stream_schema_version", mongo.IndexModel{
			Keys:    bson.D{{Key: "stream", Value: 1}, {Key: "ssv", Value: 1}, {Key: "version", Value: 1}},
			Options: options.Index().SetName("stream_schema_version").SetUnique(true),
		}},
	} {
		if _, err := ix.coll.Indexes().CreateOne(ctx, ix.model); err != nil {
			return fmt.Errorf("create index %s.%s: %w", ix.coll.Name(), ix.name, err)
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// appendDoc is the document of one append.
type appendDoc struct {
	First        int64      `bson:"_id"`  // global position of the first event
	Last         int64      `bson:"last"` // global position of the last event
	Stream       string     `bson:"stream"`
	FirstVersion int64      `bson:"fv"`
	LastVersion  int64      `bson:"lv"`
	At           int64      `bson:"at"` // recording time, Unix microseconds
	Correlation  string     `bson:"corr,omitempty"`
	Causation    string     `bson:"cause,omitempty"`
	Events       []eventDoc `bson:"events"`

	// The append's state in the outbox: Outbox while it waits to be published (unset once it
	// is), Held while it waits behind its stream's hold, Dead once an operator skipped it.
	Outbox bool     `bson:"ob,omitempty"`
	Held   bool     `bson:"held,omitempty"`
	Dead   *deadDoc `bson:"dead,omitempty"`

	// The append's idempotency record (events.AppendOptions.Idempotency), in the same
	// document, so that it exists exactly when the events do: the key (unique over the
	// documents that have one), the request's hash, the status and the recording time again
	// (what a prune goes by, in an index of its own that only keyed documents are in).
	Key       string `bson:"ik,omitempty"`
	KeyHash   []byte `bson:"ih,omitempty"`
	KeyStatus int    `bson:"is,omitempty"`
	KeyAt     int64  `bson:"ikat,omitempty"`
}

// eventDoc is one event of an append.
type eventDoc struct {
	ID            string `bson:"id"`
	Type          string `bson:"type"`
	SchemaVersion int    `bson:"sv"`
	Data          string `bson:"data"`
	Meta          string `bson:"meta"`
}

// isDuplicate reports whether err is a duplicate key error (code 11000 on MongoDB and
// FerretDB).
func isDuplicate(err error) bool { return mongo.IsDuplicateKeyError(err) }

// wrapCtx makes an error of a call whose context ended wrap the context's error, which the
// driver does not always do.
func wrapCtx(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w: %w", cerr, err)
	}
	return err
}

// micro converts a recording time of a document to a UTC time.
func micro(us int64) time.Time { return time.UnixMicro(us).UTC() }

// isNoDocuments reports whether err says that a query found no document.
func isNoDocuments(err error) bool { return errors.Is(err, mongo.ErrNoDocuments) }
