package api_test

import (
	"strings"
	"testing"

	"github.com/annals-dev/annals/services/writer/api"
)

// TestDecodeItem_WholeNumbers: an integer field takes any JSON number whose value is an
// integer, as JSON Schema counts integers, and refuses fractions and values out of range
// without computing huge powers of ten.
func TestDecodeItem_WholeNumbers(t *testing.T) {
	item := func(q string) string { return `{"id":"a","name":"A","price_cents":1,"quantity":` + q + `}` }
	for q, want := range map[string]int64{
		"2": 2, "2.0": 2, "2e0": 2, "20e-1": 2, "0.2e1": 2, "2.000E+0": 2, "1000000": 1000000, "1e6": 1000000,
		"3" + strings.Repeat("0", 40) + "e-40": 3,
	} {
		it, err := api.DecodeItem([]byte(item(q)))
		if err != nil || it.Quantity != want {
			t.Errorf("quantity %s: %+v, %v; want %d", q, it, err, want)
		}
	}
	for q, msg := range map[string]string{
		"2.5": "must be an integer", "25e-1": "must be an integer", "1e-999999999999999999999": "must be an integer",
		"1e999999999": "out of range", "1e999999999999999999999": "out of range", "9223372036854775808": "out of range",
		"92233720368547758080e-1": "out of range", "9223372036854775807.5": "must be an integer", "1e19": "out of range",
	} {
		_, err := api.DecodeItem([]byte(item(q)))
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("quantity %s: %v; want an error saying %q", q, err, msg)
		}
	}
	if _, err := api.DecodeItem([]byte(`{"id":"a","name":"A","price_cents":-0.0e5,"quantity":1}`)); err != nil {
		t.Errorf("price -0.0e5: %v; want 0", err)
	}
}
