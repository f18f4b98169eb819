package domain

import (
	"math"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of command arguments.
const (
	MaxNameLength   = 200 // characters, after trimming
	MaxEmailLength  = 254 // bytes
	MaxReasonLength = 500 // characters, after trimming
	MaxItemIDLength = 100 // characters
	MaxPriceCents   = 1_000_000_000_000
	MaxQuantity     = 1_000_000
	MaxItems        = 1000 // per order
)

// NormalizeName trims s and checks that 1 to MaxNameLength characters without control
// characters remain. field names the argument in errors.
func NormalizeName(field, s string) (string, error) {
	return normalizeText(field, s, MaxNameLength)
}

// NormalizeReason is NormalizeName for reasons (deactivation, cancellation), up to
// MaxReasonLength characters.
func NormalizeReason(field, s string) (string, error) {
	return normalizeText(field, s, MaxReasonLength)
}

func normalizeText(field, s string, maxLen int) (string, error) {
	if !utf8.ValidString(s) {
		return "", invalid(field, "must be valid UTF-8")
	}
	s = strings.TrimSpace(s)
	n := utf8.RuneCountInString(s)
	if n == 0 {
		return "", invalid(field, "must not be empty")
	}
	if n > maxLen {
		return "", invalid(field, "must be at most %d characters, got %d", maxLen, n)
	}
	if strings.ContainsFunc(s, unicode.IsControl) {
		return "", invalid(field, "must not contain control characters")
	}
	return s, nil
}

// ValidateEmail checks that s is one bare address (no display name, no angle brackets, no
// surrounding space) of at most MaxEmailLength bytes, as net/mail parses it.
func ValidateEmail(field, s string) error {
	if s == "" {
		return invalid(field, "must not be empty")
	}
	if len(s) > MaxEmailLength {
		return invalid(field, "must be at most %d bytes, got %d", MaxEmailLength, len(s))
	}
	if !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		return invalid(field, "is not a valid email address")
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return invalid(field, "is not a valid email address (want a bare address such as ada@example.com)")
	}
	return nil
}

// ValidateItemID checks an item id: 1 to MaxItemIDLength printable characters, without
// surrounding space.
func ValidateItemID(field, s string) error {
	if !utf8.ValidString(s) {
		return invalid(field, "must be valid UTF-8")
	}
	n := utf8.RuneCountInString(s)
	switch {
	case n == 0:
		return invalid(field, "must not be empty")
	case n > MaxItemIDLength:
		return invalid(field, "must be at most %d characters, got %d", MaxItemIDLength, n)
	case strings.TrimSpace(s) != s:
		return invalid(field, "must not start or end with space")
	case strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }):
		return invalid(field, "must contain printable characters only")
	}
	return nil
}

// NormalizeItem trims the item's name and checks every field.
func NormalizeItem(it Item) (Item, error) {
	if err := ValidateItemID("id", it.ID); err != nil {
		return it, err
	}
	name, err := NormalizeName("name", it.Name)
	if err != nil {
		return it, err
	}
	it.Name = name
	if it.PriceCents < 0 || it.PriceCents > MaxPriceCents {
		return it, invalid("price_cents", "must be between 0 and %d, got %d", int64(MaxPriceCents), it.PriceCents)
	}
	if it.Quantity < 1 || it.Quantity > MaxQuantity {
		return it, invalid("quantity", "must be between 1 and %d, got %d", MaxQuantity, it.Quantity)
	}
	return it, nil
}

// LineTotal is price times quantity; false when it overflows int64.
func (it Item) LineTotal() (int64, bool) {
	return mulInt64(it.PriceCents, it.Quantity)
}

// TotalCents sums the line totals; false when a product or the sum overflows int64 or an
// amount is negative.
func TotalCents(items []Item) (int64, bool) {
	var total int64
	for _, it := range items {
		line, ok := it.LineTotal()
		if !ok {
			return 0, false
		}
		if total, ok = addInt64(total, line); !ok {
			return 0, false
		}
	}
	return total, true
}

func mulInt64(a, b int64) (int64, bool) {
	if a < 0 || b < 0 {
		return 0, false
	}
	if a != 0 && b > math.MaxInt64/a {
		return 0, false
	}
	return a * b, true
}

func addInt64(a, b int64) (int64, bool) {
	if a < 0 || b < 0 || a > math.MaxInt64-b {
		return 0, false
	}
	return a + b, true
}
