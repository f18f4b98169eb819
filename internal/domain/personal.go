package domain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/annals-dev/annals/pkg/shred"
)

// personalFields are the members of each event type's data that hold personal data.
var personalFields = map[string][]string{
	EventUserCreated:        {"email", "name"},
	EventUserProfileUpdated: {"email", "name"},
}

// PersonalFields are the members of an event type's data that hold personal data (sealed with
// the user's data key when the writer encrypts); nil for a type without any.
func PersonalFields(eventType string) []string { return personalFields[eventType] }

// Erased replaces a personal value whose user was erased (its data key destroyed).
const Erased = "[erased]"

// PersonalDataSubject is the shred subject whose data key seals the personal data of a
// stream's events: the user's id for a user stream, false for a stream of another category.
func PersonalDataSubject(streamID string) (string, bool) {
	id, ok := strings.CutPrefix(streamID, UserCategory+"-")
	return id, ok && id != ""
}

// RedactPersonalData returns data, an event of eventType's data, with each member that holds
// personal data (a user's email and name) replaced by mask. Data of other types, and data
// that is not a JSON object, is returned as it is.
func RedactPersonalData(eventType string, data json.RawMessage, mask string) json.RawMessage {
	out, _ := mapPersonal(eventType, data, func(string) (string, error) { return mask, nil })
	return out
}

// DecryptPersonalData returns data, an event of eventType's data on streamID, with each
// personal member decrypted by dec; a member whose user was erased reads Erased. Members that
// are not encrypted stay as they are. Any other failure of dec is returned: shred's
// ErrInvalidCiphertext and ErrNoKey are faults of the event, anything else a dependency's.
func DecryptPersonalData(ctx context.Context, dec shred.Cipher, eventType, streamID string, data json.RawMessage) (json.RawMessage, error) {
	subject, ok := PersonalDataSubject(streamID)
	if !ok || len(personalFields[eventType]) == 0 {
		return data, nil
	}
	return mapPersonal(eventType, data, func(v string) (string, error) {
		if !shred.IsEncrypted(v) {
			return v, nil
		}
		clear, err := dec.Decrypt(ctx, subject, v)
		if errors.Is(err, shred.ErrErased) {
			return Erased, nil
		}
		return clear, err
	})
}

// mapPersonal returns data with each personal member that is a string replaced by f of it;
// data of other types, data that is not a JSON object and data without such a member come
// back as they are.
func mapPersonal(eventType string, data json.RawMessage, f func(string) (string, error)) (json.RawMessage, error) {
	fields := personalFields[eventType]
	if len(fields) == 0 {
		return data, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return data, nil
	}
	changed := false
	for _, name := range fields {
		v, ok := m[name]
		if !ok || string(v) == "null" {
			continue
		}
		var s string
		if json.Unmarshal(v, &s) != nil {
			s = string(v) // not a string: masked as a whole, never decrypted
		}
		out, err := f(s)
		if err != nil {
			return data, fmt.Errorf("%s %s: %w", eventType, name, err)
		}
		if m[name], err = json.Marshal(out); err != nil {
			return data, err
		}
		changed = true
	}
	if !changed {
		return data, nil
	}
	out, err := json.Marshal(m)
	if err != nil {
		return data, nil
	}
	return out, nil
}
