package domain

import "encoding/json"

// personalFields are the members of each event type's data that hold personal data.
var personalFields = map[string][]string{
	EventUserCreated:        {"email", "name"},
	EventUserProfileUpdated: {"email", "name"},
}

// RedactPersonalData returns data, an event of eventType's data, with each member that holds
// personal data (a user's email and name) replaced by mask. Data of other types, and data
// that is not a JSON object, is returned as it is.
func RedactPersonalData(eventType string, data json.RawMessage, mask string) json.RawMessage {
	fields := personalFields[eventType]
	if len(fields) == 0 {
		return data
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return data
	}
	masked, _ := json.Marshal(mask)
	changed := false
	for _, f := range fields {
		if v, ok := m[f]; ok && string(v) != "null" {
			m[f] = masked
			changed = true
		}
	}
	if !changed {
		return data
	}
	out, err := json.Marshal(m)
	if err != nil {
		return data
	}
	return out
}
