package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/events"
)

// pathID reads a UUID path value.
func pathID(r *http.Request, name string) (string, error) {
	return parseID(name, r.PathValue(name))
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// create runs a command that creates the aggregate named by the body's id (a new UUIDv7
// when absent): decode reads the body into that id and the command's run.
func create[S any](a *API, w http.ResponseWriter, r *http.Request, repo *events.Repository[S],
	decode func(body []byte) (id string, run func(context.Context, *events.Aggregate[S]) error, err error)) error {
	req, err := a.begin(w, r)
	if req == nil {
		return err
	}
	id, run, err := decode(req.body)
	if err != nil {
		return err
	}
	fresh := id == ""
	if fresh {
		id = newID()
	}
	return execute(a, w, r, req, command[S]{repo: repo, id: id, create: true, fresh: fresh, run: run})
}

// change runs a command on the existing aggregate named by the path's id: decode reads the
// request's body into the command.
func change[S any](a *API, w http.ResponseWriter, r *http.Request, repo *events.Repository[S],
	decode func(r *http.Request, body []byte) (func(*events.Aggregate[S]) error, error)) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	req, err := a.begin(w, r)
	if req == nil {
		return err
	}
	run, err := decode(r, req.body)
	if err != nil {
		return err
	}
	return execute(a, w, r, req, command[S]{repo: repo, id: id,
		run: func(_ context.Context, agg *events.Aggregate[S]) error { return run(agg) }})
}

func (a *API) createUser(w http.ResponseWriter, r *http.Request) error {
	return create(a, w, r, a.users, func(body []byte) (string, func(context.Context, *events.Aggregate[domain.UserState]) error, error) {
		cmd, err := decodeCreateUser(body)
		return cmd.ID, func(ctx context.Context, u *events.Aggregate[domain.UserState]) error {
			return domain.CreateUserSealed(u, cmd.Email, cmd.Name, a.seal(ctx, u.ID()))
		}, err
	})
}

func (a *API) updateUser(w http.ResponseWriter, r *http.Request) error {
	return change(a, w, r, a.users, func(r *http.Request, body []byte) (func(*events.Aggregate[domain.UserState]) error, error) {
		upd, err := decodeUpdateUser(body)
		return func(u *events.Aggregate[domain.UserState]) error {
			return domain.UpdateUserProfileSealed(u, upd, a.seal(r.Context(), u.ID()))
		}, err
	})
}

func (a *API) deactivateUser(w http.ResponseWriter, r *http.Request) error {
	return change(a, w, r, a.users, func(_ *http.Request, body []byte) (func(*events.Aggregate[domain.UserState]) error, error) {
		reason, err := decodeReason(body)
		return func(u *events.Aggregate[domain.UserState]) error { return domain.DeactivateUser(u, reason) }, err
	})
}

func (a *API) createOrder(w http.ResponseWriter, r *http.Request) error {
	return create(a, w, r, a.orders, func(body []byte) (string, func(context.Context, *events.Aggregate[domain.OrderState]) error, error) {
		cmd, err := decodeCreateOrder(body)
		return cmd.ID, func(ctx context.Context, o *events.Aggregate[domain.OrderState]) error {
			// The user is read, not locked: an order placed while its user is being
			// deactivated may still be accepted.
			u, _, err := a.users.Load(ctx, cmd.UserID)
			if errors.Is(err, events.ErrNotFound) {
				u, err = a.users.New(cmd.UserID), nil
			}
			if err != nil {
				return err
			}
			return domain.CreateOrder(o, u, cmd.Items)
		}, err
	})
}

func (a *API) addItem(w http.ResponseWriter, r *http.Request) error {
	return change(a, w, r, a.orders, func(_ *http.Request, body []byte) (func(*events.Aggregate[domain.OrderState]) error, error) {
		it, err := decodeItem(body)
		return func(o *events.Aggregate[domain.OrderState]) error { return domain.AddItem(o, it) }, err
	})
}

func (a *API) removeItem(w http.ResponseWriter, r *http.Request) error {
	return change(a, w, r, a.orders, func(r *http.Request, body []byte) (func(*events.Aggregate[domain.OrderState]) error, error) {
		itemID := r.PathValue("item_id")
		if err := domain.ValidateItemID("item_id", itemID); err != nil {
			return nil, validation(err)
		}
		if err := decodeEmpty(body); err != nil {
			return nil, err
		}
		return func(o *events.Aggregate[domain.OrderState]) error { return domain.RemoveItem(o, itemID) }, nil
	})
}

func (a *API) confirmOrder(w http.ResponseWriter, r *http.Request) error {
	return change(a, w, r, a.orders, func(_ *http.Request, body []byte) (func(*events.Aggregate[domain.OrderState]) error, error) {
		return domain.ConfirmOrder, decodeEmpty(body)
	})
}

func (a *API) cancelOrder(w http.ResponseWriter, r *http.Request) error {
	return change(a, w, r, a.orders, func(_ *http.Request, body []byte) (func(*events.Aggregate[domain.OrderState]) error, error) {
		reason, err := decodeReason(body)
		return func(o *events.Aggregate[domain.OrderState]) error { return domain.CancelOrder(o, reason) }, err
	})
}

func (a *API) shipOrder(w http.ResponseWriter, r *http.Request) error {
	return change(a, w, r, a.orders, func(_ *http.Request, body []byte) (func(*events.Aggregate[domain.OrderState]) error, error) {
		return domain.ShipOrder, decodeEmpty(body)
	})
}
