package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/pkg/events"
)

// MaxBodyBytes is the largest request body accepted.
const MaxBodyBytes = 1 << 20

var (
	// errTooLarge is events.ErrTooLarge, so that one rule answers 413 for a body and for an
	// event that is too large.
	errTooLarge  error = bodyTooLarge("the request body exceeds 1 MiB")
	errMediaType       = errors.New("unsupported media type")
)

// bodyTooLarge is the error of a request body over MaxBodyBytes.
type bodyTooLarge string

func (e bodyTooLarge) Error() string { return string(e) }

// Is makes errors.Is(err, events.ErrTooLarge) hold.
func (e bodyTooLarge) Is(target error) bool { return target == events.ErrTooLarge }

// readBody checks the media type and reads at most MaxBodyBytes. A body that is present must
// be application/json (a charset parameter, if any, must be utf-8).
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	if len(r.Header.Values("Content-Type")) > 1 {
		return nil, fmt.Errorf("%w: give one Content-Type", errMediaType)
	}
	if ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return nil, fmt.Errorf("%w: Content-Type must be application/json", errMediaType)
		}
		for k, v := range params {
			if k != "charset" || !strings.EqualFold(v, "utf-8") {
				return nil, fmt.Errorf("%w: Content-Type application/json takes only charset=utf-8", errMediaType)
			}
		}
	}
	if r.ContentLength > MaxBodyBytes {
		return nil, errTooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, errTooLarge
		}
		return nil, httpx.Invalidf("", "cannot read the request body")
	}
	if len(body) > 0 && ct == "" {
		return nil, fmt.Errorf("%w: a request body needs Content-Type: application/json", errMediaType)
	}
	return body, nil
}

// decodeStrict decodes exactly one JSON object into v (a pointer to a struct). Keys must match
// the json names of v's fields exactly (no unknown, case-folded or repeated keys), values must
// have the field's JSON type and integers must fit. Errors name the field.
func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return httpx.Invalidf("", "a JSON request body is required")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := walk(dec, reflect.TypeOf(v).Elem(), ""); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return httpx.Invalidf("", "the body must hold exactly one JSON value")
	}
	if err := json.Unmarshal(body, v); err != nil { // cannot fail after walk; kept as a guard
		return httpx.Invalidf("", "malformed JSON: %v", err)
	}
	return nil
}

func syntaxError(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return httpx.Invalidf("", "malformed JSON at byte %d: %v", se.Offset, se)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return httpx.Invalidf("", "malformed JSON: unexpected end of the body")
	}
	return httpx.Invalidf("", "malformed JSON: %v", err)
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Struct:
		return "an object"
	case reflect.Slice:
		return "an array"
	case reflect.String:
		return "a string"
	case reflect.Int64:
		return "an integer"
	}
	return t.Kind().String()
}

func tokenName(tok json.Token) string {
	switch tok := tok.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case json.Delim:
		if tok == '{' {
			return "an object"
		}
		return "an array"
	}
	return "something else"
}

// maxArrayLength bounds every array of a body (the items of an order), so that a body of many
// tiny elements is refused before it is decoded.
const maxArrayLength = domain.MaxItems

// walk reads one JSON value from dec and checks it against t.
func walk(dec *json.Decoder, t reflect.Type, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return syntaxError(err)
	}
	typeErr := func() error {
		if path == "" {
			return httpx.Invalidf("", "the body must be %s, got %s", kindName(t), tokenName(tok))
		}
		return httpx.Invalidf(path, "must be %s, got %s", kindName(t), tokenName(tok))
	}
	if t.Kind() == reflect.Pointer {
		if tok == nil {
			return nil // null: absent
		}
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if tok != json.Delim('{') {
			return typeErr()
		}
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return syntaxError(err)
			}
			key, _ := kt.(string)
			f, ok := fieldByJSONName(t, key)
			at := joinPath(path, key)
			if !ok {
				return httpx.Invalidf(at, "unknown field")
			}
			if seen[key] {
				return httpx.Invalidf(at, "repeated field")
			}
			seen[key] = true
			if err := walk(dec, f.Type, at); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return syntaxError(err)
		}
	case reflect.Slice:
		if tok != json.Delim('[') {
			return typeErr()
		}
		for i := 0; dec.More(); i++ {
			if i == maxArrayLength {
				return httpx.Invalidf(path, "at most %d elements", maxArrayLength)
			}
			if err := walk(dec, t.Elem(), path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return syntaxError(err)
		}
	case reflect.String:
		if _, ok := tok.(string); !ok {
			return typeErr()
		}
	case reflect.Int64:
		n, ok := tok.(json.Number)
		if !ok {
			return typeErr()
		}
		if _, err := parseWhole(string(n)); err != nil {
			if errors.Is(err, errOutOfRange) {
				return httpx.Invalidf(path, "is out of range")
			}
			return httpx.Invalidf(path, "must be an integer, got %s", n)
		}
	default:
		return fmt.Errorf("decode: unsupported field type %s", t) // a programming error
	}
	return nil
}

// wholeNumber is an integer field of a body. JSON has one kind of number, and JSON Schema
// (OpenAPI 3.1) counts every number without a fractional part as an integer: 2, 2.0, 2e0 and
// 20e-1 are the same integer, and a client that follows the document may send any of them.
type wholeNumber int64

// UnmarshalJSON takes a JSON number whose value is an integer that fits in 64 bits.
func (w *wholeNumber) UnmarshalJSON(b []byte) error {
	n, err := parseWhole(string(b))
	if err != nil {
		return err
	}
	*w = wholeNumber(n)
	return nil
}

var (
	errOutOfRange = errors.New("out of range")
	errNotWhole   = errors.New("not an integer")
)

// maxDigits is the most decimal digits of an int64.
const maxDigits = 19

// parseWhole reads a JSON number (as the decoder has already checked its syntax) whose value
// is an integer, without floating point and without arithmetic whose cost grows with the
// exponent: the digits are shifted by the exponent as text, so 1e999999999 is refused as out
// of range at once rather than computed.
func parseWhole(s string) (int64, error) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	mant, expText, hasExp := strings.Cut(strings.ToLower(s), "e")
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := strings.TrimLeft(intPart+frac, "0")
	if digits == "" {
		return 0, nil // zero, whatever its exponent
	}
	exp := -len(frac)
	if hasExp {
		e, err := strconv.Atoi(expText)
		switch {
		case err != nil && strings.HasPrefix(expText, "-"), err == nil && e < -2*maxDigits-len(s):
			return 0, errNotWhole // a fraction far below 1
		case err != nil, e > maxDigits+len(s):
			return 0, errOutOfRange
		}
		exp += e
	}
	for exp < 0 && strings.HasSuffix(digits, "0") {
		digits, exp = digits[:len(digits)-1], exp+1
	}
	if exp < 0 {
		return 0, errNotWhole
	}
	if len(digits)+exp > maxDigits+1 {
		return 0, errOutOfRange
	}
	text := digits + strings.Repeat("0", exp)
	if neg {
		text = "-" + text
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return 0, errOutOfRange
	}
	return n, nil
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func fieldByJSONName(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == name && tag != "" && tag != "-" {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// Request bodies as sent; pointers tell absent (or null) from empty.
type (
	createUserBody struct {
		ID    *string `json:"id"`
		Email *string `json:"email"`
		Name  *string `json:"name"`
	}
	updateUserBody struct {
		Name  *string `json:"name"`
		Email *string `json:"email"`
	}
	reasonBody struct {
		Reason *string `json:"reason"`
	}
	itemBody struct {
		ID         *string      `json:"id"`
		Name       *string      `json:"name"`
		PriceCents *wholeNumber `json:"price_cents"`
		Quantity   *wholeNumber `json:"quantity"`
	}
	createOrderBody struct {
		ID     *string    `json:"id"`
		UserID *string    `json:"user_id"`
		Items  []itemBody `json:"items"`
	}
	emptyBody struct{}
)

// Validated commands.
type (
	createUserCmd struct {
		ID    string // empty: the server picks one
		Email string
		Name  string
	}
	createOrderCmd struct {
		ID         string // empty: the server picks one
		UserID     string
		Items      []domain.Item
		TotalCents int64
	}
)

func required[T any](field string, p *T) (T, error) {
	if p == nil {
		var zero T
		return zero, httpx.Invalidf(field, "is required")
	}
	return *p, nil
}

// parseID checks that s is a UUID in its canonical 36-character form (any case) and returns
// it in lower case, so that one aggregate never gets two streams.
func parseID(field, s string) (string, error) {
	u, err := uuid.Parse(s)
	if err != nil || len(s) != 36 || u == uuid.Nil {
		return "", httpx.Invalidf(field, "must be a UUID such as 0190a4b2-7f3c-7a00-8000-000000000001")
	}
	return u.String(), nil
}

// optionalID reads the id of a create command, which the client may leave to the server: ""
// when absent.
func optionalID(p *string) (string, error) {
	if p == nil {
		return "", nil
	}
	return parseID("id", *p)
}

// validation wraps a domain validation error as an input error.
func validation(err error) error {
	var ve *domain.ValidationError
	if errors.As(err, &ve) {
		return &httpx.InputError{Field: ve.Field, Message: ve.Message}
	}
	return err
}

func decodeCreateUser(body []byte) (createUserCmd, error) {
	var b createUserBody
	var c createUserCmd
	if err := decodeStrict(body, &b); err != nil {
		return c, err
	}
	var err error
	if c.ID, err = optionalID(b.ID); err != nil {
		return c, err
	}
	if c.Email, err = required("email", b.Email); err != nil {
		return c, err
	}
	if err := domain.ValidateEmail("email", c.Email); err != nil {
		return c, validation(err)
	}
	if c.Name, err = required("name", b.Name); err != nil {
		return c, err
	}
	if c.Name, err = domain.NormalizeName("name", c.Name); err != nil {
		return c, validation(err)
	}
	return c, nil
}

func decodeUpdateUser(body []byte) (domain.ProfileUpdate, error) {
	var b updateUserBody
	var u domain.ProfileUpdate
	if err := decodeStrict(body, &b); err != nil {
		return u, err
	}
	if b.Name == nil && b.Email == nil {
		return u, httpx.Invalidf("", "give at least one of name and email")
	}
	if b.Name != nil {
		name, err := domain.NormalizeName("name", *b.Name)
		if err != nil {
			return u, validation(err)
		}
		u.Name = &name
	}
	if b.Email != nil {
		if err := domain.ValidateEmail("email", *b.Email); err != nil {
			return u, validation(err)
		}
		u.Email = b.Email
	}
	return u, nil
}

func decodeReason(body []byte) (string, error) {
	var b reasonBody
	if err := decodeStrict(body, &b); err != nil {
		return "", err
	}
	reason, err := required("reason", b.Reason)
	if err != nil {
		return "", err
	}
	reason, err = domain.NormalizeReason("reason", reason)
	return reason, validation(err)
}

func (b itemBody) item(field string) (domain.Item, error) {
	var it domain.Item
	var err error
	if it.ID, err = required(joinPath(field, "id"), b.ID); err != nil {
		return it, err
	}
	if it.Name, err = required(joinPath(field, "name"), b.Name); err != nil {
		return it, err
	}
	var price, quantity wholeNumber
	if price, err = required(joinPath(field, "price_cents"), b.PriceCents); err != nil {
		return it, err
	}
	if quantity, err = required(joinPath(field, "quantity"), b.Quantity); err != nil {
		return it, err
	}
	it.PriceCents, it.Quantity = int64(price), int64(quantity)
	return it, nil
}

func decodeItem(body []byte) (domain.Item, error) {
	var b itemBody
	if err := decodeStrict(body, &b); err != nil {
		return domain.Item{}, err
	}
	it, err := b.item("")
	if err != nil {
		return it, err
	}
	it, err = domain.NormalizeItem(it)
	return it, validation(err)
}

func decodeCreateOrder(body []byte) (createOrderCmd, error) {
	var b createOrderBody
	var c createOrderCmd
	if err := decodeStrict(body, &b); err != nil {
		return c, err
	}
	var err error
	if c.ID, err = optionalID(b.ID); err != nil {
		return c, err
	}
	userID, err := required("user_id", b.UserID)
	if err != nil {
		return c, err
	}
	if c.UserID, err = parseID("user_id", userID); err != nil {
		return c, err
	}
	if len(b.Items) > domain.MaxItems {
		return c, httpx.Invalidf("items", "at most %d items, got %d", domain.MaxItems, len(b.Items))
	}
	items := make([]domain.Item, len(b.Items))
	for i, ib := range b.Items {
		if items[i], err = ib.item("items[" + strconv.Itoa(i) + "]"); err != nil {
			return c, err
		}
	}
	if c.Items, c.TotalCents, err = domain.NormalizeItems("items", items); err != nil {
		return c, validation(err)
	}
	return c, nil
}

// decodeEmpty accepts no body or an empty JSON object, for commands without arguments. A body
// of white space alone is no JSON value, and is refused.
func decodeEmpty(body []byte) error {
	if len(body) == 0 {
		return nil
	}
	var b emptyBody
	return decodeStrict(body, &b)
}
