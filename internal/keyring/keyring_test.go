package keyring_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/keyring"
	"github.com/resolverd/resolverd/pkg/secret"
)

// place is a central key's place, for tests.
func place() keyring.Place {
	return keyring.Place{Table: "ai_provider_keys", RowID: uuid.New(), ProviderID: uuid.New()}
}

func TestSealOpenRotate(t *testing.T) {
	a, b := keyring.Generate(), keyring.Generate()
	at := place()
	ringA, err := keyring.Parse(a)
	if err != nil {
		t.Fatal(err)
	}
	ct, id, err := ringA.Seal(secret.New("sk-plain"), at)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(ct, "sk-plain") || id != ringA.IDs()[0] {
		t.Fatalf("ciphertext %q / id %q", ct, id)
	}
	ct2, _, _ := ringA.Seal(secret.New("sk-plain"), at)
	if ct == ct2 {
		t.Fatal("two seals of one value are equal: the nonce is not random")
	}
	// B seals, A still opens: the rotation configuration "new,old".
	ringBA, err := keyring.Parse(b + "," + a)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ringBA.Open(ct, &id, at); err != nil || got.Reveal() != "sk-plain" {
		t.Fatalf("open with the old key second: %q %v", got.Reveal(), err)
	}
	if _, idB, _ := ringBA.Seal(secret.New("x"), at); idB == id {
		t.Fatal("the first key does not seal")
	}
	ringB, _ := keyring.Parse(b)
	if _, err := ringB.Open(ct, &id, at); err == nil || !strings.Contains(err.Error(), id) {
		t.Fatalf("opening without the sealing key: %v", err)
	}
	// Tampering is detected.
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(ct, keyring.BoundPrefix))
	raw[len(raw)-1] ^= 1
	if _, err := ringA.Open(keyring.BoundPrefix+base64.StdEncoding.EncodeToString(raw), &id, at); err == nil {
		t.Fatal("a tampered value opened")
	}
	if got, err := ringA.Open("legacy plain", nil, at); err != nil || got.Reveal() != "legacy plain" {
		t.Fatalf("a NULL key id is plain text: %q %v", got.Reveal(), err)
	}
	if ringA.Has(id) != true || ringB.Has(id) != false {
		t.Fatal("Has")
	}
}

func TestParseErrorsNeverShowKeys(t *testing.T) {
	good := keyring.Generate()
	short := base64.StdEncoding.EncodeToString([]byte("sixteen-bytes!!!"))
	for _, spec := range []string{"", " ", "not base64!!", short, good + "," + short, good + "," + good} {
		_, err := keyring.Parse(spec)
		if err == nil {
			t.Errorf("Parse(%q) succeeded", spec)
			continue
		}
		if strings.Contains(err.Error(), good) || strings.Contains(err.Error(), short) {
			t.Errorf("Parse error shows key material: %v", err)
		}
	}
	if _, err := keyring.Parse(" " + good + " , " + keyring.Generate() + " "); err != nil {
		t.Fatalf("spaces around keys: %v", err)
	}
}
