package keyring_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/keyring"
	"github.com/resolverd/resolverd/pkg/secret"
)

func ring(t testing.TB) *keyring.Keyring {
	t.Helper()
	kr, err := keyring.Parse(keyring.Generate())
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// A value sealed for one place opens there and nowhere else: each field of the place, changed
// alone, makes it fail as not authentic.
func TestABoundValueOpensOnlyInItsPlace(t *testing.T) {
	kr := ring(t)
	user := keyring.Place{Table: "user_ai_provider_keys", RowID: uuid.New(), ProviderID: uuid.New(), UserID: uuid.New()}
	central := keyring.Place{Table: "ai_provider_keys", RowID: uuid.New(), ProviderID: uuid.New()}
	for name, at := range map[string]keyring.Place{"user key": user, "central key": central} {
		t.Run(name, func(t *testing.T) {
			ct, id, err := kr.Seal(secret.New("sk-bound"), at)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(ct, keyring.BoundPrefix) || keyring.Format(ct) != keyring.FormatBound || strings.Contains(ct, "sk-bound") {
				t.Fatalf("sealed value %q: want the %q prefix and no plain text", ct, keyring.BoundPrefix)
			}
			if got, err := kr.Open(ct, &id, at); err != nil || got.Reveal() != "sk-bound" {
				t.Fatalf("open in its own place: %v", err)
			}
			other := uuid.New()
			moved := map[string]keyring.Place{}
			for _, table := range []string{"ai_provider_keys", "user_ai_provider_keys", "ai_provider_keys\x00", ""} {
				if table != at.Table {
					p := at
					p.Table = table
					moved["table "+table] = p
				}
			}
			p := at
			p.RowID = other
			moved["row id"] = p
			p = at
			p.ProviderID = other
			moved["provider id"] = p
			p = at
			p.UserID = other
			moved["user id"] = p
			if at.UserID != uuid.Nil {
				p = at
				p.UserID = uuid.Nil
				moved["no user id"] = p
			}
			// Swapping two ids is a different place too.
			p = at
			p.RowID, p.ProviderID = at.ProviderID, at.RowID
			moved["row and provider swapped"] = p
			for what, p := range moved {
				got, err := kr.Open(ct, &id, p)
				if err == nil || !errors.Is(err, keyring.ErrNotAuthentic) || !got.IsZero() {
					t.Errorf("opened with another %s: %q, %v", what, got.Reveal(), err)
				}
				if err != nil && strings.Contains(err.Error(), "sk-bound") {
					t.Errorf("the error shows the value: %v", err)
				}
			}
		})
	}
}

// Stripping the prefix does not make a bound value open without its place (the tag covers the
// associated data), and editing any byte of it fails.
func TestABoundValueCannotBeDowngradedOrEdited(t *testing.T) {
	kr := ring(t)
	at := keyring.Place{Table: "ai_provider_keys", RowID: uuid.New(), ProviderID: uuid.New()}
	ct, id, err := kr.Seal(secret.New("sk-edit"), at)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Open(strings.TrimPrefix(ct, keyring.BoundPrefix), &id, at); !errors.Is(err, keyring.ErrNotAuthentic) {
		t.Fatalf("the bound value without its prefix: %v", err)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(ct, keyring.BoundPrefix))
	if err != nil {
		t.Fatal(err)
	}
	for i := range raw {
		edited := append([]byte(nil), raw...)
		edited[i] ^= 0x01
		if _, err := kr.Open(keyring.BoundPrefix+base64.StdEncoding.EncodeToString(edited), &id, at); !errors.Is(err, keyring.ErrNotAuthentic) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	for _, bad := range []string{keyring.BoundPrefix, keyring.BoundPrefix + "!!", keyring.BoundPrefix + base64.StdEncoding.EncodeToString(raw[:12])} {
		if _, err := kr.Open(bad, &id, at); !errors.Is(err, keyring.ErrNotAuthentic) {
			t.Fatalf("malformed %q: %v", bad, err)
		}
	}
	unknown := "0123456789abcdef"
	if _, err := kr.Open(ct, &unknown, at); !errors.Is(err, keyring.ErrKeyNotConfigured) || !strings.Contains(err.Error(), unknown) {
		t.Fatalf("an unknown key: %v", err)
	}
}

// Values sealed before schema version 10 (no prefix, no associated data) still open, in any place.
func TestAnUnboundValueStillOpens(t *testing.T) {
	kr := ring(t)
	ct, id, err := kr.SealUnbound(secret.New("sk-old"))
	if err != nil {
		t.Fatal(err)
	}
	if keyring.Format(ct) != keyring.FormatUnbound || strings.Contains(ct, ":") {
		t.Fatalf("unbound value %q", ct)
	}
	for _, at := range []keyring.Place{{}, {Table: "ai_provider_keys", RowID: uuid.New(), ProviderID: uuid.New()}} {
		if got, err := kr.Open(ct, &id, at); err != nil || got.Reveal() != "sk-old" {
			t.Fatalf("open an unbound value: %v", err)
		}
	}
}

func TestSealRefusesAValueWithoutAPlace(t *testing.T) {
	kr := ring(t)
	full := keyring.Place{Table: "ai_provider_keys", RowID: uuid.New(), ProviderID: uuid.New()}
	noTable, noRow, noProvider, nul := full, full, full, full
	noTable.Table, noRow.RowID, noProvider.ProviderID, nul.Table = "", uuid.Nil, uuid.Nil, "a\x00b"
	for _, at := range []keyring.Place{{}, noTable, noRow, noProvider, nul} {
		if ct, _, err := kr.Seal(secret.New("sk"), at); err == nil {
			t.Errorf("Seal(%+v) = %q, want an error", at, ct)
		}
	}
}

// BenchmarkSealBound and BenchmarkOpenBound: the cost of AES-256-GCM with the place as associated
// data, for a key of typical length. A warm resolution pays neither (the opened key is kept with
// the cached entry); a cold one pays one open.
func BenchmarkSealBound(b *testing.B) {
	kr := ring(b)
	at := keyring.Place{Table: "user_ai_provider_keys", RowID: uuid.New(), ProviderID: uuid.New(), UserID: uuid.New()}
	v := secret.New("sk-proj-" + strings.Repeat("x", 156))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := kr.Seal(v, at); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenBound(b *testing.B) {
	kr := ring(b)
	at := keyring.Place{Table: "user_ai_provider_keys", RowID: uuid.New(), ProviderID: uuid.New(), UserID: uuid.New()}
	ct, id, err := kr.Seal(secret.New("sk-proj-"+strings.Repeat("x", 156)), at)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kr.Open(ct, &id, at); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenUnbound(b *testing.B) {
	kr := ring(b)
	ct, id, err := kr.SealUnbound(secret.New("sk-proj-" + strings.Repeat("x", 156)))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kr.Open(ct, &id, keyring.Place{}); err != nil {
			b.Fatal(err)
		}
	}
}
