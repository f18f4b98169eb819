package load_test

import (
	"context"
	"testing"

	"github.com/annals-dev/annals/internal/load"
)

func TestRun_BadConfig(t *testing.T) {
	if _, err := load.Run(context.Background(), load.Config{}); err == nil {
		t.Error("no URL: want an error")
	}
	if _, err := load.Run(context.Background(), load.Config{BaseURL: "http://127.0.0.1:1", Rate: -1}); err == nil {
		t.Error("negative rate: want an error")
	}
}
