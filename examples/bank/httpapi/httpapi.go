// Package httpapi is the bank's HTTP API: commands on accounts (open, deposit, withdraw,
// close), an account's state rebuilt from the event store, and balances from the read model.
//
// Routes (JSON):
//
//	POST /v1/accounts                    {owner, overdraft_limit_cents, id?} -> 201 {id, stream_id, version, position}
//	POST /v1/accounts/{id}/deposits      {amount_cents}                      -> 200 (the same body)
//	POST /v1/accounts/{id}/withdrawals   {amount_cents}                      -> 200
//	POST /v1/accounts/{id}/close         {reason}                            -> 200
//	GET  /v1/accounts/{id}               the account from the event store, with its version
//	GET  /v1/balances/{id}               the account in the balances read model
//	GET  /v1/balances?after=&limit=      balances in account id order
//
// Errors are {"error": {"code", "message", ...}}: 400 invalid_request (with field), 404
// not_found, 409 version_conflict, 422 rule_violation (with rule; an overdraft also with
// available_cents), 503 unavailable. X-Correlation-ID is read (or generated), returned and
// stored on the events; each command's id is the causation id of its events.
//
// The package checks no business rule itself (package bank does) and maps errors to statuses
// in one place, classify. It must never answer with a server-side error's text (a 500 says
// "internal error" and the error goes to the log), and it has no authentication: it must never
// listen beyond the machine it runs on.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/examples/bank"
	"github.com/annals-dev/annals/examples/bank/balances"
	"github.com/annals-dev/annals/pkg/events"
)

// Balances is what the API reads of the balances read model.
type Balances interface {
	Get(ctx context.Context, accountID string) (balances.Balance, error)
	List(ctx context.Context, after string, limit int) ([]balances.Balance, error)
}

// API serves the routes.
type API struct {
	accounts *events.Repository[bank.AccountState]
	balances Balances
	log      *slog.Logger
}

// New returns the API over a repository of accounts and the balances read model.
func New(accounts *events.Repository[bank.AccountState], b Balances, log *slog.Logger) *API {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &API{accounts: accounts, balances: b, log: log}
}

// Register adds the routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	for pattern, h := range map[string]http.HandlerFunc{
		"POST /v1/accounts":                  a.open,
		"POST /v1/accounts/{id}/deposits":    a.deposit,
		"POST /v1/accounts/{id}/withdrawals": a.withdraw,
		"POST /v1/accounts/{id}/close":       a.close,
		"GET /v1/accounts/{id}":              a.account,
		"GET /v1/balances/{id}":              a.balance,
		"GET /v1/balances":                   a.list,
	} {
		mux.Handle(pattern, withCorrelationID(h))
	}
}

// Headers of the API.
const (
	CorrelationIDHeader = "X-Correlation-ID"
	// CommandIDHeader returns the id of the command a request ran: the causation id of the
	// events it recorded.
	CommandIDHeader = "X-Command-ID"
)

// CommandResponse is the body of every successful command.
type CommandResponse struct {
	ID       string `json:"id"`
	StreamID string `json:"stream_id"`
	Version  int64  `json:"version"`
	Position int64  `json:"position"`
}

// Account is an account's state at a version of its stream.
type Account struct {
	bank.AccountState
	Version int64 `json:"version"`
}

func (a *API) open(w http.ResponseWriter, r *http.Request) {
	var in struct {
		ID                  string `json:"id"`
		Owner               string `json:"owner"`
		OverdraftLimitCents int64  `json:"overdraft_limit_cents"`
	}
	if !a.decode(w, r, &in) {
		return
	}
	id := in.ID
	if id == "" {
		id = uuid.Must(uuid.NewV7()).String()
	} else if err := checkID("id", id); err != nil {
		a.fail(w, r, err)
		return
	}
	a.execute(w, r, id, http.StatusCreated, func(acc *events.Aggregate[bank.AccountState]) error {
		return bank.Open(acc, in.Owner, in.OverdraftLimitCents)
	})
}

func (a *API) deposit(w http.ResponseWriter, r *http.Request) {
	var in struct {
		AmountCents int64 `json:"amount_cents"`
	}
	if a.decode(w, r, &in) {
		a.execute(w, r, r.PathValue("id"), http.StatusOK, func(acc *events.Aggregate[bank.AccountState]) error {
			return bank.Deposit(acc, in.AmountCents)
		})
	}
}

func (a *API) withdraw(w http.ResponseWriter, r *http.Request) {
	var in struct {
		AmountCents int64 `json:"amount_cents"`
	}
	if a.decode(w, r, &in) {
		a.execute(w, r, r.PathValue("id"), http.StatusOK, func(acc *events.Aggregate[bank.AccountState]) error {
			return bank.Withdraw(acc, in.AmountCents)
		})
	}
}

func (a *API) close(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Reason string `json:"reason"`
	}
	if a.decode(w, r, &in) {
		a.execute(w, r, r.PathValue("id"), http.StatusOK, func(acc *events.Aggregate[bank.AccountState]) error {
			return bank.Close(acc, in.Reason)
		})
	}
}

// maxAttempts bounds how often a command runs again after a concurrent command on the same
// account moved its stream on between the load and the save.
const maxAttempts = 3

// execute loads the account (a new one when status is 201 and it does not exist), runs the
// command on it and saves what it recorded, expecting the stream where it was loaded; on a
// version conflict it starts again from a fresh load.
func (a *API) execute(w http.ResponseWriter, r *http.Request, id string, status int, cmd func(*events.Aggregate[bank.AccountState]) error) {
	if err := checkID("id", id); err != nil {
		a.fail(w, r, err)
		return
	}
	commandID := uuid.Must(uuid.NewV7()).String()
	w.Header().Set(CommandIDHeader, commandID)
	opts := events.AppendOptions{CorrelationID: w.Header().Get(CorrelationIDHeader), CausationID: commandID}
	for attempt := 1; ; attempt++ {
		acc, _, err := a.accounts.Load(r.Context(), id)
		if status == http.StatusCreated && errors.Is(err, events.ErrNotFound) {
			acc, err = a.accounts.New(id), nil
		}
		if err == nil {
			err = cmd(acc)
		}
		var res events.AppendResult
		if err == nil {
			res, err = a.accounts.Save(r.Context(), acc, opts)
		}
		var conflict *events.VersionConflictError
		if errors.As(err, &conflict) && attempt < maxAttempts {
			continue
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		w.Header().Set("ETag", etag(res.LastVersion))
		writeJSON(w, status, CommandResponse{ID: id, StreamID: res.StreamID, Version: res.LastVersion, Position: res.LastPosition})
		return
	}
}

func (a *API) account(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := checkID("id", id); err != nil {
		a.fail(w, r, err)
		return
	}
	acc, _, err := a.accounts.Load(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("ETag", etag(acc.Version()))
	writeJSON(w, http.StatusOK, Account{AccountState: acc.State(), Version: acc.Version()})
}

func (a *API) balance(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := checkID("id", id); err != nil {
		a.fail(w, r, err)
		return
	}
	b, err := a.balances.Get(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

func (a *API) list(w http.ResponseWriter, r *http.Request) {
	limit := 50
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > balances.MaxList {
			a.fail(w, r, &bank.ValidationError{Field: "limit", Message: fmt.Sprintf("must be a number from 1 to %d", balances.MaxList)})
			return
		}
		limit = n
	}
	bs, err := a.balances.List(r.Context(), r.URL.Query().Get("after"), limit)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"balances": bs})
}

// maxBody bounds a command's body.
const maxBody = 64 << 10

// decode reads the body as one JSON object with only the fields of v; it answers 400 and
// reports false when it is not.
func (a *API) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.Decode(new(json.RawMessage)) != io.EOF {
		err = errors.New("more than one JSON value")
	}
	if err != nil {
		a.fail(w, r, &bank.ValidationError{Field: "body", Message: "want one JSON object of the documented fields: " + err.Error()})
		return false
	}
	return true
}

// checkID accepts the UUIDs the API generates, in their canonical text form.
func checkID(field, id string) error {
	u, err := uuid.Parse(id)
	if err != nil || u.String() != id {
		return &bank.ValidationError{Field: field, Message: "must be a UUID in lower-case canonical form"}
	}
	return nil
}

// withCorrelationID sets the request's correlation id on the response, generated when the
// request has none (or one over 200 bytes); commands store it on their events.
func withCorrelationID(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimSpace(r.Header.Get(CorrelationIDHeader))
		if id == "" || len(id) > 200 {
			id = uuid.Must(uuid.NewV7()).String()
		}
		w.Header().Set(CorrelationIDHeader, id)
		h.ServeHTTP(w, r)
	})
}

func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may have gone; nothing to do about it
}
