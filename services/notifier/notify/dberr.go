package notify

import (
	"github.com/annals-dev/annals/pkg/consume"
)

// dbError marks a database error for the consumer runtime by the one rule of every consumer
// (consume.PostgresError): a failure of the server or of the moment (unreachable, a deadlock,
// a serialization failure, a cancelled statement, a read-only server, a full disk) is
// Unavailable and pauses the group; data the database refuses (class 22: a NUL byte in a
// text, say) is Permanent; anything else is an ordinary failure that is retried and then
// dead-lettered.
func dbError(err error) error { return consume.PostgresError(err) }
