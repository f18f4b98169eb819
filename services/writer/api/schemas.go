package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/schema"
)

// registerSchemas adds the routes of the schema catalog: the Avro schemas that events on
// Kafka are written with, by fingerprint, as the catalog table holds them.
func (a *API) registerSchemas(r *httpx.Router) {
	r.HandleFunc("GET", "/v1/schemas", httpx.Operation{
		Summary: "Every registered Avro schema of the events, by type and version.",
		Tags:    []string{"schemas"},
		Responses: map[int]string{200: "the catalog", 400: "a query parameter was given; this route takes none",
			503: "the database is unavailable"},
		Schemas: map[int]map[string]any{
			200: httpx.Object([]string{"schemas"}, map[string]any{"schemas": map[string]any{"type": "array", "items": schemaInfoSchema}}),
			400: errorSchema, 503: errorSchema,
		},
	}, a.errs.Handler(a.listSchemas))
	r.HandleFunc("GET", "/v1/schemas/{fingerprint}", httpx.Operation{
		Summary: "The Avro schema with this fingerprint: the one named by a value's single-object header or its schema-fingerprint header.",
		Tags:    []string{"schemas"},
		Path: []httpx.Param{{Name: "fingerprint", Description: "16 hex digits",
			Schema: map[string]any{"type": "string", "pattern": "^[0-9a-fA-F]{16}$"}}},
		Responses: map[int]string{200: "the schema",
			400: "the fingerprint is not 16 hex digits", 404: "no schema has this fingerprint",
			503: "the database is unavailable"},
		Schemas: map[int]map[string]any{200: schemaInfoSchema, 400: errorSchema, 404: errorSchema, 503: errorSchema},
	}, a.errs.Handler(a.getSchema))
}

var schemaInfoSchema = httpx.Object([]string{"fingerprint", "type", "version", "schema", "registered_at"}, map[string]any{
	"fingerprint": map[string]any{"type": "string", "pattern": "^[0-9a-f]{16}$",
		"description": "CRC-64-AVRO of the schema's Parsing Canonical Form, as 16 hex digits (the number; the single-object header holds its bytes little-endian)"},
	"type":          map[string]any{"type": "string", "description": "the event type"},
	"version":       map[string]any{"type": "integer", "minimum": 1},
	"schema":        map[string]any{"type": "string", "description": "the Parsing Canonical Form, a JSON document"},
	"registered_at": httpx.TimeSchema,
})

// schemaInfo is a row of the catalog as the API writes it.
type schemaInfo struct {
	Fingerprint  string    `json:"fingerprint"`
	Type         string    `json:"type"`
	Version      int       `json:"version"`
	Schema       string    `json:"schema"`
	RegisteredAt time.Time `json:"registered_at"`
}

func infoOf(r schema.Registration) schemaInfo {
	return schemaInfo{Fingerprint: r.FingerprintHex, Type: r.Type, Version: r.Version, Schema: r.Schema, RegisteredAt: r.RegisteredAt.UTC()}
}

func (a *API) listSchemas(w http.ResponseWriter, r *http.Request) error {
	if _, err := httpx.ParseQuery(r); err != nil {
		return err
	}
	if a.catalog == nil {
		return errNoCatalog
	}
	rows, err := schema.List(r.Context(), a.catalog)
	if err != nil {
		return err
	}
	out := make([]schemaInfo, len(rows))
	for i, row := range rows {
		out[i] = infoOf(row)
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"schemas": out})
	return nil
}

func (a *API) getSchema(w http.ResponseWriter, r *http.Request) error {
	if _, err := httpx.ParseQuery(r); err != nil {
		return err
	}
	raw := r.PathValue("fingerprint")
	fp, err := schema.ParseFingerprint(raw)
	if err != nil {
		return httpx.Invalidf("fingerprint", "want 16 hex digits, got %q", raw)
	}
	if a.catalog == nil {
		return errNoCatalog
	}
	row, err := schema.Lookup(r.Context(), a.catalog, fp)
	if errors.Is(err, schema.ErrUnknownFingerprint) {
		err = fmt.Errorf("%w: no schema has fingerprint %s", events.ErrNotFound, schema.FormatFingerprint(fp))
	}
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, infoOf(row))
	return nil
}
