package schema_test

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/pkg/events"
)

func ExampleCatalog_Encode() {
	c := domain.Catalog()
	value, fp, err := c.Encode(events.Envelope{
		EventID:        uuid.MustParse("0195a2c4-7f00-7a21-b3c4-d5e6f7a8b9c0"),
		StreamID:       "order-0195a2c4-5d10-7e44-8a3b-1f6c9d2e7b08",
		Version:        2,
		GlobalPosition: 17,
		Type:           "OrderConfirmed",
		Data:           json.RawMessage(`{"total_cents":4298}`),
		RecordedAt:     time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	info, _ := c.Schema(fp)
	fmt.Printf("% x | %s v%d\n", value[:2], info.Type, info.Version)

	d, err := c.Decode(value)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(d.Envelope.Type, d.Envelope.StreamID, d.Envelope.Version, string(d.Envelope.Data))
	// Output:
	// c3 01 | OrderConfirmed v1
	// OrderConfirmed order-0195a2c4-5d10-7e44-8a3b-1f6c9d2e7b08 2 {"total_cents":4298}
}

func ExampleCatalog_Decode_olderVersion() {
	// A UserProfileUpdated written with version 1 of its schema, which had no email field,
	// reads as the current version: email takes its default, null.
	value, err := os.ReadFile("testdata/golden/UserProfileUpdated.v1.bin")
	if err != nil {
		fmt.Println(err)
		return
	}
	d, err := domain.Catalog().Decode(value)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("written with v%d, read as v%d: %s\n", d.WriterVersion, d.Envelope.SchemaVersion, d.Envelope.Data)
	// Output:
	// written with v1, read as v2: {"name":"Ada King","email":null}
}
