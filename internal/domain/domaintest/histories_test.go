package domaintest_test

import (
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/domain/domaintest"
)

// TestHistories_CoverEveryEventType checks that each event type of the domain's schema catalog
// is taken by the writer in some history, and that the histories named Refused are the ones
// whose last event the writer refuses.
func TestHistories_CoverEveryEventType(t *testing.T) {
	taken := map[string]bool{}
	for _, h := range domaintest.Histories(uuid.New()) {
		if got, want := h.Refused, strings.HasPrefix(h.Name, "Refused"); got != want {
			t.Errorf("%s: refused %v, want %v", h.Name, got, want)
		}
		n := len(h.Events)
		if h.Refused {
			n--
		}
		for _, e := range h.Events[:n] {
			taken[e.Type] = true
		}
	}
	for _, s := range domain.Catalog().Schemas() {
		if !taken[s.Type] {
			t.Errorf("no history has the writer take a %s", s.Type)
		}
	}
}
