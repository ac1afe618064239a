package db

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestAppendDetailsIsJSON: the hand-written encoder produces what encoding/json reads back, for
// awkward strings.
func TestAppendDetailsIsJSON(t *testing.T) {
	awkward := "quote\" back\\slash \n\t\x00\x1f é ✓ </script>"
	for i, d := range []map[string]string{{"name": awkward, awkward: "key"}, {}, {"a": ""}} {
		b := appendDetails(nil, d, nil)
		var got map[string]string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("case %d: %s is not JSON: %v", i, b, err)
		}
		if len(got) != len(d) {
			t.Fatalf("case %d: %v, want %v", i, got, d)
		}
		for k, v := range d {
			if got[k] != v {
				t.Errorf("case %d: %q = %q, want %q", i, k, got[k], v)
			}
		}
	}
}

// TestDetailsRoundTrip: details and changes read back (parseDetails) encode to the very bytes
// they were written as, whatever order the map or the changes came in: the chain verifier
// depends on it.
func TestDetailsRoundTrip(t *testing.T) {
	awkward := "quote\" back\\slash \n\t\x1f é ✓ </script>"
	details := map[string]string{"provider_id": "p", "z": awkward, "a": ""}
	changes := []FieldChange{
		{Field: "name", Before: "old", After: awkward, HasBefore: true, HasAfter: true},
		{Field: "base_url", Before: "https://a.example", After: "https://b.example", HasBefore: true, HasAfter: true},
		{Field: "created", After: "x", HasAfter: true},
		{Field: "gone", Before: "", HasBefore: true},
	}
	want := appendDetails(nil, details, changes)
	reversed := []FieldChange{changes[3], changes[2], changes[1], changes[0]}
	if again := appendDetails(nil, details, reversed); !bytes.Equal(again, want) {
		t.Fatalf("the order of changes shows:\n%s\n%s", want, again)
	}
	d, c, err := parseDetails(want)
	if err != nil {
		t.Fatal(err)
	}
	if got := appendDetails(nil, d, c); !bytes.Equal(got, want) {
		t.Fatalf("read back differently:\n%s\n%s", want, got)
	}
	if len(c) != 4 || c[0].Field != "base_url" || c[0].After != "https://b.example" || c[1].HasBefore || !c[2].HasBefore || c[2].HasAfter {
		t.Fatalf("changes read back: %+v", c)
	}
	// Re-indented and reordered, as jsonb prints it, it is still the same.
	var v any
	_ = json.Unmarshal(want, &v)
	pretty, _ := json.MarshalIndent(v, "", "  ")
	d, c, err = parseDetails(pretty)
	if err != nil || !bytes.Equal(appendDetails(nil, d, c), want) {
		t.Fatalf("from jsonb's form: %v", err)
	}
}

// TestOddDetailsAreFlagged: details of another shape than resolverd writes cannot be rebuilt
// byte for byte, so parseDetails says so (and still shows them).
func TestOddDetailsAreFlagged(t *testing.T) {
	for _, raw := range []string{
		`{}`,
		`{"a": 1}`,
		`{"a": "b", "changes": {}}`,
		`{"changes": {"name": {"before": "a", "extra": "b"}}}`,
		`{"changes": {"name": {}}}`,
		`{"changes": {"name": "x"}}`,
		`{"changes": ["name"]}`,
		`[1]`,
	} {
		d, _, err := parseDetails([]byte(raw))
		if err == nil {
			t.Errorf("%s: no error", raw)
		}
		if d == nil {
			t.Errorf("%s: nothing to show", raw)
		}
	}
}
