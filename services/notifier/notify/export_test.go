package notify

import (
	"context"

	"github.com/google/uuid"
)

// OrderOf is what the notifier knows of an order, and the version of the last event applied
// to it.
func (n *Notifier) OrderOf(ctx context.Context, id uuid.UUID) (o order, version int64, ok bool, err error) {
	return readOrder(ctx, n.pool, id)
}

// Redact is redact: err's text without the address, or anything else that reads as one.
var Redact = redact
