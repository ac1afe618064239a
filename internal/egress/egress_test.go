package egress

import (
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// The list's grammar (docs/CONTRACT.md §7.5): what parses, to what, and what is refused with which
// explanation.
func TestParse(t *testing.T) {
	good := []struct {
		spec, want string
	}{
		{"", ""},
		{"   ", ""},
		{"api.openai.com", "api.openai.com"},
		{"API.OpenAI.com", "api.openai.com"},
		{" api.openai.com , *.openai.azure.com ", "api.openai.com,*.openai.azure.com"},
		{"example.com.", "example.com"},
		{"*.Example.COM.", "*.example.com"},
		{"localhost", "localhost"},
		{"vllm_internal.svc", "vllm_internal.svc"},
		{"xn--bcher-kva.example", "xn--bcher-kva.example"},
		{"10.0.0.5", "10.0.0.5"},
		{"10.0.0.5.", "10.0.0.5"},
		{"[fd00::1]", "fd00::1"},
		{"fd00:0::1", "fd00::1"},
		{"[::ffff:10.0.0.5]", "10.0.0.5"},
		{"a.com,A.com,a.com.", "a.com"}, // duplicates collapse
		{"*.com", "*.com"},
	}
	for _, g := range good {
		l, err := Parse(g.spec)
		if err != nil {
			t.Errorf("Parse(%q) = %v, want %q", g.spec, err, g.want)
			continue
		}
		if got := l.String(); got != g.want {
			t.Errorf("Parse(%q).String() = %q, want %q", g.spec, got, g.want)
		}
		if l.Empty() != (g.want == "") {
			t.Errorf("Parse(%q).Empty() = %v", g.spec, l.Empty())
		}
	}

	bad := []struct {
		spec, want string
	}{
		{",", "entry 1 is empty"},
		{"a.com,", "entry 2 is empty"},
		{"a.com,,b.com", "entry 2 is empty"},
		{"a.com, ,b.com", "entry 2 is empty"},
		{"https://api.openai.com", `entry 1 "https://api.openai.com" is a URL`},
		{"a.com,http://b.com/v1", `entry 2 "http://b.com/v1" is a URL`},
		{"api.openai.com:443", "has a port"},
		{"[fd00::1]:443", "port"},
		{"api.openai.com/v1", "has a path"},
		{"user@api.openai.com", "has user info"},
		{"*", "bare *"},
		{"*.", "bare *"},
		{"a.com,*", "entry 2 \"*\" is a bare *"},
		{"*example.com", "not the whole first label"},
		{"api.*.com", "not the whole first label"},
		{"*.*.example.com", "not the whole first label"},
		{"**.example.com", "not the whole first label"},
		{"bücher.example", "punycode"},
		{"a b.com", "white space"},
		{"a..com", "label"},
		{".a.com", "label"},
		{"example.com..", "label"},
		{strings.Repeat("a", 64) + ".com", "label"},
		{strings.Repeat("a.", 127) + "com", "253"},
		{"a!b.com", "not a letter"},
		{"10.1", "last label is a number"},
		{"010.0.0.1", "last label is a number"},
		{"example.0x1f", "last label is a number"},
		{"*.10.0.0.5", "IP address"},
		{"fe80::1%eth0", "zone"},
		{"[not-an-ip]", "not an IP address"},
		{":::", "not an IP address"},
		{"a.com?x", "path"},
	}
	for _, b := range bad {
		l, err := Parse(b.spec)
		if err == nil {
			t.Errorf("Parse(%q) = %q, want an error mentioning %q", b.spec, l, b.want)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, b.want) || strings.Contains(msg, "\n") {
			t.Errorf("Parse(%q) error %q, want one line mentioning %q", b.spec, msg, b.want)
		}
	}
}

// A non-ASCII or control byte in an entry is never echoed back: the error is one printable line.
func TestParseErrorsArePrintable(t *testing.T) {
	for _, spec := range []string{"bü\x00cher.example", "a.com,\x1b[31mred", "\xff\xfe"} {
		_, err := Parse(spec)
		if err == nil {
			t.Fatalf("Parse(%q) accepted", spec)
		}
		for _, r := range err.Error() {
			if r < 0x20 || r >= 0x7f {
				t.Errorf("Parse(%q) error %q holds %q", spec, err, r)
			}
		}
	}
}

func TestCheck(t *testing.T) {
	l, err := Parse("api.openai.com, *.openai.azure.com, 10.0.0.5, [fd00::1], localhost., *.internal")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		url, host string
		ok        bool
	}{
		// The SDK's default endpoint is always allowed.
		{"", "", true},
		{"https://api.openai.com/v1", "api.openai.com", true},
		{"https://API.OpenAI.COM/v1", "api.openai.com", true},
		{"https://api.openai.com./v1", "api.openai.com", true},
		{"https://api.openai.com:8443/v1", "api.openai.com", true}, // ports are not matched
		{"http://api.openai.com", "api.openai.com", true},          // nor schemes
		{"https://eu.api.openai.com/v1", "eu.api.openai.com", false},
		{"https://openai.com/v1", "openai.com", false},
		{"https://api.openai.com.evil.net/v1", "api.openai.com.evil.net", false},
		{"https://evilapi.openai.com/v1", "evilapi.openai.com", false},
		// *.suffix: any depth below, never the suffix itself nor a look-alike.
		{"https://west.openai.azure.com/", "west.openai.azure.com", true},
		{"https://a.b.openai.azure.com/", "a.b.openai.azure.com", true},
		{"https://openai.azure.com/", "openai.azure.com", false},
		{"https://evilopenai.azure.com/", "evilopenai.azure.com", false},
		{"https://openai.azure.com.evil.net/", "openai.azure.com.evil.net", false},
		{"http://vllm.ml.internal:8000/v1", "vllm.ml.internal", true},
		{"http://localhost:8000/v1", "localhost", true},
		// IP addresses by value, never by pattern.
		{"http://10.0.0.5:8000/v1", "10.0.0.5", true},
		{"http://[::ffff:10.0.0.5]:8000/v1", "10.0.0.5", true},
		{"http://[fd00:0:0::1]/v1", "fd00::1", true},
		{"http://10.0.0.6/v1", "10.0.0.6", false},
		{"http://[fe80::1%25eth0]/v1", "fe80::1%eth0", false},
		// What URL parsers disagree on, or read as an address, is never allowed.
		{"http://10.0.5/v1", "10.0.5", false},
		{"http://0x0a.0.0.5/v1", "0x0a.0.0.5", false},
		{"http://010.0.0.5/v1", "010.0.0.5", false},
		{"https://user:pw@api.openai.com/v1", "api.openai.com", false},
		{"https://api.openai.com@evil.net/v1", "evil.net", false},
		{"https://api.openai.com\\@evil.net/v1", "", false},
		{"https://b%C3%BCcher.example/", "", false},
		{"https://%ff.internal/", "", false},
		{"ftp://api.openai.com/", "api.openai.com", false},
		{"https:api.openai.com", "", false},
		{"https:///v1", "", false},
		{"https://a!b.internal/", "a!b.internal", false},
		{"not a url at all", "", false},
	}
	for _, c := range cases {
		host, ok := l.Check(c.url)
		if host != c.host || ok != c.ok {
			t.Errorf("Check(%q) = %q, %v; want %q, %v", c.url, host, ok, c.host, c.ok)
		}
		// The empty list allows everything, and names the same host.
		for _, empty := range []*AllowList{nil, {}} {
			if h, ok := empty.Check(c.url); !ok || h != c.host {
				t.Errorf("empty list: Check(%q) = %q, %v; want %q, true", c.url, h, ok, c.host)
			}
		}
	}
}

func TestHostOfNamesNoUserInfo(t *testing.T) {
	host, err := HostOf("https://alice:hunter2@api.openai.com/v1")
	if err == nil || strings.Contains(host+err.Error(), "hunter2") || strings.Contains(host, "alice") {
		t.Fatalf("HostOf = %q, %v; want an error that names neither user nor password", host, err)
	}
}

// FuzzCheck: whatever the list and the URL, parsing is stable, what a list allows is what Go's own
// URL parser would connect to and what an entry names, and the host reported is printable ASCII
// (it goes into error metadata).
func FuzzCheck(f *testing.F) {
	f.Add("api.openai.com,*.openai.azure.com", "https://west.openai.azure.com:443/v1")
	f.Add("10.0.0.5,[fd00::1]", "http://[::ffff:10.0.0.5]/")
	f.Add("example.com.", "https://EXAMPLE.com./")
	f.Add("*.example.com", "https://example.com/")
	f.Add("a.com", "https://a.com@b.com/")
	f.Add("a.com", "http://0x7f.1/")
	f.Add("", "https://%ff/")
	f.Fuzz(func(t *testing.T, spec, raw string) {
		l, err := Parse(spec)
		if err != nil {
			if strings.Contains(err.Error(), "\n") || !utf8.ValidString(err.Error()) {
				t.Fatalf("Parse error is not one valid line: %q", err)
			}
			return
		}
		again, err := Parse(l.String())
		if err != nil || again.String() != l.String() {
			t.Fatalf("Parse(%q).String() = %q re-parses to %q, %v", spec, l.String(), again.String(), err)
		}
		host, ok := l.Check(raw)
		for i := 0; i < len(host); i++ {
			if host[i] < 0x20 || host[i] >= 0x7f {
				t.Fatalf("Check(%q) host %q is not printable ASCII", raw, host)
			}
		}
		if !ok || l.Empty() || raw == "" {
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("Check(%q) allowed a URL Go cannot parse", raw)
		}
		if u.User != nil || (u.Scheme != "http" && u.Scheme != "https") {
			t.Fatalf("Check(%q) allowed user info or scheme %q", raw, u.Scheme)
		}
		want := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
		if a, err := netip.ParseAddr(want); err == nil {
			want = a.Unmap().String()
		}
		if host != want {
			t.Fatalf("Check(%q) judged host %q, Go would connect to %q", raw, host, want)
		}
		if !namedBy(l, host) {
			t.Fatalf("Check(%q) allowed %q, which no entry of %q names", raw, host, l)
		}
	})
}

// namedBy restates the match independently of allows: an entry equal to the host, or a *.suffix the
// host ends in below a dot.
func namedBy(l *AllowList, host string) bool {
	for _, e := range l.entries {
		if e == host {
			return true
		}
		if suffix, ok := strings.CutPrefix(e, "*"); ok && strings.HasSuffix(host, suffix) && len(host) > len(suffix) {
			return true
		}
	}
	return false
}
