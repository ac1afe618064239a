package keyring_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/resolverd/resolverd/internal/keyring"
	"github.com/resolverd/resolverd/pkg/secret"
)

// TestMaterialNeverPrints: a key's bytes do not show through any printing, logging or marshalling
// path; only Reveal gives them.
func TestMaterialNeverPrints(t *testing.T) {
	m := keyring.NewMaterial()
	raw := m.Reveal()
	b64 := base64.StdEncoding.EncodeToString(raw)
	var log strings.Builder
	slog.New(slog.NewTextHandler(&log, nil)).Info("key", "m", m)
	js, _ := json.Marshal(struct{ M keyring.Material }{m})
	for _, out := range []string{fmt.Sprint(m), fmt.Sprintf("%v %+v %#v %s %x %q", m, m, m, m, m, m), log.String(), string(js)} {
		if !strings.Contains(out, "[REDACTED]") || strings.Contains(out, b64) || strings.Contains(out, fmt.Sprintf("%x", raw)) || strings.Contains(out, string(raw)) {
			t.Errorf("printed %q", out)
		}
	}
	if len(raw) != keyring.KeySize {
		t.Fatalf("%d bytes", len(raw))
	}
	raw[0] ^= 1 // Reveal hands out a copy
	if m.Reveal()[0] == raw[0] {
		t.Fatal("Reveal returned the material itself")
	}
}

// TestNewAssemblesARingFromSeveralSources: New keeps the order (the first seals), the ids are
// Parse's, and a key given twice is kept once where it first appears.
func TestNewAssemblesARingFromSeveralSources(t *testing.T) {
	a, b := keyring.Generate(), keyring.Generate()
	parsed, err := keyring.Parse(a + "," + b)
	if err != nil {
		t.Fatal(err)
	}
	ma, _ := keyring.Decode(a)
	mb, _ := keyring.Decode(b)
	if ma[0].ID() != parsed.IDs()[0] || mb[0].ID() != parsed.IDs()[1] {
		t.Fatalf("Material ids %s %s, keyring ids %v", ma[0].ID(), mb[0].ID(), parsed.IDs())
	}
	kr, err := keyring.New(mb[0], ma[0], mb[0])
	if err != nil || fmt.Sprint(kr.IDs()) != fmt.Sprint([]string{mb[0].ID(), ma[0].ID()}) {
		t.Fatalf("New: %v %v", kr.IDs(), err)
	}
	at := place()
	sealed, id, err := kr.Seal(secret.New("sk-x"), at)
	if err != nil || id != mb[0].ID() {
		t.Fatalf("sealed by %s: %v", id, err)
	}
	if got, err := parsed.Open(sealed, &id, at); err != nil || got.Reveal() != "sk-x" {
		t.Fatalf("Parse's ring does not open what New's sealed: %v", err)
	}
	if _, err := keyring.New(); err == nil {
		t.Fatal("New without keys")
	}
	if _, err := keyring.New(keyring.Material{}); err == nil {
		t.Fatal("New with the zero Material")
	}
	if _, err := keyring.MaterialFrom(make([]byte, 16)); err == nil {
		t.Fatal("MaterialFrom took 16 bytes")
	}
	c, err := keyring.MaterialFrom(ma[0].Reveal())
	if err != nil || c.ID() != ma[0].ID() {
		t.Fatalf("MaterialFrom: %v", err)
	}
}
