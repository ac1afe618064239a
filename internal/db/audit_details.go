package db

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
)

// FieldChange is one field an admin change set, with its value before and after as text: absent
// before when the change created the row, absent after when it deleted it. A secret appears only
// as its fingerprint (the field is then named "api_key_fingerprint").
type FieldChange struct {
	Field               string
	Before, After       string
	HasBefore, HasAfter bool
}

// changesKey is the details key the changes are stored under.
const changesKey = "changes"

// field is one non-secret field of a row, as text, in the order the row's audit records list it.
type field struct{ name, value string }

// created lists every field of a new row as changes with no before.
func created(fields []field) []FieldChange {
	out := make([]FieldChange, len(fields))
	for i, f := range fields {
		out[i] = FieldChange{Field: f.name, After: f.value, HasAfter: true}
	}
	return out
}

// deleted lists every field of a removed row as changes with no after.
func deleted(fields []field) []FieldChange {
	out := make([]FieldChange, len(fields))
	for i, f := range fields {
		out[i] = FieldChange{Field: f.name, Before: f.value, HasBefore: true}
	}
	return out
}

// diff lists the fields whose value differs between before and after (the same fields in the
// same order).
func diff(before, after []field) []FieldChange {
	var out []FieldChange
	for i := range after {
		if before[i].value != after[i].value {
			out = append(out, FieldChange{Field: after[i].name, Before: before[i].value, After: after[i].value, HasBefore: true, HasAfter: true})
		}
	}
	return out
}

// appendDetails writes details and changes as one JSON object, canonically: keys sorted, the
// changes under "changes" as {"field": {"after": ..., "before": ...}}. Canonical, because a
// chain's MAC covers these bytes and the verifier rebuilds them from what PostgreSQL's jsonb
// kept, which neither keeps key order nor white space.
func appendDetails(b []byte, details map[string]string, changes []FieldChange) []byte {
	keys := make([]string, 0, len(details)+1)
	for k := range details {
		if k != changesKey {
			keys = append(keys, k)
		}
	}
	if len(changes) > 0 {
		keys = append(keys, changesKey)
	}
	sort.Strings(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		if k != changesKey {
			b = appendJSONString(b, details[k])
			continue
		}
		sorted := slices.Clone(changes)
		slices.SortStableFunc(sorted, func(x, y FieldChange) int { return cmpString(x.Field, y.Field) })
		b = append(b, '{')
		for j, c := range sorted {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, c.Field)
			b = append(b, ":{"...)
			if c.HasAfter {
				b = append(b, `"after":`...)
				b = appendJSONString(b, c.After)
				if c.HasBefore {
					b = append(b, ',')
				}
			}
			if c.HasBefore {
				b = append(b, `"before":`...)
				b = appendJSONString(b, c.Before)
			}
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// errOddDetails means stored details are not what resolverd writes (edited, or inserted by hand).
var errOddDetails = errors.New("the details are not what resolverd writes")

// parseDetails reads a details object back. It is strict — a value of another shape than
// appendDetails writes is an error, so the verifier cannot be shown a row whose extra parts its
// rebuilt bytes would leave out — and still returns what it could read, every other value as its
// JSON text, for listing.
func parseDetails(raw []byte) (map[string]string, []FieldChange, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return map[string]string{"details": string(raw)}, nil, fmt.Errorf("%w: %v", errOddDetails, err)
	}
	var bad error
	if len(obj) == 0 {
		bad = errOddDetails // appendDetails writes NULL, not {}
	}
	details := make(map[string]string, len(obj))
	var changes []FieldChange
	for k, v := range obj {
		if k == changesKey {
			c, err := parseChanges(v)
			if err == nil {
				changes = c
				continue
			}
			bad = err
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			details[k] = string(v)
			bad = fmt.Errorf("%w: %q is not a string", errOddDetails, k)
			continue
		}
		details[k] = s
	}
	return details, changes, bad
}

func parseChanges(raw json.RawMessage) ([]FieldChange, error) {
	var byField map[string]json.RawMessage
	if err := json.Unmarshal(raw, &byField); err != nil || len(byField) == 0 {
		return nil, fmt.Errorf("%w: changes are not an object of fields", errOddDetails)
	}
	out := make([]FieldChange, 0, len(byField))
	for f, v := range byField {
		var c struct {
			Before *string `json:"before"`
			After  *string `json:"after"`
		}
		// Exactly "before" and "after": Go matches names case-insensitively, so an "AFTER"
		// added or renamed with psql would otherwise read (and MAC) as the "after" written.
		var names map[string]json.RawMessage
		if err := json.Unmarshal(v, &names); err != nil {
			return nil, fmt.Errorf("%w: change of %q", errOddDetails, f)
		}
		for name := range names {
			if name != "before" && name != "after" {
				return nil, fmt.Errorf("%w: change of %q has %q", errOddDetails, f, name)
			}
		}
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil || (c.Before == nil && c.After == nil) {
			return nil, fmt.Errorf("%w: change of %q", errOddDetails, f)
		}
		fc := FieldChange{Field: f}
		if c.Before != nil {
			fc.Before, fc.HasBefore = *c.Before, true
		}
		if c.After != nil {
			fc.After, fc.HasAfter = *c.After, true
		}
		out = append(out, fc)
	}
	slices.SortFunc(out, func(x, y FieldChange) int { return cmpString(x.Field, y.Field) })
	return out, nil
}
