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

func (a *API) createUser(w http.ResponseWriter, r *http.Request) {
	req := a.begin(w, r)
	if req == nil {
		return
	}
	cmd, err := decodeCreateUser(req.body)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if cmd.ID == "" {
		cmd.ID = newID()
	}
	execute(a, w, r, req, command[domain.UserState]{repo: a.users, id: cmd.ID, create: true,
		run: func(_ context.Context, u *events.Aggregate[domain.UserState]) error {
			return domain.CreateUser(u, cmd.Email, cmd.Name)
		}})
}

// userCommand runs a command on an existing user named by the path.
func (a *API) userCommand(w http.ResponseWriter, r *http.Request, decode func([]byte) (func(*events.Aggregate[domain.UserState]) error, error)) {
	id, err := pathID(r, "id")
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	req := a.begin(w, r)
	if req == nil {
		return
	}
	run, err := decode(req.body)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	execute(a, w, r, req, command[domain.UserState]{repo: a.users, id: id,
		run: func(_ context.Context, u *events.Aggregate[domain.UserState]) error { return run(u) }})
}

func (a *API) updateUser(w http.ResponseWriter, r *http.Request) {
	a.userCommand(w, r, func(body []byte) (func(*events.Aggregate[domain.UserState]) error, error) {
		upd, err := decodeUpdateUser(body)
		return func(u *events.Aggregate[domain.UserState]) error { return domain.UpdateUserProfile(u, upd) }, err
	})
}

func (a *API) deactivateUser(w http.ResponseWriter, r *http.Request) {
	a.userCommand(w, r, func(body []byte) (func(*events.Aggregate[domain.UserState]) error, error) {
		reason, err := decodeReason(body)
		return func(u *events.Aggregate[domain.UserState]) error { return domain.DeactivateUser(u, reason) }, err
	})
}

func (a *API) createOrder(w http.ResponseWriter, r *http.Request) {
	req := a.begin(w, r)
	if req == nil {
		return
	}
	cmd, err := decodeCreateOrder(req.body)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if cmd.ID == "" {
		cmd.ID = newID()
	}
	execute(a, w, r, req, command[domain.OrderState]{repo: a.orders, id: cmd.ID, create: true,
		run: func(ctx context.Context, o *events.Aggregate[domain.OrderState]) error {
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
		}})
}

// orderCommand runs a command on an existing order named by the path.
func (a *API) orderCommand(w http.ResponseWriter, r *http.Request, decode func(r *http.Request, body []byte) (func(*events.Aggregate[domain.OrderState]) error, error)) {
	id, err := pathID(r, "id")
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	req := a.begin(w, r)
	if req == nil {
		return
	}
	run, err := decode(r, req.body)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	execute(a, w, r, req, command[domain.OrderState]{repo: a.orders, id: id,
		run: func(_ context.Context, o *events.Aggregate[domain.OrderState]) error { return run(o) }})
}

func (a *API) addItem(w http.ResponseWriter, r *http.Request) {
	a.orderCommand(w, r, func(_ *http.Request, body []byte) (func(*events.Aggregate[domain.OrderState]) error, error) {
		it, err := decodeItem(body)
		return func(o *events.Aggregate[domain.OrderState]) error { return domain.AddItem(o, it) }, err
	})
}

func (a *API) removeItem(w http.ResponseWriter, r *http.Request) {
	a.orderCommand(w, r, func(r *http.Request, body []byte) (func(*events.Aggregate[domain.OrderState]) error, error) {
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

func (a *API) confirmOrder(w http.ResponseWriter, r *http.Request) {
	a.orderCommand(w, r, func(_ *http.Request, body []byte) (func(*events.Aggregate[domain.OrderState]) error, error) {
		return domain.ConfirmOrder, decodeEmpty(body)
	})
}

func (a *API) cancelOrder(w http.ResponseWriter, r *http.Request) {
	a.orderCommand(w, r, func(_ *http.Request, body []byte) (func(*events.Aggregate[domain.OrderState]) error, error) {
		reason, err := decodeReason(body)
		return func(o *events.Aggregate[domain.OrderState]) error { return domain.CancelOrder(o, reason) }, err
	})
}

func (a *API) shipOrder(w http.ResponseWriter, r *http.Request) {
	a.orderCommand(w, r, func(_ *http.Request, body []byte) (func(*events.Aggregate[domain.OrderState]) error, error) {
		return domain.ShipOrder, decodeEmpty(body)
	})
}
