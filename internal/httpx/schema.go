package httpx

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// JSON schemas for the documents of Operation. The values are shared between routes and
// services: never change one, build another.

// Schemas of single values.
var (
	StringSchema = map[string]any{"type": "string"}
	// UUIDSchema is a UUID in its canonical 36-character form, the only one the services
	// take, other than the nil UUID, which no aggregate has.
	UUIDSchema = map[string]any{"type": "string", "format": "uuid",
		"pattern": "^(?!0{8}-0{4}-0{4}-0{4}-0{12}$)[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"}
	// FilterSchema is a text filter of a query: 1 to 200 characters, none of them NUL (which
	// PostgreSQL's text cannot hold).
	FilterSchema = map[string]any{"type": "string", "minLength": 1, "maxLength": MaxFilterLength, "pattern": "^[^\\x00]+$"}
	// CursorSchema is a cursor that EncodeCursor made: 16 bytes in unpadded base64url.
	CursorSchema = map[string]any{"type": "string", "pattern": "^[A-Za-z0-9_-]{22}$",
		"description": "next_cursor of the previous page"}
	TimeSchema = map[string]any{"type": "string", "format": "date-time"}
)

// MaxFilterLength is the longest text filter a query takes, in characters.
const MaxFilterLength = 200

// ValidFilter reports whether s is a text filter as FilterSchema describes it: 1 to
// MaxFilterLength characters of UTF-8, without NUL.
func ValidFilter(s string) bool {
	return s != "" && utf8.ValidString(s) && utf8.RuneCountInString(s) <= MaxFilterLength && !strings.ContainsRune(s, 0)
}

// Object is the schema of an object with exactly the properties props, of which those in
// required must be present.
func Object(required []string, props map[string]any) map[string]any {
	m := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		m["required"] = required
	}
	return m
}

// Int64 is the schema of a 64-bit integer of at least minimum.
func Int64(minimum int64) map[string]any {
	return map[string]any{"type": "integer", "format": "int64", "minimum": minimum}
}

// Enum is the schema of a string that is one of values.
func Enum(values []string) map[string]any {
	return map[string]any{"type": "string", "enum": values}
}

// ErrorSchema is the schema of the error envelope, ErrorBody: an object "error" with code,
// message and the extra members of fields (a name to its schema).
func ErrorSchema(fields map[string]any) map[string]any {
	props := map[string]any{"code": StringSchema, "message": StringSchema}
	for k, v := range fields {
		props[k] = v
	}
	return map[string]any{"type": "object", "required": []string{"error"}, "properties": map[string]any{
		"error": map[string]any{"type": "object", "required": []string{"code", "message"}, "properties": props},
	}}
}

// CursorParams documents the parameters of a list paged with EncodeCursor: limit, pages of
// def rows unless it says otherwise and of max at the most, and cursor.
func CursorParams(def, max int) []Param {
	return []Param{
		{Name: "limit", Description: fmt.Sprintf("page size (default %d)", def),
			Schema: map[string]any{"type": "integer", "minimum": 1, "maximum": max}},
		{Name: "cursor", Description: "next_cursor of the previous page; absent for the first", Schema: CursorSchema},
	}
}

// CursorPage is the schema of a page of a list paged with EncodeCursor: the rows, items of
// the schema item, under member, and next_cursor while more rows follow.
func CursorPage(member string, item map[string]any) map[string]any {
	return Object([]string{member}, map[string]any{
		member:        map[string]any{"type": "array", "items": item},
		"next_cursor": CursorSchema,
	})
}
