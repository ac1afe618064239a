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
