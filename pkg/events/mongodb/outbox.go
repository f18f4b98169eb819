package mongodb

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/annals-dev/annals/pkg/events/outbox"
)

// Outbox is the publishing side of the outbox that appends fill (the append documents still
// marked unpublished): the lease that elects one publishing relay, the wake-ups from appends,
// and, through the Session it hands out, every read and settlement of the outbox; and the
// operator's commands on held streams. It implements relay.Outbox.
type Outbox struct {
	ttl     time.Duration
	store   *Store // the Store whose appends wake Listen; nil from NewOutbox
	appends *mongo.Collection
	holds   *mongo.Collection
	leases  *mongo.Collection

	now  func() time.Time  // the relays' clock: time.Now but in tests
	hook func(step string) // nil but in tests: called at each step of a lease renewal
}

// Names of the outbox's own collections.
const (
	collHolds  = "outbox_holds"
	collLeases = "outbox_leases"
)

// defaultLeaseTTL is the publishing lease's time to live when Options.LeaseTTL is not set.
const defaultLeaseTTL = 10 * time.Second

// ErrLeaseLost: the session's lease on the outbox expired or another relay took it; the
// session reads and settles nothing more.
var ErrLeaseLost = errors.New("the outbox lease is lost")

// NewOutbox returns the Outbox of the event store in db, with the lease time to live of
// opts.LeaseTTL (the other options are the Store's). Its Listen wakes nothing: the relay
// finds the appends by polling (see the package doc); Store.Outbox returns one that the
// Store's own appends wake.
func NewOutbox(db *mongo.Database, opts Options) *Outbox {
	co := options.Collection().
		SetWriteConcern(&writeconcern.WriteConcern{W: "majority", Journal: ptr(true)}).
		SetReadConcern(readconcern.Majority())
	ttl := opts.LeaseTTL
	if ttl <= 0 {
		ttl = defaultLeaseTTL
	}
	return &Outbox{
		ttl:     ttl,
		appends: db.Collection(collAppends, co),
		holds:   db.Collection(collHolds, co),
		leases:  db.Collection(collLeases, co),
		now:     time.Now,
	}
}

// Outbox returns the Outbox of the store's database, woken by the store's appends.
func (s *Store) Outbox() *Outbox {
	o := NewOutbox(s.db, s.opts)
	o.store = s
	return o
}

// migrateOutbox creates the indexes of the outbox's collections.
func migrateOutbox(ctx context.Context, db *mongo.Database) error {
	_, err := db.Collection(collLeases).Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "key", Value: 1}, {Key: "term", Value: -1}},
		Options: options.Index().SetName("key_term"),
	})
	if err != nil {
		return fmt.Errorf("create index %s.key_term: %w", collLeases, err)
	}
	return nil
}

// leaseDoc is one term of the publishing lease of a lock key: the relay that won it and until
// when (Unix microseconds of the relays' clocks). Its _id is "<key>/<term>", so that of the
// relays that try to start the same term only one inserts it.
type leaseDoc struct {
	ID    string `bson:"_id"`
	Key   int64  `bson:"key"`
	Term  int64  `bson:"term"`
	Owner string `bson:"owner"`
	Until int64  `bson:"until"`
}

func leaseID(key, term int64) string { return fmt.Sprintf("%d/%d", key, term) }

// Lead waits, trying every poll, until the caller wins the lease of key, and returns the
// session that holds it, renewing it until the session is closed or lost. It returns ctx's
// error when ctx ends first: ctx bounds the wait, not the session.
//
// The lease is a sequence of terms, one document each: a relay takes the next term when the
// latest has expired (or there is none) by inserting its document, and the unique _id lets
// exactly one relay insert it. Only the term's owner updates it afterwards, to renew it or to
// give it up (Close), so no two writers ever race on one document: FerretDB's conditional
// updates are not atomic, its unique indexes are.
func (o *Outbox) Lead(ctx context.Context, key int64, poll time.Duration) (outbox.Session, error) {
	owner := uuid.NewString()
	for {
		s, err := o.tryLead(ctx, key, owner)
		if err != nil {
			return nil, err
		}
		if s != nil {
			return s, nil
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// tryLead takes the next term of the lease if the latest has expired; nil when another relay
// holds it or took it first.
func (o *Outbox) tryLead(ctx context.Context, key int64, owner string) (*session, error) {
	var cur leaseDoc
	err := o.leases.FindOne(ctx, bson.D{{Key: "key", Value: key}}, options.FindOne().SetSort(bson.D{{Key: "term", Value: -1}})).Decode(&cur)
	next := int64(1)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
	case err != nil:
		return nil, fmt.Errorf("outbox lease: %w", wrapCtx(ctx, err))
	case o.now().UnixMicro() < cur.Until:
		return nil, nil
	default:
		next = cur.Term + 1
	}
	until := o.now().Add(o.ttl).UnixMicro()
	_, err = o.leases.InsertOne(ctx, leaseDoc{ID: leaseID(key, next), Key: key, Term: next, Owner: owner, Until: until})
	if isDuplicate(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("outbox lease: %w", wrapCtx(ctx, err))
	}
	// The terms before the one before are no one's any more.
	_, _ = o.leases.DeleteMany(ctx, bson.D{{Key: "key", Value: key}, {Key: "term", Value: bson.D{{Key: "$lt", Value: next - 1}}}})
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &session{o: o, id: leaseID(key, next), key: key, term: next, owner: owner, until: until, stop: cancel, done: make(chan struct{})}
	go s.renew(rctx)
	return s, nil
}

// Listen calls wake after every append of the Store the Outbox came from (Store.Outbox), until
// ctx ends, and returns ctx's error. FerretDB has no change streams, so appends of other
// processes are not heard: the relay finds them by polling (relay.Config.PollInterval).
func (o *Outbox) Listen(ctx context.Context, wake func()) error {
	if o.store != nil {
		stop := o.store.listen(wake)
		defer stop()
	}
	<-ctx.Done()
	return ctx.Err()
}

// session is the publishing relay's hold on the outbox: a term of the lease, renewed in the
// background while it lasts.
type session struct {
	o     *Outbox
	id    string
	key   int64
	term  int64
	owner string
	stop  context.CancelFunc
	done  chan struct{}
	once  sync.Once

	mu    sync.Mutex
	until int64 // the lease's expiry as last renewed, Unix microseconds
	lost  bool

	read map[appendKey]readAppend // the appends of the last Pending
}

// appendKey names an append in the outbox; readAppend is what Settle needs of one Pending
// read.
type (
	appendKey struct {
		stream string
		first  int64
	}
	readAppend struct {
		position int64
		last     int64
	}
)

var (
	_ outbox.Session  = (*session)(nil)
	_ outbox.Operator = (*Outbox)(nil)
)

// margin is how long before its lease expires a session stops trusting it: it settles
// nothing after that, because another relay may take the lease at expiry, and clocks and
// round trips are not exact. It is also how often the lease is renewed.
func (s *session) margin() time.Duration { return s.o.ttl / 5 }

// renew extends the lease every margin while it is still valid, until ctx ends (Close ends
// it; Lead's context does not). A renewal
// that fails is tried again at the next turn; once the lease is within margin of expiring, or
// a later term exists, the session is lost.
func (s *session) renew(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.margin())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.step("tick")
		stop := s.renewOnce(ctx)
		s.step("turn")
		if stop {
			return
		}
	}
}

// renewOnce is one turn of renew: it extends the lease, and reports whether the session is
// lost. A renewal that lands within margin of the lease's expiry as it was before loses the
// session rather than extend it: another relay may have read the term as expired and started
// the next one after the check for later terms ran.
func (s *session) renewOnce(ctx context.Context) (lost bool) {
	if s.fence() != nil {
		return true
	}
	s.mu.Lock()
	before := s.until
	s.mu.Unlock()
	until := s.o.now().Add(s.o.ttl).UnixMicro()
	res, err := s.o.leases.UpdateOne(ctx, bson.D{{Key: "_id", Value: s.id}, {Key: "owner", Value: s.owner}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "until", Value: until}}}})
	s.step("updated")
	if err != nil {
		return false
	}
	if res.MatchedCount == 0 || s.o.now().Add(s.margin()).UnixMicro() >= before {
		s.lose()
		return true
	}
	later, err := s.o.leases.CountDocuments(ctx, bson.D{{Key: "key", Value: s.key}, {Key: "term", Value: bson.D{{Key: "$gt", Value: s.term}}}})
	if err != nil {
		return false
	}
	if later > 0 {
		s.lose()
		return true
	}
	s.mu.Lock()
	s.until = until
	s.mu.Unlock()
	return false
}

// step calls the Outbox's test hook, if any.
func (s *session) step(name string) {
	if s.o.hook != nil {
		s.o.hook(name)
	}
}

func (s *session) lose() {
	s.mu.Lock()
	s.lost = true
	s.mu.Unlock()
}

// fence returns ErrLeaseLost, and loses the session, unless its lease holds for more than
// margin still. Pending and Settle call it before they touch the outbox.
func (s *session) fence() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.lost && s.o.now().Add(s.margin()).UnixMicro() < s.until {
		return nil
	}
	s.lost = true
	return fmt.Errorf("outbox session %s: %w", s.id, ErrLeaseLost)
}

// Lost reports whether the session's lease expired, or may have, or was taken.
func (s *session) Lost() bool { return s.fence() != nil }

// Close stops renewing the lease and gives it up, so that another relay may take it at once.
func (s *session) Close() {
	s.once.Do(func() {
		s.stop()
		<-s.done
		if s.fence() != nil {
			return
		}
		s.lose()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = s.o.leases.UpdateOne(ctx, bson.D{{Key: "_id", Value: s.id}, {Key: "owner", Value: s.owner}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "until", Value: int64(0)}}}})
	})
}
