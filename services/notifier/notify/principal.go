package notify

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/annals-dev/annals/internal/auth"
	"github.com/annals-dev/annals/pkg/events"
)

// UnknownActorKind is the principal kind of the events whose metadata names no actor (those
// recorded before the writer stored one): they share one bucket of the limit.
const UnknownActorKind = "unknown"

// ReasonPrincipalLimit is the reason label of annals_notifier_emails_suppressed_total for an
// email over EmailsPerPrincipalHour.
const ReasonPrincipalLimit = "principal_limit"

// principal is who caused an email: the actor of the command that recorded its event.
type principal struct {
	kind, issuer, name string
}

// principalOf reads the actor from an event's metadata: UnknownActorKind, with no issuer or
// name, when the metadata names none.
func principalOf(md map[string]string) principal {
	p := principal{kind: md[auth.MetaActorKind], issuer: md[auth.MetaActorIssuer], name: md[auth.MetaActor]}
	if p.kind == "" && p.name == "" {
		return principal{kind: UnknownActorKind}
	}
	return p
}

// key is a SHA-256 of p's kind, issuer and name, each after its length, so that no two
// principals share one and the longest token subject fits the index.
func (p principal) key() []byte {
	h := sha256.New()
	for _, s := range []string{p.kind, p.issuer, p.name} {
		h.Write(binary.AppendUvarint(nil, uint64(len(s))))
		h.Write([]byte(s))
	}
	return h.Sum(nil)
}

// hourOf is the hour an event was recorded in: the limit counts the emails of the commands
// of an hour, wherever the notifier is when it reads them, so that a redelivery, a backlog or
// a restart counts an event in the same hour.
func hourOf(e events.Envelope) time.Time {
	return e.RecordedAt.UTC().Truncate(time.Hour)
}

// admit decides, in one transaction, whether the email of row may go out under
// EmailsPerPrincipalHour: it counts the email against its principal's hour when the hour has
// room, or records row as suppressed in the sent log. The decision is kept by event id, so an
// event delivered again gets the same one and is not counted twice. fresh is false when the
// event had been decided before.
func (n *Notifier) admit(ctx context.Context, e events.Envelope, row Notification) (ok, fresh bool, err error) {
	p, hour := principalOf(e.Metadata), hourOf(e)
	key := p.key()
	err = pgx.BeginFunc(ctx, n.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `insert into annals_notifier_principal_emails (event_id, principal, hour, admitted)
			values ($1, $2, $3, true) on conflict (event_id) do nothing`, e.EventID, key, hour)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return tx.QueryRow(ctx, `select admitted from annals_notifier_principal_emails where event_id = $1`, e.EventID).Scan(&ok)
		}
		fresh = true
		var emails int
		err = tx.QueryRow(ctx, `insert into annals_notifier_principal_hours as h
				(principal, hour, actor_kind, actor_issuer, actor, emails)
			values ($1, $2, $3, $4, $5, 1)
			on conflict (principal, hour) do update set emails = h.emails + 1 where h.emails < $6
			returning emails`, key, hour, clean(p.kind), clean(p.issuer), clean(p.name), n.opts.EmailsPerPrincipalHour).Scan(&emails)
		if err == nil {
			ok = true
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		// The hour is full: the row of the hour is locked by the statement above until commit.
		if _, err := tx.Exec(ctx, `update annals_notifier_principal_hours set suppressed = suppressed + 1
			where principal = $1 and hour = $2`, key, hour); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `update annals_notifier_principal_emails set admitted = false where event_id = $1`, e.EventID); err != nil {
			return err
		}
		row.Status = StatusSuppressed
		row.Reason = fmt.Sprintf("the commands of its principal (%s) caused %d emails in the hour of %s already (NOTIFIER_EMAILS_PER_PRINCIPAL_HOUR)",
			p.kind, n.opts.EmailsPerPrincipalHour, hour.Format(time.RFC3339))
		return record(ctx, tx, row)
	})
	if err != nil {
		return false, false, fmt.Errorf("principal limit: %w", err)
	}
	return ok, fresh, nil
}
