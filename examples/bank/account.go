package bank

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/annals-dev/annals/pkg/events"
)

// Category is the category of account streams: "account-<uuid>". The relay publishes their
// events to the topic "<prefix>.account".
const Category = "account"

// Event types of accounts.
const (
	EventAccountOpened  = "AccountOpened"
	EventMoneyDeposited = "MoneyDeposited"
	EventMoneyWithdrawn = "MoneyWithdrawn"
	EventAccountClosed  = "AccountClosed"
)

// EventTypes lists every event type of the domain, each with a schema in avro/.
var EventTypes = []string{EventAccountOpened, EventMoneyDeposited, EventMoneyWithdrawn, EventAccountClosed}

// AccountOpened: an account was opened for its owner, with an overdraft limit.
type AccountOpened struct {
	AccountID           string `json:"account_id"`
	Owner               string `json:"owner"`
	OverdraftLimitCents int64  `json:"overdraft_limit_cents"`
}

// MoneyDeposited: money was paid into an open account.
type MoneyDeposited struct {
	AmountCents int64 `json:"amount_cents"`
}

// MoneyWithdrawn: money was taken out of an open account, within its overdraft limit.
type MoneyWithdrawn struct {
	AmountCents int64 `json:"amount_cents"`
}

// AccountClosed: an account with a zero balance was closed, for a reason.
type AccountClosed struct {
	Reason string `json:"reason"`
}

// Status is the life-cycle state of an account: open, then closed for good.
type Status string

// The statuses of an account.
const (
	StatusOpen   Status = "open"
	StatusClosed Status = "closed"
)

// Limits of command arguments.
const (
	// MaxAmountCents bounds one deposit or withdrawal and the overdraft limit: 1 billion in
	// units of 100 cents.
	MaxAmountCents  int64 = 100_000_000_000
	MaxOwnerLength  int   = 200 // characters
	MaxReasonLength int   = 500 // characters
)

// AccountState is an account as its events made it.
type AccountState struct {
	ID                  string `json:"id"`
	Owner               string `json:"owner"`
	OverdraftLimitCents int64  `json:"overdraft_limit_cents"`
	BalanceCents        int64  `json:"balance_cents"`
	Status              Status `json:"status"`
	CloseReason         string `json:"close_reason,omitempty"`
}

// Account defines the account aggregate for an events.Repository. Its state holds no slice
// or map, so Apply can never change a state that Record then throws away.
var Account = events.Definition[AccountState]{
	Category:           Category,
	StateSchemaVersion: 1,
	Apply:              applyAccount,
}

// applyAccount evolves the state by one event. It checks that the event makes sense after the
// ones before it (a stream is never read past a corrupt event) but enforces no command rule:
// what was recorded happened.
func applyAccount(s *AccountState, e events.Envelope) error {
	if e.Type != EventAccountOpened && s.Status == "" {
		return fmt.Errorf("%s before %s", e.Type, EventAccountOpened)
	}
	switch e.Type {
	case EventAccountOpened:
		var d AccountOpened
		if err := decode(e, &d); err != nil {
			return err
		}
		if s.Status != "" {
			return fmt.Errorf("%s: the account is open already", e.Type)
		}
		*s = AccountState{ID: d.AccountID, Owner: d.Owner, OverdraftLimitCents: d.OverdraftLimitCents, Status: StatusOpen}
	case EventMoneyDeposited:
		var d MoneyDeposited
		if err := decode(e, &d); err != nil {
			return err
		}
		if d.AmountCents <= 0 || s.BalanceCents > math.MaxInt64-d.AmountCents {
			return fmt.Errorf("%s: amount_cents %d does not fit the balance %d", e.Type, d.AmountCents, s.BalanceCents)
		}
		s.BalanceCents += d.AmountCents
	case EventMoneyWithdrawn:
		var d MoneyWithdrawn
		if err := decode(e, &d); err != nil {
			return err
		}
		if d.AmountCents <= 0 || s.BalanceCents < math.MinInt64+d.AmountCents {
			return fmt.Errorf("%s: amount_cents %d does not fit the balance %d", e.Type, d.AmountCents, s.BalanceCents)
		}
		s.BalanceCents -= d.AmountCents
	case EventAccountClosed:
		var d AccountClosed
		if err := decode(e, &d); err != nil {
			return err
		}
		s.Status, s.CloseReason = StatusClosed, d.Reason
	default:
		return fmt.Errorf("account: unknown event type %q", e.Type)
	}
	return nil
}

func decode(e events.Envelope, v any) error {
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("%s data: %w", e.Type, err)
	}
	return nil
}

// Open records AccountOpened on an account that does not exist yet. The owner's name is
// trimmed; the overdraft limit is 0 (none) or more.
func Open(a *events.Aggregate[AccountState], owner string, overdraftLimitCents int64) error {
	if a.Exists() {
		return ruleErr(RuleAccountExists, "account %s already exists", a.ID())
	}
	owner, err := text("owner", owner, MaxOwnerLength)
	if err != nil {
		return err
	}
	if overdraftLimitCents < 0 || overdraftLimitCents > MaxAmountCents {
		return invalid("overdraft_limit_cents", "must be between 0 and %d", MaxAmountCents)
	}
	return a.Record(EventAccountOpened, AccountOpened{AccountID: a.ID(), Owner: owner, OverdraftLimitCents: overdraftLimitCents})
}

// Deposit records MoneyDeposited on an open account.
func Deposit(a *events.Aggregate[AccountState], amountCents int64) error {
	if err := open(a); err != nil {
		return err
	}
	if err := amount(amountCents); err != nil {
		return err
	}
	if a.State().BalanceCents > math.MaxInt64-amountCents {
		return ruleErr(RuleBalanceTooLarge, "account %s cannot hold a larger balance", a.ID())
	}
	return a.Record(EventMoneyDeposited, MoneyDeposited{AmountCents: amountCents})
}

// Withdraw records MoneyWithdrawn on an open account whose balance stays at or above minus
// its overdraft limit; otherwise it returns an *OverdraftError.
func Withdraw(a *events.Aggregate[AccountState], amountCents int64) error {
	if err := open(a); err != nil {
		return err
	}
	if err := amount(amountCents); err != nil {
		return err
	}
	s := a.State()
	// Both sides stay far from overflowing: |balance - amount| and the limit are bounded.
	if s.BalanceCents-amountCents < -s.OverdraftLimitCents {
		return &OverdraftError{AccountID: a.ID(), BalanceCents: s.BalanceCents, OverdraftLimitCents: s.OverdraftLimitCents, AmountCents: amountCents}
	}
	return a.Record(EventMoneyWithdrawn, MoneyWithdrawn{AmountCents: amountCents})
}

// Close records AccountClosed on an open account with a zero balance.
func Close(a *events.Aggregate[AccountState], reason string) error {
	if err := open(a); err != nil {
		return err
	}
	if b := a.State().BalanceCents; b != 0 {
		return ruleErr(RuleBalanceNotZero, "account %s has a balance of %d cents; only an account at zero can close", a.ID(), b)
	}
	reason, err := text("reason", reason, MaxReasonLength)
	if err != nil {
		return err
	}
	return a.Record(EventAccountClosed, AccountClosed{Reason: reason})
}

// open checks that the account exists and is not closed.
func open(a *events.Aggregate[AccountState]) error {
	if !a.Exists() {
		return ruleErr(RuleAccountNotFound, "account %s does not exist", a.ID())
	}
	if a.State().Status == StatusClosed {
		return ruleErr(RuleAccountClosed, "account %s is closed", a.ID())
	}
	return nil
}

func amount(cents int64) error {
	if cents <= 0 || cents > MaxAmountCents {
		return invalid("amount_cents", "must be a whole number of cents from 1 to %d", MaxAmountCents)
	}
	return nil
}

// text trims s and checks that it is 1 to limit characters of valid UTF-8 without control
// characters.
func text(field, s string, limit int) (string, error) {
	s = strings.TrimSpace(s)
	switch n := utf8.RuneCountInString(s); {
	case !utf8.ValidString(s):
		return "", invalid(field, "must be valid UTF-8")
	case n == 0:
		return "", invalid(field, "must not be empty")
	case n > limit:
		return "", invalid(field, "at most %d characters, got %d", limit, n)
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return "", invalid(field, "must not contain control characters")
	}
	return s, nil
}
