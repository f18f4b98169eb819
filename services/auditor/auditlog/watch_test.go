package auditlog_test

import (
	"context"
	"testing"

	"github.com/annals-dev/annals/services/auditor/auditlog"
)

// TestWatch_Truncation: a Watch notices what one verification alone cannot, the newest
// entries removed after it saw them, or the entry it ended at replaced with the chain rebuilt
// after it; appends in between are fine.
func TestWatch_Truncation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	check := func(t *testing.T, w *auditlog.Watch) auditlog.Report {
		t.Helper()
		r, err := w.Check(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	t.Run("Appended", func(t *testing.T) {
		e := newEnv(t)
		ms := messages(3, 20)
		e.appendAll(t, ms[:12], 5)
		w := e.log.NewWatch(auditlog.VerifyOptions{PageSize: 7})
		if r := check(t, w); !r.OK || r.LastSeq != 12 {
			t.Fatalf("first check: %s", r)
		}
		e.appendAll(t, ms[12:], 5)
		if r := check(t, w); !r.OK || r.LastSeq != 20 {
			t.Fatalf("after appends: %s", r)
		}
	})

	t.Run("NewestRemoved", func(t *testing.T) {
		e := newEnv(t)
		e.appendAll(t, messages(3, 15), 5)
		w := e.log.NewWatch(auditlog.VerifyOptions{})
		if r := check(t, w); !r.OK {
			t.Fatalf("first check: %s", r)
		}
		e.tamper(t, `delete from annals_audit_log where seq > 11`)
		if r := e.verify(t); !r.OK {
			t.Fatalf("a plain verification should find the shorter chain intact: %s", r)
		}
		r := check(t, w)
		if r.OK || r.Break == nil || r.Break.Problem != auditlog.ProblemTruncated || r.Break.Seq != 12 {
			t.Fatalf("after removing seq 12 to 15: %s; want truncated at 12", r)
		}
	})

	t.Run("EndReplacedAndRebuilt", func(t *testing.T) {
		e := newEnv(t)
		e.appendAll(t, messages(3, 10), 5)
		w := e.log.NewWatch(auditlog.VerifyOptions{})
		if r := check(t, w); !r.OK {
			t.Fatalf("first check: %s", r)
		}
		// A careful forger changes the last entry and recomputes its hash, so that the chain
		// alone is intact again.
		e.tamper(t, `update annals_audit_log set data = '{"name":"Mallory"}' where seq = 10`)
		e.rehash(t, 10)
		if r := e.verify(t); !r.OK {
			t.Fatalf("the rebuilt chain should verify on its own: %s", r)
		}
		r := check(t, w)
		if r.OK || r.Break == nil || r.Break.Problem != auditlog.ProblemHash || r.Break.Seq != 10 {
			t.Fatalf("after rebuilding seq 10: %s; want a hash problem at 10", r)
		}
	})
}
