package domain

import "fmt"

// RuleError is a command that the aggregate's current state does not allow, such as confirming
// an order twice. Rule is a stable snake_case name for clients.
type RuleError struct {
	Rule    string
	Message string
}

func (e *RuleError) Error() string { return fmt.Sprintf("%s: %s", e.Rule, e.Message) }

func ruleErr(rule, format string, args ...any) error {
	return &RuleError{Rule: rule, Message: fmt.Sprintf(format, args...)}
}

// The rules commands enforce.
const (
	RuleUserAlreadyExists      = "user_already_exists"
	RuleUserNotFound           = "user_not_found"
	RuleUserAlreadyDeactivated = "user_already_deactivated"
	RuleUserDeactivated        = "user_deactivated"
	RuleUserErased             = "user_personal_data_erased"

	RuleOrderAlreadyExists    = "order_already_exists"
	RuleOrderNotFound         = "order_not_found"
	RuleOrderNotModifiable    = "order_not_modifiable"
	RuleOrderAlreadyConfirmed = "order_already_confirmed"
	RuleOrderHasNoItems       = "order_has_no_items"
	RuleOrderAlreadyCancelled = "order_already_cancelled"
	RuleOrderAlreadyShipped   = "order_already_shipped"
	RuleOrderNotConfirmed     = "order_not_confirmed"
	RuleOrderCancelled        = "order_cancelled"
	RuleItemAlreadyInOrder    = "item_already_in_order"
	RuleItemNotInOrder        = "item_not_in_order"
	RuleTooManyItems          = "too_many_items"
	RuleTotalOverflow         = "total_overflow"
)

// ValidationError is a malformed command argument. Field names the argument in the JSON
// spelling of the API ("email", "items[2].price_cents").
type ValidationError struct {
	Field   string
	Message string
}

func (e *ValidationError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Message) }

// In returns a copy of e with its field placed under prefix: In("items[2]") turns "price_cents"
// into "items[2].price_cents".
func (e *ValidationError) In(prefix string) *ValidationError {
	if prefix == "" {
		return e
	}
	f := prefix
	if e.Field != "" {
		f += "." + e.Field
	}
	return &ValidationError{Field: f, Message: e.Message}
}

func invalid(field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Message: fmt.Sprintf(format, args...)}
}
