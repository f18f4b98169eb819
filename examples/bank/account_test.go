package bank_test

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/annals-dev/annals/examples/bank"
	"github.com/annals-dev/annals/pkg/events"
)

// accounts makes aggregates without a store: the commands are pure.
var accounts = &events.Repository[bank.AccountState]{Def: bank.Account}

const accountID = "0190a4b2-7f3c-7a00-8000-0000000000a1"

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

func wantRule(tb testing.TB, err error, rule string) {
	tb.Helper()
	var re *bank.RuleError
	if !errors.As(err, &re) {
		tb.Fatalf("error = %v, want rule %s", err, rule)
	}
	if re.Rule != rule {
		tb.Fatalf("rule = %s (%s), want %s", re.Rule, re.Message, rule)
	}
}

func wantInvalid(tb testing.TB, err error, field string) {
	tb.Helper()
	var ve *bank.ValidationError
	if !errors.As(err, &ve) {
		tb.Fatalf("error = %v, want a validation error on %q", err, field)
	}
	if ve.Field != field {
		tb.Fatalf("field = %q (%s), want %q", ve.Field, ve.Message, field)
	}
}

// unchanged runs a command that must fail and checks that it recorded nothing.
func unchanged(tb testing.TB, a *events.Aggregate[bank.AccountState], cmd func() error) error {
	tb.Helper()
	before, n := a.State(), len(a.Pending())
	err := cmd()
	if err == nil {
		tb.Fatal("command succeeded, want an error")
	}
	if len(a.Pending()) != n || a.State() != before {
		tb.Fatalf("a failed command changed the account: %+v", a.State())
	}
	return err
}

// replay rebuilds the state from the recorded events as a load from the store would, and
// checks that it equals the in-memory state and survives a snapshot's JSON round trip.
func replay(tb testing.TB, a *events.Aggregate[bank.AccountState]) {
	tb.Helper()
	var s bank.AccountState
	for i, e := range a.Pending() {
		must(tb, bank.Account.Apply(&s, events.Envelope{StreamID: a.StreamID(), Version: int64(i), Type: e.Type, Data: e.Data}))
	}
	if s != a.State() {
		tb.Fatalf("replayed state = %+v, want %+v", s, a.State())
	}
	b, err := json.Marshal(s)
	must(tb, err)
	var back bank.AccountState
	must(tb, json.Unmarshal(b, &back))
	if back != s {
		tb.Fatalf("snapshot round trip = %+v, want %+v", back, s)
	}
}

func opened(tb testing.TB, overdraft int64) *events.Aggregate[bank.AccountState] {
	tb.Helper()
	a := accounts.New(accountID)
	must(tb, bank.Open(a, "  Ada Lovelace ", overdraft))
	return a
}

func TestOpen(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		a := opened(t, 5000)
		want := bank.AccountState{ID: accountID, Owner: "Ada Lovelace", OverdraftLimitCents: 5000, Status: bank.StatusOpen}
		if got := a.State(); got != want {
			t.Errorf("state = %+v, want %+v", got, want)
		}
		if got := a.StreamID(); got != "account-"+accountID {
			t.Errorf("stream = %s", got)
		}
		var d bank.AccountOpened
		must(t, json.Unmarshal(a.Pending()[0].Data, &d))
		if want := (bank.AccountOpened{AccountID: accountID, Owner: "Ada Lovelace", OverdraftLimitCents: 5000}); d != want {
			t.Errorf("data = %+v, want %+v", d, want)
		}
		replay(t, a)
	})
	t.Run("AlreadyExists", func(t *testing.T) {
		a := opened(t, 0)
		wantRule(t, unchanged(t, a, func() error { return bank.Open(a, "Bob", 0) }), bank.RuleAccountExists)
	})
	for _, tc := range []struct {
		name, owner string
		overdraft   int64
		field       string
	}{
		{"EmptyOwner", "   ", 0, "owner"},
		{"LongOwner", strings.Repeat("x", bank.MaxOwnerLength+1), 0, "owner"},
		{"ControlInOwner", "Ada\nLovelace", 0, "owner"},
		{"NegativeOverdraft", "Ada", -1, "overdraft_limit_cents"},
		{"HugeOverdraft", "Ada", bank.MaxAmountCents + 1, "overdraft_limit_cents"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := accounts.New(accountID)
			wantInvalid(t, unchanged(t, a, func() error { return bank.Open(a, tc.owner, tc.overdraft) }), tc.field)
		})
	}
}

func TestDeposit(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		a := opened(t, 0)
		must(t, bank.Deposit(a, 1250))
		must(t, bank.Deposit(a, 1))
		if got := a.State().BalanceCents; got != 1251 {
			t.Errorf("balance = %d, want 1251", got)
		}
		replay(t, a)
	})
	t.Run("NotFound", func(t *testing.T) {
		a := accounts.New(accountID)
		wantRule(t, unchanged(t, a, func() error { return bank.Deposit(a, 100) }), bank.RuleAccountNotFound)
	})
	t.Run("Closed", func(t *testing.T) {
		a := opened(t, 0)
		must(t, bank.Close(a, "moving abroad"))
		wantRule(t, unchanged(t, a, func() error { return bank.Deposit(a, 100) }), bank.RuleAccountClosed)
	})
	for _, amount := range []int64{0, -5, bank.MaxAmountCents + 1} {
		a := opened(t, 0)
		wantInvalid(t, unchanged(t, a, func() error { return bank.Deposit(a, amount) }), "amount_cents")
	}
}

func TestWithdraw(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		a := opened(t, 0)
		must(t, bank.Deposit(a, 1000))
		must(t, bank.Withdraw(a, 1000))
		if got := a.State().BalanceCents; got != 0 {
			t.Errorf("balance = %d, want 0", got)
		}
		replay(t, a)
	})
	t.Run("DownToTheOverdraftLimit", func(t *testing.T) {
		a := opened(t, 500)
		must(t, bank.Deposit(a, 100))
		must(t, bank.Withdraw(a, 600))
		if got := a.State().BalanceCents; got != -500 {
			t.Errorf("balance = %d, want -500", got)
		}
		replay(t, a)
	})
	t.Run("ErrOverdraft", func(t *testing.T) {
		a := opened(t, 500)
		must(t, bank.Deposit(a, 100))
		err := unchanged(t, a, func() error { return bank.Withdraw(a, 601) })
		var oe *bank.OverdraftError
		if !errors.As(err, &oe) {
			t.Fatalf("error = %v, want an *OverdraftError", err)
		}
		want := bank.OverdraftError{AccountID: accountID, BalanceCents: 100, OverdraftLimitCents: 500, AmountCents: 601}
		if *oe != want {
			t.Errorf("error = %+v, want %+v", *oe, want)
		}
		if got := oe.AvailableCents(); got != 600 {
			t.Errorf("available = %d, want 600", got)
		}
		wantRule(t, err, bank.RuleOverdraftLimitExceeded)
	})
	t.Run("Closed", func(t *testing.T) {
		a := opened(t, 500)
		must(t, bank.Close(a, "done"))
		wantRule(t, unchanged(t, a, func() error { return bank.Withdraw(a, 1) }), bank.RuleAccountClosed)
	})
	t.Run("Invalid", func(t *testing.T) {
		a := opened(t, 500)
		wantInvalid(t, unchanged(t, a, func() error { return bank.Withdraw(a, 0) }), "amount_cents")
	})
}

func TestClose(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		a := opened(t, 0)
		must(t, bank.Deposit(a, 300))
		must(t, bank.Withdraw(a, 300))
		must(t, bank.Close(a, " moving abroad "))
		if got := a.State(); got.Status != bank.StatusClosed || got.CloseReason != "moving abroad" {
			t.Errorf("state = %+v", got)
		}
		replay(t, a)
	})
	for _, balance := range []int64{1, -1} {
		a := opened(t, 10)
		if balance > 0 {
			must(t, bank.Deposit(a, balance))
		} else {
			must(t, bank.Withdraw(a, -balance))
		}
		wantRule(t, unchanged(t, a, func() error { return bank.Close(a, "done") }), bank.RuleBalanceNotZero)
	}
	t.Run("Twice", func(t *testing.T) {
		a := opened(t, 0)
		must(t, bank.Close(a, "done"))
		wantRule(t, unchanged(t, a, func() error { return bank.Close(a, "again") }), bank.RuleAccountClosed)
	})
	t.Run("NoReason", func(t *testing.T) {
		a := opened(t, 0)
		wantInvalid(t, unchanged(t, a, func() error { return bank.Close(a, " ") }), "reason")
	})
}

func TestAccountApply(t *testing.T) {
	env := func(typ string, data any) events.Envelope {
		b, err := json.Marshal(data)
		must(t, err)
		return events.Envelope{Type: typ, Data: b}
	}
	open := env(bank.EventAccountOpened, bank.AccountOpened{AccountID: accountID, Owner: "Ada"})
	for _, tc := range []struct {
		name   string
		events []events.Envelope
	}{
		{"DepositBeforeOpen", []events.Envelope{env(bank.EventMoneyDeposited, bank.MoneyDeposited{AmountCents: 1})}},
		{"OpenTwice", []events.Envelope{open, open}},
		{"ZeroDeposit", []events.Envelope{open, env(bank.EventMoneyDeposited, bank.MoneyDeposited{})}},
		{"NegativeWithdrawal", []events.Envelope{open, env(bank.EventMoneyWithdrawn, bank.MoneyWithdrawn{AmountCents: -1})}},
		{"Overflow", []events.Envelope{open,
			env(bank.EventMoneyDeposited, bank.MoneyDeposited{AmountCents: math.MaxInt64}),
			env(bank.EventMoneyDeposited, bank.MoneyDeposited{AmountCents: 1})}},
		{"UnknownType", []events.Envelope{open, env("MoneyPrinted", struct{}{})}},
		{"BadData", []events.Envelope{{Type: bank.EventAccountOpened, Data: json.RawMessage(`[]`)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s bank.AccountState
			var err error
			for _, e := range tc.events {
				if err = bank.Account.Apply(&s, e); err != nil {
					break
				}
			}
			if err == nil {
				t.Fatalf("applied %d events, want an error; state %+v", len(tc.events), s)
			}
		})
	}
	t.Run("StateHasNoReferences", func(t *testing.T) {
		// Record applies to a shallow copy of the state: that is a full copy only while the
		// state holds no slice, map or pointer.
		typ := reflect.TypeFor[bank.AccountState]()
		for i := range typ.NumField() {
			switch typ.Field(i).Type.Kind() {
			case reflect.Slice, reflect.Map, reflect.Pointer:
				t.Errorf("AccountState.%s is a %s", typ.Field(i).Name, typ.Field(i).Type.Kind())
			}
		}
	})
}
