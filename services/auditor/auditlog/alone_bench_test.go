package auditlog_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/services/auditor/auditlog"
)

// BenchmarkHandleAlone is the auditor's cost per event when each unit of work holds one event,
// as when events come at a low rate spread over many partitions: each op appends one event in
// a transaction of PostgresUnit on the auditor's role, through Handle. It reports the round
// trips to PostgreSQL, the statements, and the CPU time of the server and of this process per
// event.
func BenchmarkHandleAlone(b *testing.B) {
	owner, schema := testenv.SchemaPool(b)
	ctx := context.Background()
	migrateEventStore(b, owner)
	if _, err := auditlog.Migrate(ctx, owner, nil, ""); err != nil {
		b.Fatal(err)
	}
	counting, rt := testenv.CountingPool(b, schema)
	role, err := auditlog.RolePool(ctx, counting, "")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(role.Close)
	l := auditlog.New(role, auditlog.Options{})
	unit := consume.PostgresUnit(role)
	stream := fmt.Sprintf("user-%s", uuid.Must(uuid.NewV7()))
	v := int64(0)
	handle := func() {
		m := message(envelope(stream, v), "audit.test", 0, v)
		v++
		if err := unit(ctx, func(ctx context.Context) error { return l.Handle(ctx, m) }); err != nil {
			b.Fatal(err)
		}
	}
	rt.Bench(b, "event", 4, handle)
}
