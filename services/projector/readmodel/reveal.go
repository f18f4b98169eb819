package readmodel

import (
	"context"
	"errors"
	"fmt"

	"github.com/annals-dev/annals/internal/domain"

	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/shred"
)

// Erased is what the read models hold, and the query API answers, for a personal value (a
// user's email or name) whose user's data key was destroyed (shred.ErrErased) when the event
// is applied, as the writer shows it for such an event. Once the user's
// UserPersonalDataErased is applied, the email and name are empty, as in the writer's
// aggregate.
const Erased = domain.Erased

// Decrypter opens the personal values the writer recorded encrypted (a *shred.Keyring): a
// value that is not encrypted comes back as it is, a value whose subject was erased fails
// with shred.ErrErased.
type Decrypter interface {
	Decrypt(ctx context.Context, subject, value string) (string, error)
}

// reveal replaces the encrypted email and name of a user step by their clear values, or by
// Erased when their subject was erased. Without a Decrypter, values are kept as they are.
//
// A value that is damaged, sealed for another subject, or whose subject never had a key
// (shred.ErrInvalidCiphertext, shred.ErrNoKey) is the event's fault: Permanent. Any other
// failure is the key store's or the KEK's, a data key that does not unwrap
// (shred.ErrKeyUnusable) included: a dependency's, consume.Unavailable, so that the consumer
// pauses and tries the event again instead of dead-lettering it.
func (p *Projection) reveal(ctx context.Context, s *step) error {
	if p.keys == nil || (s.kind != userCreated && s.kind != userProfileUpdated) {
		return nil
	}
	subject, _ := domain.PersonalDataSubject(s.e.StreamID) // a user stream's: plan checked it
	for _, v := range []*string{s.c.email, s.c.name} {
		if v == nil || !shred.IsEncrypted(*v) {
			continue
		}
		clear, err := p.keys.Decrypt(ctx, subject, *v)
		switch {
		case errors.Is(err, shred.ErrErased):
			clear = Erased
		case errors.Is(err, shred.ErrInvalidCiphertext), errors.Is(err, shred.ErrNoKey):
			return consume.Permanent(fmt.Errorf("%s %s@%d: %w", s.e.Type, s.e.StreamID, s.e.Version, err))
		case err != nil:
			return consume.Unavailable(fmt.Errorf("%s %s@%d: %w", s.e.Type, s.e.StreamID, s.e.Version, err))
		}
		*v = clear
	}
	return nil
}

// plan is the package's plan with the step's personal values revealed (see reveal). An error
// of plan is Permanent; one of reveal may be a dependency's.
func (p *Projection) plan(ctx context.Context, e events.Envelope) (step, bool, error) {
	s, ok, err := plan(e)
	if err != nil || !ok {
		return s, ok, err
	}
	// The step's pointers point into the event's decoded data, which is the step's own.
	if err := p.reveal(ctx, &s); err != nil {
		return s, false, err
	}
	return s, true, nil
}
