package notify

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/shred"
)

// Erased replaces an erased user's email and name in the sent log, and is the recipient of
// the rows of their emails suppressed for the erasure.
const Erased = domain.Erased

// ReasonErased is the reason of an email not sent because its user's personal data was
// erased: in the sent log (status suppressed) and in the reason label of
// annals_notifier_emails_suppressed_total.
const ReasonErased = "erased"

// Decrypter opens the personal values the writer recorded encrypted (a *shred.Keyring): a
// value that is not encrypted comes back as it is, a value whose subject was erased fails
// with shred.ErrErased.
type Decrypter interface {
	Decrypt(ctx context.Context, subject, value string) (string, error)
}

// subjectOf is the keyring subject of a user's personal data (domain.PersonalDataSubject).
func subjectOf(id uuid.UUID) string {
	subject, _ := domain.PersonalDataSubject(events.StreamID(domain.UserCategory, id.String()))
	return subject
}

// reveal replaces the user's encrypted values by their clear text; erased is true when the
// user's data key is destroyed, and the values are then Erased. Without keys, values stay as
// they are. A value that is damaged, sealed for another user, or whose user never had a key
// is the event's fault (consume.Permanent); any other failure is the key store's or the KEK's,
// a data key that does not unwrap (shred.ErrKeyUnusable) included (consume.Unavailable: tried
// again).
func reveal(ctx context.Context, keys Decrypter, id uuid.UUID, values ...*string) (erased bool, err error) {
	if keys == nil {
		return false, nil
	}
	for _, v := range values {
		if v == nil || !shred.IsEncrypted(*v) {
			continue
		}
		clear, err := keys.Decrypt(ctx, subjectOf(id), *v)
		switch {
		case errors.Is(err, shred.ErrErased):
			erased, clear = true, Erased
		case errors.Is(err, shred.ErrInvalidCiphertext), errors.Is(err, shred.ErrNoKey):
			return false, consume.Permanent(fmt.Errorf("user %s: %w", id, err))
		case err != nil:
			return false, consume.Unavailable(fmt.Errorf("user %s: %w", id, err))
		}
		*v = clear
	}
	if erased { // every value of an erased user reads as erased, not only the encrypted ones
		for _, v := range values {
			if v != nil {
				*v = Erased
			}
		}
	}
	return erased, nil
}

// userLockSQL takes the transaction-level advisory lock of a user's rows in the sent log: an
// erasure and the recording of one of the user's emails take turns, so that the erasure sees
// every row recorded before it, and a row recorded after it sees the erasure.
const userLockSQL = `select pg_advisory_xact_lock(hashtext('annals_notifier_user'), hashtext($1::text))`

// queueErasure queues the statements that erase a user's personal data from the notifier's
// tables: the sent log's rows of the user's emails (found by user, by the user's and their
// orders' streams, and by the address the directory has) lose their recipient and subject,
// and the directory's row becomes a tombstone without email and name, with erased_at. They
// run whatever the row's version: erasure is final, and doing it again changes nothing.
func queueErasure(b *pgx.Batch, id uuid.UUID, version int64, at any) {
	b.Queue(userLockSQL, id)
	b.Queue(`update annals_notifier_sent s set recipient = '`+Erased+`', subject = '`+Erased+`', user_id = $1
		where s.user_id = $1 or s.stream_id = 'user-' || $1::text
			or s.stream_id in (select 'order-' || o.order_id::text from annals_notifier_orders o where o.user_id = $1)
			or lower(s.recipient) = (select lower(u.email) from annals_notifier_users u where u.user_id = $1 and u.email <> '')`, id)
	b.Queue(`insert into annals_notifier_users as u (user_id, email, name, status, version, erased_at)
		values ($1, '', '', 'active', $2, $3)
		on conflict (user_id) do update set email = '', name = '', erased_at = coalesce(u.erased_at, excluded.erased_at),
			version = greatest(u.version, excluded.version), updated_at = clock_timestamp()`, id, version, at)
}
