package keyring

import (
	"bytes"
	"testing"
)

// TestDerive: a derived key depends on the key and the label only, is found again by the key's id
// after rotation, and is not the key itself.
func TestDerive(t *testing.T) {
	a, b := Generate(), Generate()
	old, err := Parse(a)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := Parse(b + "," + a)
	if err != nil {
		t.Fatal(err)
	}
	id, k1 := old.Derive("label one")
	if id != old.IDs()[0] || len(k1) != DerivedKeySize {
		t.Fatalf("Derive = %s, %d bytes", id, len(k1))
	}
	if _, again := old.Derive("label one"); !bytes.Equal(again, k1) {
		t.Fatal("Derive is not deterministic")
	}
	if _, k2 := old.Derive("label two"); bytes.Equal(k1, k2) {
		t.Fatal("two labels give one key")
	}
	if newID, k3 := rotated.Derive("label one"); newID == id || bytes.Equal(k3, k1) {
		t.Fatal("the new sealing key derives the old key")
	}
	if k, ok := rotated.DeriveFor(id, "label one"); !ok || !bytes.Equal(k, k1) {
		t.Fatal("DeriveFor the old key after rotation differs from what it derived before")
	}
	if _, ok := old.DeriveFor("0000000000000000", "label one"); ok {
		t.Fatal("DeriveFor an unknown key id")
	}
}
