package identity

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxSubjectBytes bounds a subject. SPIFFE IDs may be up to 2048 bytes but are far shorter in
// practice; Kubernetes' system:serviceaccount:NAMESPACE:NAME is at most 339 bytes; a JWT sub is
// commonly at most 255 (OpenID Connect's advice).
const MaxSubjectBytes = 1024

// CheckSubject says what is wrong with s as a workload identity's subject, "" when nothing: it
// must be 1 to MaxSubjectBytes bytes of UTF-8 without control or invisible formatting characters
// and without surrounding white space (docs/CONTRACT.md §3.1). The database holds the same rule
// (migration 13), and a credential naming a subject that breaks it is refused before any lookup.
func CheckSubject(s string) string {
	switch {
	case s == "":
		return "is required"
	case len(s) > MaxSubjectBytes:
		return fmt.Sprintf("must be at most %d bytes", MaxSubjectBytes)
	case !utf8.ValidString(s):
		return "must be valid UTF-8"
	case strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) >= 0:
		return "must not contain control or invisible formatting characters"
	case s != strings.TrimSpace(s):
		return "must not start or end with white space"
	}
	return ""
}

// Subjects that only a client certificate proves: a SPIFFE ID (its URI SAN) and "cn:" followed by
// its common name (CertificateSubject). No other credential may claim one, nor may a certificate
// claim anything else, so that an authority trusted for one kind of credential can never speak for
// an identity bound for the other (docs/CONTRACT.md §3.1): the JWT issuer cannot mint a token
// whose sub is a certificate's SPIFFE ID, and the client CA cannot issue a certificate whose URI
// SAN is a JWT's sub.
const (
	spiffePrefix = "spiffe://"
	cnPrefix     = "cn:"
)

// CertificateOnly reports whether subject is of the kind only a client certificate proves. The
// prefixes are compared without regard to case: a URI's scheme is case-insensitive.
func CertificateOnly(subject string) bool {
	return hasFoldPrefix(subject, spiffePrefix) || hasFoldPrefix(subject, cnPrefix)
}

func hasFoldPrefix(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
