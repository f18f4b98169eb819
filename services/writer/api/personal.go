package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/auth"
	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/shred"
)

// CodePersonalDataNotEncrypted is the 409 of an erasure asked of a writer that records
// personal data in clear (no PERSONAL_DATA_KEY_FILE): there is no key to destroy.
const CodePersonalDataNotEncrypted = "personal_data_not_encrypted"

// errNotEncrypted: erasure without a keyring.
var errNotEncrypted = errors.New("this deployment records personal data in clear (PERSONAL_DATA_KEY_FILE is not set): it cannot be erased by destroying a key")

// seal is the domain.Seal of the user's personal data: encrypted with the user's data key, or
// nil (in clear) without a keyring.
func (a *API) seal(ctx context.Context, userID string) domain.Seal {
	if a.keys == nil {
		return nil
	}
	return func(v string) (string, error) { return a.keys.Encrypt(ctx, userID, v) }
}

// openUser returns u with its email and name decrypted for a caller who sees personal data,
// redacted for the others. A value whose key was destroyed reads domain.Erased; a value that
// does not decrypt for a fault of its own is shown as recorded.
func (a *API) openUser(r *http.Request, u domain.UserState) (domain.UserState, error) {
	if u.Erased() {
		return u, nil // nothing personal is left
	}
	if !auth.SeesPersonalData(r.Context()) {
		return redactUser(r, u), nil
	}
	if a.keys == nil {
		return u, nil
	}
	for _, v := range []*string{&u.Email, &u.Name} {
		clear, err := a.keys.Decrypt(r.Context(), u.ID, *v)
		switch {
		case errors.Is(err, shred.ErrErased):
			*v = domain.Erased
		case errors.Is(err, shred.ErrInvalidCiphertext), errors.Is(err, shred.ErrNoKey):
			a.log.Warn("a user's personal data does not decrypt", "user_id", u.ID, "error", err)
		case err != nil:
			return u, err
		default:
			*v = clear
		}
	}
	return u, nil
}

// erasureResponse answers DELETE /v1/users/{id}/personal-data: the erasure's event and when
// the key was destroyed.
type erasureResponse struct {
	commandResponse
	ErasedAt string `json:"erased_at"`
}

// erasePersonalData destroys the user's data key and records UserPersonalDataErased, then
// deletes the user's snapshots. It is idempotent: a user erased already gets the same answer
// again, with no second event. The key is destroyed before the event is appended: an append
// that fails leaves the key destroyed, and the retry (of the client, or of a version
// conflict here) appends the event with the first erasure's time. It is refused while event
// sourcing is disabled; COMMAND_RATE_LIMIT, which limits the everyday commands, does not
// apply to it.
func (a *API) erasePersonalData(w http.ResponseWriter, r *http.Request) error {
	if a.disabled {
		return httpx.ErrEventSourcingDisabled
	}
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	if err := decodeEmpty(body); err != nil {
		return err
	}
	if a.keys == nil {
		return errNotEncrypted
	}
	ctx := r.Context()
	commandID := uuid.Must(uuid.NewV7())
	w.Header().Set(CommandIDHeader, commandID.String())
	opts := events.AppendOptions{CorrelationID: httpx.CorrelationID(r), CausationID: commandID.String(), Metadata: auth.Actor(ctx)}
	for attempt := 0; ; attempt++ {
		resp, err := a.eraseOnce(ctx, id, opts)
		if err == nil {
			w.Header().Set("ETag", etag(resp.Version))
			httpx.WriteJSON(w, http.StatusAccepted, resp)
			return nil
		}
		if conflicted(err) && attempt < a.retries {
			continue
		}
		return err
	}
}

func (a *API) eraseOnce(ctx context.Context, id string, opts events.AppendOptions) (erasureResponse, error) {
	u, _, err := a.users.Load(ctx, id)
	if err != nil {
		return erasureResponse{}, err
	}
	if st := u.State(); st.Erased() {
		return a.erasedAlready(ctx, u)
	}
	p, _ := auth.FromContext(ctx)
	erasure, err := a.keys.EraseWith(ctx, shred.Erasure{Subject: id, By: p.Kind + ":" + p.Name, Reason: "DELETE /v1/users/{id}/personal-data"})
	if err != nil {
		return erasureResponse{}, err
	}
	if err := domain.ErasePersonalData(u, erasure.ErasedAt); err != nil {
		return erasureResponse{}, err
	}
	res, err := a.users.Save(ctx, u, opts)
	if err != nil {
		return erasureResponse{}, err
	}
	if _, err := a.store.DeleteSnapshots(ctx, u.StreamID()); err != nil {
		// The snapshots hold ciphertexts whose key is gone; the next erasure call retries.
		a.log.Warn("delete the snapshots of an erased user", "stream_id", u.StreamID(), "error", err)
	}
	return erasureResponse{commandResponse: responseFor(u, res), ErasedAt: u.State().ErasedAt.Format(time.RFC3339Nano)}, nil
}

// erasedAlready answers for a user erased before: the erasure's own event, found at the
// version the state recorded it at. It deletes any snapshot left by a failed earlier call.
func (a *API) erasedAlready(ctx context.Context, u *events.Aggregate[domain.UserState]) (erasureResponse, error) {
	st := u.State()
	evs, err := a.store.ReadStream(ctx, u.StreamID(), st.ErasedVersion, st.ErasedVersion, 1)
	if err != nil {
		return erasureResponse{}, err
	}
	if len(evs) != 1 || evs[0].Type != domain.EventUserPersonalDataErased {
		return erasureResponse{}, errors.New("the erasure event is not at the version the user's state names")
	}
	if _, err := a.store.DeleteSnapshots(ctx, u.StreamID()); err != nil {
		a.log.Warn("delete the snapshots of an erased user", "stream_id", u.StreamID(), "error", err)
	}
	return erasureResponse{
		commandResponse: commandResponse{ID: u.ID(), StreamID: u.StreamID(), Version: st.ErasedVersion, Position: evs[0].GlobalPosition},
		ErasedAt:        st.ErasedAt.Format(time.RFC3339Nano),
	}, nil
}
