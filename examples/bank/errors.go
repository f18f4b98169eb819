package bank

import "fmt"

// The rules the account's commands enforce, as the stable snake_case names clients see.
const (
	RuleAccountExists          = "account_already_exists"
	RuleAccountNotFound        = "account_not_found"
	RuleAccountClosed          = "account_closed"
	RuleOverdraftLimitExceeded = "overdraft_limit_exceeded"
	RuleBalanceNotZero         = "balance_not_zero"
	RuleBalanceTooLarge        = "balance_too_large"
)

// RuleError is a command that the account's current state does not allow, such as a deposit
// into a closed account.
type RuleError struct {
	Rule    string
	Message string
}

func (e *RuleError) Error() string { return fmt.Sprintf("%s: %s", e.Rule, e.Message) }

func ruleErr(rule, format string, args ...any) error {
	return &RuleError{Rule: rule, Message: fmt.Sprintf(format, args...)}
}

// OverdraftError is a withdrawal that would take the balance below minus the overdraft limit.
// It unwraps to a *RuleError with RuleOverdraftLimitExceeded, so that errors.As finds either.
type OverdraftError struct {
	AccountID           string
	BalanceCents        int64
	OverdraftLimitCents int64
	AmountCents         int64
}

// AvailableCents is what the account could still pay out: its balance plus its overdraft
// limit.
func (e *OverdraftError) AvailableCents() int64 { return e.BalanceCents + e.OverdraftLimitCents }

func (e *OverdraftError) Error() string {
	return fmt.Sprintf("withdrawing %d cents from account %s would exceed its overdraft limit: %d cents available",
		e.AmountCents, e.AccountID, e.AvailableCents())
}

// Unwrap returns the rule the error breaks.
func (e *OverdraftError) Unwrap() error {
	return &RuleError{Rule: RuleOverdraftLimitExceeded, Message: e.Error()}
}

// ValidationError is a malformed command argument. Field names the argument as the JSON
// spelling of the HTTP API does ("amount_cents").
type ValidationError struct {
	Field   string
	Message string
}

func (e *ValidationError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Message) }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Message: fmt.Sprintf(format, args...)}
}
