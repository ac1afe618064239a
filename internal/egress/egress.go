// Package egress decides where a provider's base_url may send the prompts and credentials workers
// sign for it: the list of `serve --allowed-provider-hosts` (docs/CONTRACT.md §7.5). It is plain Go
// over strings, no gRPC and no SQL: AdminService refuses a base_url outside the list when it is
// written, and the decision rules (internal/resolve) refuse a stored one when it is resolved.
//
// The rules, one place for both:
//
//   - The list is comma-separated. An entry is a host name (api.openai.com), a suffix pattern
//     (*.openai.azure.com) or an IP address (10.0.0.5, [fd00::1] or fd00::1). No scheme, port, path,
//     user info, zone or white space inside an entry; white space around an entry is ignored. An
//     empty list allows every host.
//   - Names compare case-insensitively, and one trailing dot is ignored on both sides (example.com.
//     is example.com).
//   - `*.example.com` matches every name below example.com, at any depth (a.example.com,
//     a.b.example.com), and not example.com itself: list both to allow both. `*` is allowed only as
//     the whole first label; a bare `*` is refused (leave the list empty to allow everything).
//   - Names are ASCII: an internationalised name is written in its punycode form (xn--…), in the
//     list and in base_url alike. A base_url whose host is not ASCII is never allowed by a list, since
//     a worker's HTTP stack may map it to another name than this package would.
//   - The host is what is matched: any port of an allowed host is allowed, and so are http and https.
//   - IP addresses match IP addresses (by value: [::ffff:10.0.0.5] is 10.0.0.5), never patterns.
//   - A base_url host that is neither a well-formed name nor an IP address (a last label that is a
//     number, like 10.1 or example.0x10, which URL parsers read as an IPv4 address; user info; a
//     URL that does not parse) is not allowed by any list.
//   - An empty base_url (the SDK's default endpoint) is always allowed.
package egress

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// AllowList is a parsed --allowed-provider-hosts. The nil list, like an empty one, allows every
// host.
type AllowList struct {
	names    map[string]bool     // exact names, normalised
	suffixes []string            // "*.example.com" is kept as ".example.com"
	addrs    map[netip.Addr]bool // unmapped, without zone
	entries  []string            // the normalised entries, for String
}

// Parse reads a comma-separated list. An empty (or all-white-space) spec is the empty list. The
// error names the first malformed entry by position and says what is wrong with it, on one line.
func Parse(spec string) (*AllowList, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, nil
	}
	l := &AllowList{names: map[string]bool{}, addrs: map[netip.Addr]bool{}}
	seen := map[string]bool{}
	for i, raw := range strings.Split(spec, ",") {
		entry := strings.TrimSpace(raw)
		if entry == "" {
			return nil, fmt.Errorf("entry %d is empty (a stray comma?)", i+1)
		}
		norm, err := l.add(entry)
		if err != nil {
			return nil, fmt.Errorf("entry %d %q %w", i+1, quoteSafe(entry), err)
		}
		if !seen[norm] {
			seen[norm] = true
			l.entries = append(l.entries, norm)
		}
	}
	return l, nil
}

// add parses one entry into l and returns its normalised form; its errors read after the entry.
func (l *AllowList) add(entry string) (string, error) {
	switch {
	case !isASCII(entry):
		return "", errors.New("is not ASCII: write an internationalised name in its punycode form (xn--...)")
	case strings.ContainsAny(entry, " \t\r\n\v\f"):
		return "", errors.New("contains white space")
	case strings.Contains(entry, "://"):
		return "", errors.New("is a URL: give the host alone, like api.openai.com")
	case strings.Contains(entry, "@"):
		return "", errors.New("has user info: give the host alone, like api.openai.com")
	case strings.ContainsAny(entry, "/?#\\"):
		return "", errors.New("has a path: give the host alone, like api.openai.com")
	case entry == "*" || entry == "*.":
		return "", errors.New("is a bare *: leave the list empty to allow every host")
	case strings.Contains(entry, "%"):
		return "", errors.New("has a zone or an escape: give a plain host name or IP address")
	}
	if addr, ok, err := entryAddr(entry); ok || err != nil {
		if err != nil {
			return "", err
		}
		l.addrs[addr] = true
		return addr.String(), nil
	}
	if strings.Contains(entry, ":") {
		return "", errors.New("has a port: the list matches hosts, and every port of an allowed host is allowed")
	}
	name := strings.ToLower(entry)
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		if strings.Contains(rest, "*") {
			return "", errors.New("has a * that is not the whole first label (write *.example.com)")
		}
		rest, err := normName(rest)
		if err != nil {
			return "", err
		}
		if isIPv4(rest) {
			return "", errors.New("is a pattern over an IP address: list addresses one by one")
		}
		l.suffixes = append(l.suffixes, "."+rest)
		return "*." + rest, nil
	}
	if strings.Contains(name, "*") {
		return "", errors.New("has a * that is not the whole first label (write *.example.com)")
	}
	name, err := normName(name)
	if err != nil {
		return "", err
	}
	if a, err := netip.ParseAddr(name); err == nil { // an IPv4 address with a trailing dot
		l.addrs[a] = true
		return a.String(), nil
	}
	l.names[name] = true
	return name, nil
}

// entryAddr reads an entry that is an IP address: bracketed, bare IPv6 (two colons or more) or
// IPv4. ok is false when the entry is not meant as one.
func entryAddr(entry string) (addr netip.Addr, ok bool, err error) {
	inner, bracketed := strings.CutPrefix(entry, "[")
	if bracketed {
		inner, bracketed = strings.CutSuffix(inner, "]")
		if !bracketed {
			return netip.Addr{}, false, errors.New("is not an IP address in brackets (a port after ]? the list matches hosts, every port is allowed)")
		}
	} else if strings.Count(entry, ":") < 2 {
		if a, perr := netip.ParseAddr(entry); perr == nil && a.Is4() {
			return a, true, nil
		}
		return netip.Addr{}, false, nil
	}
	a, perr := netip.ParseAddr(inner)
	if perr != nil {
		return netip.Addr{}, false, errors.New("is not an IP address")
	}
	return a.Unmap(), true, nil
}

// Empty reports whether l allows every host: nil, or no entries.
func (l *AllowList) Empty() bool { return l == nil || len(l.entries) == 0 }

// String is the normalised list, comma-separated ("" for the empty list).
func (l *AllowList) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(l.entries, ",")
}

// Check reports whether base_url may be used under l, and the host it was judged by (normalised;
// empty when base_url is empty or names no readable host). It never returns user info or other
// parts of base_url.
func (l *AllowList) Check(baseURL string) (host string, ok bool) {
	if baseURL == "" {
		return "", true
	}
	host, err := HostOf(baseURL)
	if l.Empty() {
		return host, true
	}
	if err != nil {
		return host, false
	}
	return host, l.allows(host)
}

// allows matches a host HostOf returned without error.
func (l *AllowList) allows(host string) bool {
	if a, err := netip.ParseAddr(host); err == nil {
		return l.addrs[a.Unmap()]
	}
	if l.names[host] {
		return true
	}
	for _, s := range l.suffixes {
		if strings.HasSuffix(host, s) {
			return true
		}
	}
	return false
}

// HostOf returns the host a base_url sends requests to, normalised as the list is (lower case, no
// trailing dot, IP addresses in their canonical form), or an error saying why it cannot be judged.
// With the error, host is still what the URL names when that is printable ASCII, else "".
func HostOf(baseURL string) (host string, err error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return "", errors.New("does not parse as a URL")
	}
	h := u.Hostname()
	if isASCII(h) {
		host = strings.ToLower(h)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return host, errors.New("is not an http(s) URL")
	case u.Opaque != "" || h == "":
		return host, errors.New("names no host")
	case u.User != nil:
		return host, errors.New("carries user info")
	case !isASCII(h):
		return "", errors.New("has a host that is not ASCII: write it in its punycode form (xn--...)")
	}
	if a, perr := netip.ParseAddr(h); perr == nil {
		return a.Unmap().String(), nil
	}
	if strings.HasPrefix(u.Host, "[") {
		return host, errors.New("has a bracketed host that is not an IP address")
	}
	n, err := normName(host)
	if err != nil {
		return host, errors.New("has a host that " + err.Error())
	}
	return n, nil
}

const (
	maxNameLen  = 253
	maxLabelLen = 63
)

// normName checks a lower-case host name (letters, digits, '-' and '_' in labels of 1 to 63
// characters, at most 253 in all, one trailing dot allowed and dropped) and returns it without the
// trailing dot. A name whose last label is a number (all digits, or 0x and hex digits) is refused:
// URL parsers read such a host as an IPv4 address (10.1 is 10.0.0.1, 0x7f.1 is 127.0.0.1).
func normName(name string) (string, error) {
	if name == "" {
		return "", errors.New("is not a host name")
	}
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name) > maxNameLen {
		return "", fmt.Errorf("is not a host name of 1 to %d characters", maxNameLen)
	}
	labels := strings.Split(name, ".")
	for _, label := range labels {
		if label == "" || len(label) > maxLabelLen {
			return "", fmt.Errorf("is not a host name: every label between dots must be 1 to %d characters", maxLabelLen)
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("is not a host name: %q is not a letter, digit, '-' or '_'", c)
			}
		}
	}
	if last := labels[len(labels)-1]; numeric(last) && !isIPv4(name) {
		return "", errors.New("is not a host name or a full IPv4 address: its last label is a number")
	}
	return name, nil
}

// numeric reports a label a URL parser would read as a number: decimal digits, or 0x and hex
// digits.
func numeric(label string) bool {
	if rest, ok := strings.CutPrefix(label, "0x"); ok {
		return strings.Trim(rest, "0123456789abcdef") == ""
	}
	return strings.Trim(label, "0123456789") == ""
}

func isIPv4(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is4()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// quoteSafe is an entry as an error may show it: printable ASCII only, at most 100 bytes.
func quoteSafe(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < 100; i++ {
		if c := s[i]; c >= 0x20 && c < 0x7f {
			b.WriteByte(c)
		} else {
			b.WriteByte('?')
		}
	}
	return b.String()
}
