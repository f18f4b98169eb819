package notify_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/annals-dev/annals/services/notifier/notify"
)

func TestRedact(t *testing.T) {
	inner := errors.New("550 5.1.1 <Ada.L@Example.COM>: unknown; forwarded to bob+x@other.example, message <e1@annals.local>")
	err := notify.Redact(fmt.Errorf("smtp RCPT TO ada.l@example.com: %w", inner), "ada.l@example.com", "e1@annals.local")
	want := "smtp RCPT TO [recipient]: 550 5.1.1 <[recipient]>: unknown; forwarded to [recipient], message <e1@annals.local>"
	if err.Error() != want {
		t.Errorf("Redact = %q, want %q", err, want)
	}
	if !errors.Is(err, inner) {
		t.Error("the redacted error does not wrap the original, for classification")
	}
	if notify.Redact(nil, "a@b.c", "") != nil {
		t.Error("Redact(nil) is not nil")
	}
}
