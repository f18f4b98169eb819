package notify

import (
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

// dbError marks a database error for the consumer runtime: the database being unreachable is
// Unavailable (the group waits for it instead of dead-lettering), data the database refuses
// (class 22: a NUL byte in a text, say) is Permanent, anything else is an ordinary failure
// that is retried and then dead-lettered.
func dbError(err error) error {
	switch {
	case err == nil:
		return nil
	case postgres.Unreachable(err):
		return consume.Unavailable(err)
	case postgres.DataException(err):
		return consume.Permanent(err)
	}
	return err
}
