package service

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/resolve"
	"github.com/resolverd/resolverd/pkg/secret"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// Limits of admin input. MaxAPIKeyBytes is docs/CONTRACT.md §3's 10 KiB.
const (
	MaxAPIKeyBytes  = 10 * 1024
	maxNameLen      = 63
	maxTextLen      = 200
	maxURLLen       = 2048
	maxOptionsBytes = 64 * 1024
)

var providerNameRE = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// violations collects every problem of a request, so the caller learns them all at once.
type violations []errs.FieldViolation

func (v *violations) add(field, format string, args ...any) {
	*v = append(*v, errs.FieldViolation{Field: field, Description: fmt.Sprintf(format, args...)})
}

// err is nil when there is nothing to report.
func (v violations) err() error {
	if len(v) == 0 {
		return nil
	}
	return errs.Invalid(v...)
}

// id parses a required UUID field.
func (v *violations) id(field, s string) uuid.UUID {
	if s == "" {
		v.add(field, "is required")
		return uuid.Nil
	}
	return v.optionalID(field, s)
}

// optionalID parses a UUID field that may be empty (uuid.Nil).
func (v *violations) optionalID(field, s string) uuid.UUID {
	if s == "" {
		return uuid.Nil
	}
	id, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		v.add(field, "must be a UUID like 123e4567-e89b-12d3-a456-426614174000")
		return uuid.Nil
	}
	if id == uuid.Nil {
		v.add(field, "must not be the nil UUID")
	}
	return id
}

func (v *violations) providerType(field, t string) {
	if !slices.Contains(resolve.ProviderTypes, t) {
		v.add(field, "must be one of %s", strings.Join(resolve.ProviderTypes, ", "))
	}
}

func (v *violations) providerName(field, n string) {
	if len(n) > maxNameLen || !providerNameRE.MatchString(n) {
		v.add(field, "must be 1 to %d lowercase letters, digits and single dashes between them (like openai-eu)", maxNameLen)
	}
}

// text checks a free-text field: printable, at most maxTextLen characters, on one line (no control
// characters, nor the line and paragraph separators U+2028/U+2029, which break lines as \n does);
// required says whether it may be empty.
func (v *violations) text(field, s string, required bool) {
	switch {
	case required && strings.TrimSpace(s) == "":
		v.add(field, "is required")
	case !utf8.ValidString(s):
		v.add(field, "must be valid UTF-8")
	case utf8.RuneCountInString(s) > maxTextLen:
		v.add(field, "must be at most %d characters", maxTextLen)
	case strings.IndexFunc(s, func(r rune) bool { return invisible(r) || unicode.In(r, unicode.Zl, unicode.Zp) }) >= 0:
		v.add(field, "must not contain control or invisible formatting characters or line breaks")
	case s != strings.TrimSpace(s):
		v.add(field, "must not start or end with white space")
	}
}

func (v *violations) baseURL(field, s string) {
	if s == "" {
		return
	}
	u, err := url.Parse(s)
	switch {
	case len(s) > maxURLLen:
		v.add(field, "must be at most %d characters", maxURLLen)
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" ||
		strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || invisible(r) }) >= 0:
		v.add(field, "must be empty (the SDK's default) or an absolute http(s) URL such as https://api.example.com/v1")
	case u.User != nil:
		v.add(field, "must not carry credentials; add them as a provider key")
	case strings.ContainsAny(s, "?#"):
		// Even an empty one: an SDK appends paths, and ".../v1?/chat/completions" is no endpoint.
		v.add(field, "must not have a query or fragment")
	case u.Port() != "" && !validPort(u.Port()):
		v.add(field, "has a port outside 1-65535")
	}
}

func (v *violations) byokPolicy(field string, p resolverv1.ByokPolicy) resolve.BYOKPolicy {
	switch p {
	case resolverv1.ByokPolicy_BYOK_POLICY_UNSPECIFIED, resolverv1.ByokPolicy_BYOK_POLICY_DISABLED:
		return resolve.BYOKDisabled
	case resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL:
		return resolve.BYOKOptional
	case resolverv1.ByokPolicy_BYOK_POLICY_REQUIRED:
		return resolve.BYOKRequired
	}
	v.add(field, "must be BYOK_POLICY_DISABLED, BYOK_POLICY_OPTIONAL or BYOK_POLICY_REQUIRED")
	return ""
}

// apiKey trims and checks a secret. Descriptions never quote the value.
func (v *violations) apiKey(field, raw string) secret.String {
	k := strings.TrimSpace(raw)
	switch {
	case k == "":
		v.add(field, "is required")
	case len(k) > MaxAPIKeyBytes:
		v.add(field, "must be at most %d bytes (10 KiB); got %d", MaxAPIKeyBytes, len(k))
	case !utf8.ValidString(k) || strings.IndexFunc(k, func(r rune) bool { return invisible(r) || unicode.In(r, unicode.Zl, unicode.Zp) }) >= 0:
		v.add(field, "must be printable text without control characters or line breaks")
	default:
		return secret.New(k)
	}
	return secret.String{}
}

func (v *violations) contextLimit(field string, n int32) {
	if n <= 0 {
		v.add(field, "must be greater than 0")
	}
}

func (v *violations) compressionThreshold(field string, n int32) {
	if n < 0 || n > 100 {
		v.add(field, "must be between 0 and 100")
	}
}

// options turns a Struct into the JSON object stored in chat_model_configs.options.
func (v *violations) options(field string, s *structpb.Struct) []byte {
	if s == nil {
		return []byte("{}")
	}
	if hasNUL(structpb.NewStructValue(s)) {
		// PostgreSQL's jsonb cannot hold U+0000.
		v.add(field, "must not contain the NUL character (U+0000)")
		return nil
	}
	b, err := protojson.Marshal(s)
	if err != nil {
		// A Struct is an object already: what JSON cannot hold is one of its values.
		v.add(field, "must hold only JSON values: no NaN or Infinity, and every value set")
		return nil
	}
	if len(b) > maxOptionsBytes {
		v.add(field, "must be at most %d bytes of JSON", maxOptionsBytes)
	}
	return b
}

func purposeOf(v *violations, p resolverv1.Purpose) resolve.Purpose {
	switch p {
	case resolverv1.Purpose_PURPOSE_CHAT:
		return resolve.PurposeChat
	case resolverv1.Purpose_PURPOSE_SUBAGENT:
		return resolve.PurposeSubagent
	case resolverv1.Purpose_PURPOSE_PERSONAL_OVERRIDE:
		return resolve.PurposePersonalOverride
	case resolverv1.Purpose_PURPOSE_TITLE:
		return resolve.PurposeTitle
	case resolverv1.Purpose_PURPOSE_COMPACTION:
		return resolve.PurposeCompaction
	}
	v.add("purpose", "must be one of PURPOSE_CHAT, PURPOSE_SUBAGENT, PURPOSE_PERSONAL_OVERRIDE, PURPOSE_TITLE, PURPOSE_COMPACTION")
	return resolve.PurposeUnspecified
}

// invisible reports control characters and invisible formatting characters (U+200B, U+202E, ...):
// names that look alike but differ, or text that reorders itself, have no place in identifiers
// and display names.
func invisible(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535 && strconv.Itoa(n) == p
}

// hasNUL reports a U+0000 anywhere in a value's keys or strings.
func hasNUL(v *structpb.Value) bool {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return strings.ContainsRune(k.StringValue, 0)
	case *structpb.Value_StructValue:
		for key, f := range k.StructValue.GetFields() {
			if strings.ContainsRune(key, 0) || hasNUL(f) {
				return true
			}
		}
	case *structpb.Value_ListValue:
		for _, e := range k.ListValue.GetValues() {
			if hasNUL(e) {
				return true
			}
		}
	}
	return false
}
