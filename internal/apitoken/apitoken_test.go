package apitoken_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/resolverd/resolverd/internal/apitoken"
	"github.com/resolverd/resolverd/pkg/secret"
)

// sample is a well-formed token (32 bytes of 0x01..0x20), fixed so failures are reproducible.
var sample = func() string {
	raw := make([]byte, 32)
	for i := range raw {
		raw[i] = byte(i + 1)
	}
	return apitoken.Prefix + base64.RawURLEncoding.EncodeToString(raw)
}()

func TestNew(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		tok, hash := apitoken.New()
		s := tok.Reveal()
		if !strings.HasPrefix(s, "rsv_") {
			t.Fatalf("token %q lacks the rsv_ prefix", s)
		}
		if len(s) != len("rsv_")+43 {
			t.Fatalf("token length %d, want %d", len(s), len("rsv_")+43)
		}
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(s, "rsv_"))
		if err != nil || len(raw) != 32 {
			t.Fatalf("token body is not base64url of 32 bytes: %v (%d bytes)", err, len(raw))
		}
		if !apitoken.Valid(s) {
			t.Fatalf("Valid(%q) = false for a fresh token", s)
		}
		if !bytes.Equal(hash, apitoken.Hash(s)) {
			t.Fatal("New's hash is not Hash(token)")
		}
		if seen[s] {
			t.Fatalf("New returned %q twice", s)
		}
		seen[s] = true
	}
}

func TestHash(t *testing.T) {
	a, b := apitoken.Hash(sample), apitoken.Hash(sample)
	if len(a) != 32 {
		t.Fatalf("hash length %d, want 32 (SHA-256)", len(a))
	}
	if !bytes.Equal(a, b) {
		t.Fatal("Hash is not deterministic")
	}
	if bytes.Equal(a, apitoken.Hash(sample[:len(sample)-1]+"B")) {
		t.Fatal("different tokens share a hash")
	}
	if bytes.Contains(a, []byte(sample)) {
		t.Fatal("the hash carries the token")
	}
}

func TestValid(t *testing.T) {
	body := strings.TrimPrefix(sample, apitoken.Prefix)
	cases := []struct {
		name string
		tok  string
		want bool
	}{
		{"sample", sample, true},
		{"empty", "", false},
		{"prefix only", "rsv_", false},
		{"no prefix", body, false},
		{"wrong prefix", "rsx_" + body, false},
		{"upper-case prefix", "RSV_" + body, false},
		{"one short", sample[:len(sample)-1], false},
		{"one long", sample + "A", false},
		{"padded", sample + "=", false},
		{"standard alphabet +", "rsv_+" + body[1:], false},
		{"standard alphabet /", "rsv_/" + body[1:], false},
		{"space inside", "rsv_ " + body[1:], false},
		{"non-ASCII", "rsv_é" + body[2:], false},
		{"url alphabet - and _", "rsv_-_" + body[2:], true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := apitoken.Valid(tc.tok); got != tc.want {
				t.Errorf("Valid(%q) = %v, want %v", tc.tok, got, tc.want)
			}
		})
	}
}

func TestFromAuthorization(t *testing.T) {
	body := strings.TrimPrefix(sample, apitoken.Prefix)
	cases := []struct {
		name  string
		value string
		ok    bool
	}{
		{"valid", "Bearer " + sample, true},
		{"lowercase bearer", "bearer " + sample, true},
		{"upper-case bearer", "BEARER " + sample, true},
		{"extra spaces between", "Bearer    " + sample, true},
		{"surrounding spaces", "  Bearer " + sample + "  ", true},
		{"empty", "", false},
		{"spaces only", "   ", false},
		{"Bearer alone", "Bearer", false},
		{"Bearer and a space", "Bearer ", false},
		{"token alone", sample, false},
		{"Basic scheme", "Basic " + sample, false},
		{"Basic xyz", "Basic xyz", false},
		{"Token scheme", "Token " + sample, false},
		{"Bearer glued to the token", "Bearer" + sample, false},
		{"scheme with a suffix", "Bearers " + sample, false},
		{"two tokens", "Bearer " + sample + " " + sample, false},
		{"trailing text", "Bearer " + sample + " x", false},
		{"wrong prefix", "Bearer rsk_" + body, false},
		{"no prefix", "Bearer " + body, false},
		{"bad base64", "Bearer rsv_" + strings.Repeat("!", 43), false},
		{"standard base64", "Bearer rsv_+/" + body[2:], false},
		{"too short", "Bearer " + sample[:len(sample)-1], false},
		{"too long", "Bearer " + sample + "A", false},
		{"padded", "Bearer " + sample + "=", false},
		{"garbage", "Bearer not-a-token", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := apitoken.FromAuthorization(tc.value)
			if !tc.ok {
				if err == nil {
					t.Fatalf("FromAuthorization(%q) accepted it", tc.value)
				}
				if !errors.Is(err, apitoken.ErrMalformed) {
					t.Errorf("error %v, want ErrMalformed", err)
				}
				if !tok.IsZero() {
					t.Error("a refused value returned a token")
				}
				if strings.Contains(err.Error(), body) {
					t.Errorf("the error carries the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromAuthorization(%q): %v", tc.value, err)
			}
			if tok.Reveal() != sample {
				t.Errorf("token = %q, want %q", tok.Reveal(), sample)
			}
		})
	}
}

// TestTokenIsRedacted: the parsed and the minted token print as [REDACTED] however they are formatted
// or logged.
func TestTokenIsRedacted(t *testing.T) {
	parsed, err := apitoken.FromAuthorization("Bearer " + sample)
	if err != nil {
		t.Fatal(err)
	}
	minted, _ := apitoken.New()
	for name, tok := range map[string]secret.String{"parsed": parsed, "minted": minted} {
		plain := tok.Reveal()
		for _, verb := range []string{"%v", "%s", "%+v", "%#v", "%q", "%x"} {
			if got := fmt.Sprintf(verb, tok); got != secret.Redacted {
				t.Errorf("%s: Sprintf(%s) = %q, want %q", name, verb, got, secret.Redacted)
			}
		}
		wrapped := struct{ Token secret.String }{tok}
		for _, verb := range []string{"%v", "%+v", "%#v"} {
			if got := fmt.Sprintf(verb, wrapped); strings.Contains(got, plain) || !strings.Contains(got, secret.Redacted) {
				t.Errorf("%s in a struct: Sprintf(%s) = %q", name, verb, got)
			}
		}
		if got := fmt.Sprint(tok); got != secret.Redacted {
			t.Errorf("%s: Sprint = %q", name, got)
		}
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("call", "token", tok)
		if strings.Contains(buf.String(), plain) || !strings.Contains(buf.String(), secret.Redacted) {
			t.Errorf("%s: slog wrote %s", name, buf.String())
		}
	}
}

// FuzzFromAuthorization: no value panics; an accepted value yields a well-formed token that is
// accepted again in the canonical "Bearer <token>" form; a refused one yields ErrMalformed.
func FuzzFromAuthorization(f *testing.F) {
	body := strings.TrimPrefix(sample, apitoken.Prefix)
	// The last character of a 43-character body carries 4 bits and 2 padding bits: its neighbour
	// in the alphabet differs only in a padding bit, which a lenient decoder ignores.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	nonCanonical := apitoken.Prefix + body[:42] + string(alphabet[strings.IndexByte(alphabet, body[42])^1])
	for _, seed := range []string{
		"Bearer " + sample, "bearer " + sample, "  Bearer   " + sample + " ", "Bearer", "Bearer ", "",
		"Basic xyz", sample, "Bearer rsv_" + strings.Repeat("!", 43), "Bearer rsk_" + body,
		"Bearer " + sample + "=", "Bearer " + sample[:len(sample)-1], "Bearer\t" + sample, "Bearer " + sample + " x",
		// Scheme spellings and the white space around and inside the value.
		"BeArEr " + sample, "Bearer \t " + sample, "Bearer\u00a0" + sample, "Bearer " + sample + "\r\n",
		"\u2003Bearer " + sample, "Bearer: " + sample, "Bearer " + sample + "\x00",
		// Bodies of the right length that are not what New mints.
		"Bearer rsv_" + body[:20] + "\n" + body[21:], "Bearer " + nonCanonical, "Bearer rsv_" + strings.Repeat("A", 43),
		"Bearer rsv_" + strings.Repeat("_", 43), "Bearer rsv_" + strings.Repeat("=", 43), "Bearer rsv_" + body[:41] + "é",
		"Bearer RSV_" + body, "Bearer rsv_rsv_" + body[4:], "Bearer " + strings.Repeat("rsv_", 1000),
		// Bare tokens, for the comparison of Valid with strict base64url decoding.
		nonCanonical, "rsv_" + body[:20] + "\n" + body[21:], "rsv_" + body[:42] + "=", "rsv_" + body[:41] + "+/",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		tok, err := apitoken.FromAuthorization(value)
		// HashAuthorization, the authenticator's path, accepts exactly the same values and hashes
		// the same token.
		hash, herr := apitoken.HashAuthorization(value)
		if (herr == nil) != (err == nil) || (err == nil && !bytes.Equal(hash[:], apitoken.Hash(tok.Reveal()))) {
			t.Fatalf("HashAuthorization(%q) = %x, %v; FromAuthorization: %v", value, hash, herr, err)
		}
		// Valid is strict base64url decoding of exactly 32 bytes after the prefix.
		if body, ok := strings.CutPrefix(strings.TrimSpace(value), apitoken.Prefix); ok {
			raw, derr := base64.RawURLEncoding.Strict().DecodeString(body)
			strict := derr == nil && len(raw) == 32 && !strings.ContainsAny(body, "\r\n")
			if got := apitoken.Valid(strings.TrimSpace(value)); got != strict {
				t.Fatalf("Valid(%q) = %v, strict base64url decoding of 32 bytes says %v", value, got, strict)
			}
		}
		if err != nil {
			if !errors.Is(err, apitoken.ErrMalformed) {
				t.Fatalf("FromAuthorization(%q) = %v, want ErrMalformed", value, err)
			}
			if !tok.IsZero() {
				t.Fatalf("FromAuthorization(%q) refused the value but returned a token", value)
			}
			return
		}
		s := tok.Reveal()
		if !apitoken.Valid(s) {
			t.Fatalf("FromAuthorization(%q) accepted %q, which is not Valid", value, s)
		}
		if !strings.Contains(value, s) {
			t.Fatalf("FromAuthorization(%q) returned %q, which the value does not contain", value, s)
		}
		again, err := apitoken.FromAuthorization("Bearer " + s)
		if err != nil || again.Reveal() != s {
			t.Fatalf("the canonical header of %q is refused: %v", s, err)
		}
		if fmt.Sprint(tok) != secret.Redacted {
			t.Fatalf("an accepted token prints as %q", fmt.Sprint(tok))
		}
	})
}
