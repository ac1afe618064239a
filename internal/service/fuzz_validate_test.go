package service

import (
	"encoding/base64"
	"math"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/resolverd/resolverd/internal/resolve"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// ---------------------------------------------------------------------------------------------
// Validator targets.

// FuzzValidateID: v.id and v.optionalID accept exactly the canonical form of a non-nil UUID (either
// case; optionalID also the empty string), and an accepted one round-trips: len 36 and
// uuid.Parse(s).String() == strings.ToLower(s).
func FuzzValidateID(f *testing.F) {
	for _, s := range uuidSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var req, opt violations
		id := req.id("chat_id", s)
		oid := opt.optionalID("model_config_id", s)
		switch {
		case s == "":
			if len(req) != 1 || req[0].Field != "chat_id" || req[0].Description != "is required" {
				t.Fatalf("id(\"\") = %v, want chat_id is required", req)
			}
			if len(opt) != 0 || id != uuid.Nil || oid != uuid.Nil {
				t.Fatalf("optionalID(\"\") = %v, %v; id %v", oid, opt, id)
			}
		case uuidOK(s):
			if len(req) != 0 || len(opt) != 0 {
				t.Fatalf("refused the UUID %q: %v %v", s, req, opt)
			}
			checkAcceptedUUID(t, "id", s, id)
			checkAcceptedUUID(t, "optionalID", s, oid)
		default:
			if len(req) != 1 || req[0].Field != "chat_id" || len(opt) != 1 || opt[0].Field != "model_config_id" {
				t.Fatalf("%q is not a non-nil canonical UUID, but id/optionalID gave %v / %v", s, req, opt)
			}
			if id != uuid.Nil || oid != uuid.Nil {
				t.Fatalf("refused %q but returned %v / %v", s, id, oid)
			}
		}
	})
}

// FuzzValidateProviderName: v.providerName accepts exactly ^[a-z0-9]+(-[a-z0-9]+)*$ of at most 63
// bytes.
func FuzzValidateProviderName(f *testing.F) {
	for _, s := range []string{
		"openai", "openai-eu", "a", "0", "a-b-c", strings.Repeat("a", 63), strings.Repeat("a", 64),
		strings.Repeat("ab-", 20) + "abc", strings.Repeat("ab-", 21) + "a", "", "-", "a-", "-a", "a--b", "OpenAI",
		"open_ai", "open ai", "open.ai", "ópenai", "openai\n", "a\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, n string) {
		var v violations
		v.providerName("name", n)
		accepted := len(v) == 0
		if want := nameOK(n); accepted != want {
			t.Fatalf("providerName(%q) accepted=%v, want %v (^[a-z0-9]+(-[a-z0-9]+)*$, at most 63 bytes)", n, accepted, want)
		}
		if accepted && (len(n) > 63 || !specNameRE.MatchString(n)) {
			t.Fatalf("accepted provider name %q", n)
		}
		if !accepted && (len(v) != 1 || v[0].Field != "name") {
			t.Fatalf("providerName(%q) violations %v", n, v)
		}
	})
}

// FuzzValidateText: v.text accepts exactly valid UTF-8 of at most 200 characters, without control
// characters or surrounding white space, and (when required) not blank.
func FuzzValidateText(f *testing.F) {
	for _, s := range []string{
		"GPT-4o", "", " ", "Claude 3.5 Sonnet", " padded", "padded ", "tab\there", "line\nbreak", "nul\x00",
		"\xff\xfe", "ünïcödé ✓", strings.Repeat("é", 200), strings.Repeat("é", 201), strings.Repeat("x", 200),
		"\u00a0nbsp", "zero\u200bwidth", "rtl\u202eoverride", "del\x7f", "c1\u0085", "a\u2028b",
	} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, required bool) {
		var v violations
		v.text("display_name", s, required)
		accepted := len(v) == 0
		problem := textProblem(s, required)
		if accepted != (problem == "") {
			t.Fatalf("text(%q, required=%v) accepted=%v; the text rules say %q", s, required, accepted, problem)
		}
		if !accepted && (len(v) != 1 || v[0].Field != "display_name") {
			t.Fatalf("text(%q) violations %v", s, v)
		}
	})
}

// FuzzValidateBaseURL: v.baseURL accepts exactly the empty string and absolute http(s) URLs of at
// most 2048 characters with a host name and neither user info nor a query or fragment.
func FuzzValidateBaseURL(f *testing.F) {
	for _, s := range []string{
		"", "https://api.example.com/v1", "http://localhost:11434", "https://[::1]:8443/v1", "HTTPS://API.EXAMPLE.COM",
		"https://user:pass@api.example.com", "https://user@api.example.com", "https://@api.example.com",
		"https://api.example.com/v1?key=1", "https://api.example.com/v1#frag", "ftp://api.example.com", "api.example.com",
		"/v1", "https://", "https:///v1", "https:api.example.com", "https://api.example.com/a b", "https://api.example.com\n",
		"https://api.example.com/" + strings.Repeat("a", 2048-len("https://api.example.com/")),
		"https://api.example.com/" + strings.Repeat("a", 2049-len("https://api.example.com/")), "http://%zz",
		"http://h:99999", "javascript:alert(1)", "https://api.example.com/v1/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var v violations
		v.baseURL("base_url", s)
		accepted := len(v) == 0
		problem := baseURLProblem(s)
		switch {
		case accepted && problem != "":
			t.Fatalf("baseURL accepted %q, which %s", s, problem)
		case !accepted && problem == "":
			t.Fatalf("baseURL refused %q (%v), an absolute http(s) URL with a host and no user info, query or fragment", s, v)
		case !accepted && (len(v) != 1 || v[0].Field != "base_url"):
			t.Fatalf("baseURL(%q) violations %v", s, v)
		}
	})
}

// FuzzValidateAPIKey: v.apiKey accepts exactly what trims to a non-empty, at most 10240-byte, valid
// UTF-8 string without control characters, and returns it trimmed; a refused key is never quoted
// by its violation.
func FuzzValidateAPIKey(f *testing.F) {
	for _, s := range []string{
		"sk-proj-abc123", "  sk-padded  ", "", "   ", "\t\n", "sk-\x00nul", "sk-\nnewline", "sk-\xff\xfe",
		strings.Repeat("k", 10240), strings.Repeat("k", 10241), " " + strings.Repeat("k", 10240) + "\n",
		strings.Repeat("é", 5120), strings.Repeat("é", 5121), "sk-ünïcödé", "sk-\u2028sep", "sk-\u0085nel",
		"sk-\u00a0nbsp\u00a0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		var v violations
		k := v.apiKey("api_key", raw)
		accepted := len(v) == 0
		problem := apiKeyProblem(raw)
		if accepted != (problem == "") {
			t.Fatalf("apiKey(%q) accepted=%v; docs/CONTRACT.md §3 says %q", raw, accepted, problem)
		}
		if accepted {
			if got := k.Reveal(); got != strings.TrimSpace(raw) || got == "" || len(got) > MaxAPIKeyBytes {
				t.Fatalf("apiKey(%q) returned %q", raw, got)
			}
			return
		}
		if !k.IsZero() || len(v) != 1 || v[0].Field != "api_key" {
			t.Fatalf("apiKey(%q) refused with %v but returned a key", raw, v)
		}
		for _, s := range []string{raw, strings.TrimSpace(raw)} {
			if len(s) >= 8 && (strings.Contains(v[0].Description, s) || strings.Contains(v.err().Error(), s)) {
				t.Fatalf("the refusal of a key quotes it: %q", v[0].Description)
			}
		}
	})
}

// FuzzValidateOptions: v.options accepts exactly the Structs that are a JSON object of at most
// 64 KiB that a jsonb column can store, and returns that object: strings (keys and values) must be
// valid UTF-8 without NUL (PostgreSQL's jsonb refuses \u0000) and numbers finite.
func FuzzValidateOptions(f *testing.F) {
	f.Add(uint8(0), "", "", 0.0, uint16(0))
	f.Add(uint8(1), "", "", 0.0, uint16(0))
	f.Add(uint8(2), "temperature", "high", 0.7, uint16(0))
	f.Add(uint8(3), "reasoning", "effort", -1e308, uint16(100))
	f.Add(uint8(3), "k", "v", 1.0, uint16(65400))
	f.Add(uint8(3), "k", "v", 1.0, uint16(65535))
	f.Add(uint8(2), "k", "\xff", 1.0, uint16(0))
	f.Add(uint8(2), "k", "v", math.NaN(), uint16(0))
	f.Add(uint8(2), "k", "v", math.Inf(1), uint16(0))
	f.Add(uint8(2), "k", "a\x01b", 5e-324, uint16(0))
	f.Fuzz(func(t *testing.T, mode uint8, key, str string, num float64, pad uint16) {
		s := fuzzStruct(mode, key, str, num, pad)
		var v violations
		b := v.options("options", s)
		if len(v) == 0 {
			checkOptionsJSON(t, b, s)
			if len(b) > maxOptionsBytes {
				t.Fatalf("accepted %d bytes of options, more than 64 KiB", len(b))
			}
			for _, str := range structStrings(s) {
				if !utf8.ValidString(str) {
					t.Fatalf("accepted options with the invalid UTF-8 string %q", str)
				}
				if strings.ContainsRune(str, 0) {
					t.Fatalf("accepted options with the string %q, which holds NUL: jsonb cannot store it (\\u0000), so the insert fails with INTERNAL", str)
				}
			}
			if !structNumbersFinite(s) {
				t.Fatalf("accepted options with a NaN or infinite number: %q", b)
			}
			return
		}
		if len(v) != 1 || v[0].Field != "options" {
			t.Fatalf("options violations %v", v)
		}
		representable := structNumbersFinite(s)
		storable := true
		for _, str := range structStrings(s) {
			representable = representable && utf8.ValidString(str)
			storable = storable && !strings.ContainsRune(str, 0)
		}
		if representable && storable {
			if j, err := protojson.Marshal(s); err != nil || len(j) <= maxOptionsBytes {
				t.Fatalf("refused options %v (%v), a JSON object of %d bytes: %v", s, v, len(j), err)
			}
		}
	})
}

// FuzzValidateEnumsAndLimits: purposeOf accepts exactly the five purposes of docs/CONTRACT.md §2,
// byokPolicy exactly the four ByokPolicy values (unspecified → disabled), providerType exactly the
// eight types of docs/CONTRACT.md §1, contextLimit exactly n > 0 and compressionThreshold exactly 0..100.
func FuzzValidateEnumsAndLimits(f *testing.F) {
	// Every declared Purpose value, plus the first undeclared ones: exactly five are accepted.
	accepted := 0
	values := resolverv1.Purpose(0).Descriptor().Values()
	for i := range values.Len() {
		var v violations
		if p := purposeOf(&v, resolverv1.Purpose(values.Get(i).Number())); len(v) == 0 && p != resolve.PurposeUnspecified {
			accepted++
		}
	}
	if accepted != 5 {
		f.Fatalf("purposeOf accepts %d declared purposes, want 5", accepted)
	}
	for _, seed := range []struct {
		typ                               string
		purpose, policy, limit, threshold int32
	}{
		{"openai", 1, 0, 1, 0}, {"openai-compat", 5, 3, 200000, 100}, {"bedrock", 0, 4, 0, 101}, {"OpenAI", 6, -1, -1, -1},
		{"", -1, 2, math.MaxInt32, 50}, {"open-ai", math.MaxInt32, math.MinInt32, math.MinInt32, math.MaxInt32},
		{"vercel ", 3, 1, 1, 99}, {"azure", 2, 2, 2, 1}, {"google", 4, 3, 3, 100},
	} {
		f.Add(seed.typ, seed.purpose, seed.policy, seed.limit, seed.threshold)
	}
	wantPurpose := map[int32]resolve.Purpose{
		1: resolve.PurposeChat, 2: resolve.PurposeSubagent, 3: resolve.PurposePersonalOverride,
		4: resolve.PurposeTitle, 5: resolve.PurposeCompaction,
	}
	wantPolicy := map[int32]resolve.BYOKPolicy{0: resolve.BYOKDisabled, 1: resolve.BYOKDisabled, 2: resolve.BYOKOptional, 3: resolve.BYOKRequired}
	f.Fuzz(func(t *testing.T, typ string, purpose, policy, limit, threshold int32) {
		var v violations
		p := purposeOf(&v, resolverv1.Purpose(purpose))
		if want, ok := wantPurpose[purpose]; ok != (len(v) == 0) || p != want {
			t.Fatalf("purposeOf(%d) = %v with violations %v; want %v (accepted %v)", purpose, p, v, want, ok)
		}
		if len(v) == 1 && v[0].Field != "purpose" {
			t.Fatalf("purposeOf violation names %q", v[0].Field)
		}

		v = nil
		pol := v.byokPolicy("byok_policy", resolverv1.ByokPolicy(policy))
		if want, ok := wantPolicy[policy]; ok != (len(v) == 0) || pol != want {
			t.Fatalf("byokPolicy(%d) = %q with violations %v; want %q (accepted %v)", policy, pol, v, want, ok)
		}

		v = nil
		v.providerType("type", typ)
		if want := slices.Contains(specProviderTypes, typ); want != (len(v) == 0) {
			t.Fatalf("providerType(%q) accepted=%v, want %v", typ, len(v) == 0, want)
		}

		v = nil
		v.contextLimit("context_limit", limit)
		if want := limit > 0; want != (len(v) == 0) {
			t.Fatalf("contextLimit(%d) accepted=%v, want %v", limit, len(v) == 0, want)
		}

		v = nil
		v.compressionThreshold("compression_threshold", threshold)
		if want := threshold >= 0 && threshold <= 100; want != (len(v) == 0) {
			t.Fatalf("compressionThreshold(%d) accepted=%v, want %v", threshold, len(v) == 0, want)
		}
	})
}

// FuzzPageToken: the token issued for a position parses back to it, and only for the method and the
// filters it was issued for, and only with this deployment's key; it is URL-safe; and
// parsePageToken accepts nothing the server did not issue: an accepted token t is exactly the
// token issued for the position it parses to. (ListAuditEvents' positions are event ids.)
func FuzzPageToken(f *testing.F) {
	const method = "ListAuditEvents"
	pages := newPageTokens(fuzzFPKey)
	issue := func(tb testing.TB, method, filter string, n int64) string {
		tok, err := pages.issue(method, filter, n)
		if err != nil {
			tb.Fatalf("issue(%s, %q, %d): %v", method, filter, n, err)
		}
		return tok
	}
	valid := issue(f, method, "", 42)
	for _, seed := range []struct {
		tok string
		n   int64
	}{
		{valid, 42}, {issue(f, method, "", math.MaxInt64), math.MaxInt64}, {issue(f, method, "", math.MinInt64), 0},
		{issue(f, "ListTokens", "", 42), 42}, {issue(f, method, "action=x", 42), 42},
		{valid[:len(valid)-1], 1}, {valid + "A", 2}, {valid + "\n", 3}, {strings.ToUpper(valid), 4},
		{"", math.MinInt64}, {"a1:1", 42}, {base64.RawURLEncoding.EncodeToString([]byte("a1:1")), 7}, {"!!!!", 2},
	} {
		f.Add(seed.tok, seed.n)
	}
	other := newPageTokens([]byte("another deployment's fingerprint key"))
	f.Fuzz(func(t *testing.T, tok string, n int64) {
		made := issue(t, method, "", n)
		if strings.Trim(made, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			t.Fatalf("the token of %d, %q, is not URL-safe", n, made)
		}
		if got, problem := parsePageToken[int64](pages, method, "", made); problem != "" || *got != n {
			t.Fatalf("the token of %d parsed to %v (%s)", n, got, problem)
		}
		if _, problem := parsePageToken[int64](pages, "ListTokens", "", made); problem == "" {
			t.Fatalf("ListTokens accepted a token of %s", method)
		}
		if _, problem := parsePageToken[int64](pages, method, "action=x", made); problem == "" {
			t.Fatalf("a token issued without filters was accepted with one")
		}
		if _, problem := parsePageToken[int64](other, method, "", made); problem == "" {
			t.Fatalf("another deployment's key accepted the token")
		}
		pos, problem := parsePageToken[int64](pages, method, "", tok)
		if problem != "" {
			return
		}
		if canonical := issue(t, method, "", *pos); canonical != tok {
			t.Fatalf("parsePageToken accepted %q as %d, but the token of %d is %q: the server did not issue it", tok, *pos, *pos, canonical)
		}
	})
}
