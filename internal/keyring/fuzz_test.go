package keyring

import (
	"encoding/base64"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/pkg/secret"
)

// parseErrorText is every fixed word Parse's errors are made of (numbers are compared as 0). A part of the input
// that also occurs in it can turn up in an error by chance, without the error quoting the input.
const parseErrorText = "no encryption keys given: set --encryption-keys or RESOLVER_ENCRYPTION_KEYS to " +
	"comma-separated base64 of 32 random bytes each (e.g. from `openssl rand -base64 32`)\n" +
	"encryption key #0 is not valid base64\n" +
	"encryption key #0 is 0 bytes; each key must be 0 random bytes, base64-encoded\n" +
	"encryption key #0: \nencryption key #0 is given twice"

var digits = regexp.MustCompile(`[0-9]+`)

// FuzzParse: Parse never panics; a refused spec yields no keyring and an error that quotes no part
// of the spec (no key material: every comma-separated part, and the whole spec, of 8 bytes or more
// is absent from the error, numbers aside); an accepted spec yields one distinct 16-hex-digit id
// per part, the first key seals, and every key opens what it sealed.
func FuzzParse(f *testing.F) {
	k1 := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	k2 := base64.RawStdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
	short := base64.StdEncoding.EncodeToString([]byte("sixteen-bytes!!!"))
	long := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef!"))
	for _, spec := range []string{
		k1, k2, k1 + "," + k2, " " + k1 + " , " + k2 + " ", k1 + "," + k1, k1 + ",", "," + k1, "", " ", ",",
		short, long, "not base64!!", k1[:len(k1)-1], strings.ReplaceAll(k1, "=", ""), k1 + "\n",
		base64.URLEncoding.EncodeToString([]byte("0123456789abcdef0123456789abc?>~")), k1 + "," + short + "," + k2,
	} {
		f.Add(spec, "sk-plain")
	}
	f.Add(k1, "")
	f.Add(k2, "\x00\xff"+strings.Repeat("p", 300))
	f.Fuzz(func(t *testing.T, spec, plain string) {
		kr, err := Parse(spec)
		if err != nil {
			if kr != nil {
				t.Fatalf("Parse(%q) failed (%v) but returned a keyring", spec, err)
			}
			msg, vocabulary := digits.ReplaceAllString(err.Error(), "0"), digits.ReplaceAllString(parseErrorText, "0")
			for _, part := range append(strings.Split(spec, ","), spec) {
				for _, p := range []string{part, strings.TrimSpace(part)} {
					if len(p) < 8 {
						continue
					}
					p = digits.ReplaceAllString(p, "0")
					if strings.Contains(msg, p) && !strings.Contains(vocabulary, p) {
						t.Fatalf("Parse(%q): the error quotes its input %q: %v", spec, p, err)
					}
				}
			}
			return
		}
		parts := strings.Split(spec, ",")
		ids := kr.IDs()
		if len(ids) != len(parts) {
			t.Fatalf("Parse(%q) gave %d keys for %d parts", spec, len(ids), len(parts))
		}
		seen := map[string]bool{}
		for _, id := range ids {
			if len(id) != 16 || strings.Trim(id, "0123456789abcdef") != "" || seen[id] || !kr.Has(id) {
				t.Fatalf("Parse(%q) gave ids %v", spec, ids)
			}
			seen[id] = true
		}
		at := Place{Table: "ai_provider_keys", RowID: uuid.New(), ProviderID: uuid.New()}
		ct, id, err := kr.Seal(secret.New(plain), at)
		if err != nil || id != ids[0] {
			t.Fatalf("Seal: %q, %v; want the first key %s", id, err, ids[0])
		}
		if len(plain) >= 8 && strings.Contains(ct, plain) {
			t.Fatalf("the sealed value %q shows the plain text", ct)
		}
		got, err := kr.Open(ct, &id, at)
		if err != nil || got.Reveal() != plain {
			t.Fatalf("Open(Seal(%q)) = %q, %v", plain, got.Reveal(), err)
		}
		for _, k := range kr.keys {
			one := &Keyring{keys: []key{k}}
			ct, kid, err := one.Seal(secret.New(plain), at)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := kr.Open(ct, &kid, at); err != nil || got.Reveal() != plain {
				t.Fatalf("key %s does not open what it sealed: %v", kid, err)
			}
		}
	})
}
