package db

import (
	"encoding/json"
	"testing"
)

// TestAppendDetailsIsJSON: the hand-written encoder produces what encoding/json reads back, for
// awkward strings.
func TestAppendDetailsIsJSON(t *testing.T) {
	awkward := "quote\" back\\slash \n\t\x00\x1f é ✓ </script>"
	for i, d := range []map[string]string{{"name": awkward, awkward: "key"}, {}, {"a": ""}} {
		b := appendDetails(nil, d)
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
