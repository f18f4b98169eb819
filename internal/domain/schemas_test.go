package domain_test

import (
	"testing"

	"github.com/annals-dev/annals/internal/domain"
)

// Every version of each event's schema reads every other, older or newer, under the Avro
// specification's resolution rules: writers and consumers can be upgraded in either order,
// and a consumer reads a newer writer's events through the catalog table.
func TestSchemas_Compatible(t *testing.T) {
	if err := domain.Catalog().CheckCompatibility(); err != nil {
		t.Fatalf("the domain's schemas are not compatible both ways:\n%v", err)
	}
}
