package service

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/transport"
	"github.com/resolverd/resolverd/pkg/secret"
)

// ---------------------------------------------------------------------------------------------
// Checks shared by the request targets.

// fieldsOf lists the fields the validators refused, sorted.
func fieldsOf(v violations) []string {
	out := make([]string, len(v))
	for i, fv := range v {
		out[i] = fv.Field
	}
	slices.Sort(out)
	return out
}

// checkOutcome checks a handler's error. want are the fields the validators refuse (from
// fieldsOf). When want is empty the request must have passed validation and reached the store
// exactly once with method; otherwise it must be INVALID_ARGUMENT naming exactly want, with an
// ErrorInfo and a BadRequest detail, each violation naming a field of req, and the store
// untouched. It returns the store call of an accepted request.
func checkOutcome(t *testing.T, req proto.Message, err error, want []string, q *fakeQuerier, method string) storeCall {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || err == nil {
		t.Fatalf("the handler answered %v, not a status error", err)
	}
	if len(want) == 0 {
		if st.Code() != codes.NotFound || st.Message() != errFakeStore.Message {
			t.Fatalf("a valid request was refused: %v", err)
		}
		if len(q.calls) != 1 || q.calls[0].method != method {
			t.Fatalf("a valid request made store calls %v, want one %s", q.calls, method)
		}
		return q.calls[0]
	}
	if len(q.calls) != 0 {
		t.Fatalf("an invalid request (violations of %v) reached the store: %s", want, q.calls[0].method)
	}
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("an invalid request (violations of %v) answered %v, want InvalidArgument", want, err)
	}
	var (
		info *errdetails.ErrorInfo
		br   *errdetails.BadRequest
	)
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			info = d
		case *errdetails.BadRequest:
			br = d
		case error:
			t.Fatalf("undecodable status detail: %v", d)
		}
	}
	if info == nil || br == nil {
		t.Fatalf("INVALID_ARGUMENT without ErrorInfo and BadRequest details: %v", st.Details())
	}
	if info.GetReason() != string(errs.InvalidArgument) || info.GetDomain() != transport.Domain {
		t.Fatalf("ErrorInfo %v, want reason INVALID_ARGUMENT in domain %s", info, transport.Domain)
	}
	fv := br.GetFieldViolations()
	if len(fv) == 0 {
		t.Fatal("BadRequest without field violations")
	}
	if info.GetMetadata()["field"] != fv[0].GetField() {
		t.Fatalf("ErrorInfo metadata field %q, want the first violation's %q", info.GetMetadata()["field"], fv[0].GetField())
	}
	fields := req.ProtoReflect().Descriptor().Fields()
	got := make([]string, len(fv))
	parts := make([]string, len(fv))
	for i, v := range fv {
		got[i] = v.GetField()
		parts[i] = v.GetField() + ": " + v.GetDescription()
		if fields.ByName(protoreflect.Name(v.GetField())) == nil {
			t.Fatalf("violation names %q, which is not a field of %s", v.GetField(), req.ProtoReflect().Descriptor().FullName())
		}
		if v.GetDescription() == "" || !utf8.ValidString(v.GetDescription()) {
			t.Fatalf("violation of %s has description %q", v.GetField(), v.GetDescription())
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("the handler refused fields %v, its validators refuse %v", got, want)
	}
	if msg := "invalid request: " + strings.Join(parts, "; "); st.Message() != msg {
		t.Fatalf("message %q, want %q (the violations and nothing else)", st.Message(), msg)
	}
	return storeCall{}
}

// checkKeyNotShown: no description of a violation of field quotes the key (raw or trimmed), when
// the key is long enough (8 bytes) that a match is not chance.
func checkKeyNotShown(t *testing.T, err error, field, raw string) {
	t.Helper()
	st, _ := status.FromError(err)
	for _, k := range []string{raw, strings.TrimSpace(raw)} {
		if len(k) < 8 {
			continue
		}
		for _, d := range st.Details() {
			switch d := d.(type) {
			case *errdetails.BadRequest:
				for _, v := range d.GetFieldViolations() {
					if v.GetField() == field && strings.Contains(v.GetDescription(), k) {
						t.Fatalf("the %s violation quotes the key: %q", field, v.GetDescription())
					}
				}
			case *errdetails.ErrorInfo:
				for mk, mv := range d.GetMetadata() {
					if strings.Contains(mv, k) {
						t.Fatalf("ErrorInfo metadata %s quotes the key: %q", mk, mv)
					}
				}
			}
		}
	}
}

// checkAcceptedUUID: an accepted, non-empty UUID field is the canonical 36-character form (either
// case) of a non-nil UUID, and got is that UUID.
func checkAcceptedUUID(t *testing.T, field, s string, got uuid.UUID) {
	t.Helper()
	if len(s) != 36 {
		t.Fatalf("%s: accepted %q, which is %d characters, not 36", field, s, len(s))
	}
	p, err := uuid.Parse(s)
	if err != nil || p != got {
		t.Fatalf("%s: accepted %q as %v; uuid.Parse gives %v, %v", field, s, got, p, err)
	}
	if got.String() != strings.ToLower(s) {
		t.Fatalf("%s: accepted %q, which does not round-trip (%q)", field, s, got.String())
	}
	if got == uuid.Nil {
		t.Fatalf("%s: accepted the nil UUID", field)
	}
}

// checkStoredID: the id the store got for field is the validator's, and a non-empty accepted one
// round-trips.
func checkStoredID(t *testing.T, field, s string, want, got uuid.UUID) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: the store got %v, the validator parsed %q as %v", field, got, s, want)
	}
	if s == "" {
		if got != uuid.Nil {
			t.Fatalf("%s: empty, but the store got %v", field, got)
		}
		return
	}
	checkAcceptedUUID(t, field, s, got)
}

// checkNewID: ids the service mints are version 7.
func checkNewID(t *testing.T, id uuid.UUID) {
	t.Helper()
	if id == uuid.Nil || id.Version() != 7 {
		t.Fatalf("the new row's id %v is not a UUIDv7", id)
	}
}

// checkAcceptedKey: an accepted key is what the store got: trimmed, non-empty, at most 10 KiB,
// valid UTF-8 without control characters.
func checkAcceptedKey(t *testing.T, raw string, got secret.String) {
	t.Helper()
	k := got.Reveal()
	if k != strings.TrimSpace(raw) {
		t.Fatalf("the store got key %q for api_key %q, want it trimmed", k, raw)
	}
	if problem := apiKeyProblem(raw); problem != "" {
		t.Fatalf("accepted api_key %q, which %s", raw, problem)
	}
	if fmt.Sprint(got) != secret.Redacted {
		t.Fatalf("the accepted key prints as %q", fmt.Sprint(got))
	}
}

func boolPtr(b bool) *bool { return &b }

func strPtrIf(set bool, s string) *string {
	if !set {
		return nil
	}
	return &s
}

func int32PtrIf(set bool, n int32) *int32 {
	if !set {
		return nil
	}
	return &n
}

// ---------------------------------------------------------------------------------------------
// Independent oracles: the properties of docs/CONTRACT.md §1 and §3, written without the validators.

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// uuidOK: the canonical hyphenated form, either case, not the nil UUID.
func uuidOK(s string) bool { return uuidRE.MatchString(s) && s != nilUUID }

// specNameRE is docs/CONTRACT.md §1's pattern of provider names.
var specNameRE = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// nameOK: docs/CONTRACT.md §1's ^[a-z0-9]+(-[a-z0-9]+)*$, at most 63 bytes, checked by hand.
func nameOK(n string) bool {
	if n == "" || len(n) > maxNameLen {
		return false
	}
	for _, part := range strings.Split(n, "-") {
		if part == "" {
			return false
		}
		for i := 0; i < len(part); i++ {
			if c := part[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
				return false
			}
		}
	}
	return true
}

// baseURLProblem says why s is not an acceptable base_url ("" when it is): empty (the SDK
// default), or at most 2048 characters of an absolute http(s) URL with a host name, no user
// info, no query and no fragment (not even an empty "?" or "#": a base URL is a prefix the SDK
// appends paths to), no white space or invisible formatting characters, and a port, if any, in
// 1..65535 written without leading zeros.
func baseURLProblem(s string) string {
	if s == "" {
		return ""
	}
	if len(s) > maxURLLen {
		return "is longer than 2048"
	}
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) >= 0 {
		return "has white space, a control or an invisible formatting character"
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "does not parse: " + err.Error()
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("has scheme %q", u.Scheme)
	case u.Hostname() == "":
		return fmt.Sprintf("has no host name (host %q)", u.Host)
	case u.User != nil:
		return "has user info"
	case strings.ContainsAny(s, "?#"):
		return fmt.Sprintf("has a query or fragment (query %q, fragment %q)", u.RawQuery, u.Fragment)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != p {
			return fmt.Sprintf("has port %q", p)
		}
	}
	return ""
}

// apiKeyProblem says why raw is not an acceptable api_key ("" when it is), by docs/CONTRACT.md §3: it is
// trimmed, then must be non-empty, at most 10 KiB, valid UTF-8 without control characters,
// invisible formatting characters or line and paragraph separators (it goes into HTTP headers).
func apiKeyProblem(raw string) string {
	k := strings.TrimSpace(raw)
	switch {
	case k == "":
		return "is blank"
	case len(k) > 10240:
		return fmt.Sprintf("is %d bytes trimmed, more than 10 KiB", len(k))
	case !utf8.ValidString(k):
		return "is not valid UTF-8"
	case strings.IndexFunc(k, func(r rune) bool {
		return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.In(r, unicode.Zl, unicode.Zp)
	}) >= 0:
		return "has a control, invisible or line-separating character"
	}
	return ""
}

// textProblem says why s is not an acceptable free-text field ("" when it is).
func textProblem(s string, required bool) string {
	switch {
	case required && strings.TrimSpace(s) == "":
		return "is blank"
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	case utf8.RuneCountInString(s) > 200:
		return "has more than 200 characters"
	case strings.IndexFunc(s, func(r rune) bool {
		return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.In(r, unicode.Zl, unicode.Zp)
	}) >= 0:
		return "has a control or invisible formatting character or a line break"
	case s != strings.TrimSpace(s):
		return "starts or ends with white space"
	}
	return ""
}

// specProviderTypes is docs/CONTRACT.md §1's list of provider types.
var specProviderTypes = []string{"anthropic", "azure", "bedrock", "google", "openai", "openai-compat", "openrouter", "vercel"}

// ---------------------------------------------------------------------------------------------
// Options: fuzzed Structs and what an accepted one must be.

// fuzzStruct builds an options Struct from fuzzed parts: mode 0 is no options at all, 1 an empty
// object, 2 a string and a number, 3 adds nesting, a list and pad bytes of padding (up to 64 KiB
// and past it).
func fuzzStruct(mode uint8, key, str string, num float64, pad uint16) *structpb.Struct {
	switch mode % 4 {
	case 0:
		return nil
	case 1:
		return &structpb.Struct{}
	}
	fields := map[string]*structpb.Value{key: structpb.NewStringValue(str), "n": structpb.NewNumberValue(num)}
	if mode%4 == 3 {
		list := &structpb.ListValue{Values: []*structpb.Value{structpb.NewBoolValue(true), structpb.NewNullValue(), structpb.NewStringValue(key)}}
		fields["nested"] = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{str: structpb.NewListValue(list)}})
		fields["pad"] = structpb.NewStringValue(strings.Repeat("x", int(pad)))
	}
	return &structpb.Struct{Fields: fields}
}

// structStrings lists every key and string value of s, recursively.
func structStrings(s *structpb.Struct) []string {
	var out []string
	var walk func(*structpb.Value)
	walk = func(v *structpb.Value) {
		switch k := v.GetKind().(type) {
		case *structpb.Value_StringValue:
			out = append(out, k.StringValue)
		case *structpb.Value_StructValue:
			for key, fv := range k.StructValue.GetFields() {
				out = append(out, key)
				walk(fv)
			}
		case *structpb.Value_ListValue:
			for _, lv := range k.ListValue.GetValues() {
				walk(lv)
			}
		}
	}
	walk(structpb.NewStructValue(s))
	return out
}

// structNumbersFinite: JSON has no NaN or infinities.
func structNumbersFinite(s *structpb.Struct) bool {
	ok := true
	var walk func(*structpb.Value)
	walk = func(v *structpb.Value) {
		switch k := v.GetKind().(type) {
		case *structpb.Value_NumberValue:
			if math.IsNaN(k.NumberValue) || math.IsInf(k.NumberValue, 0) {
				ok = false
			}
		case *structpb.Value_StructValue:
			for _, fv := range k.StructValue.GetFields() {
				walk(fv)
			}
		case *structpb.Value_ListValue:
			for _, lv := range k.ListValue.GetValues() {
				walk(lv)
			}
		}
	}
	walk(structpb.NewStructValue(s))
	return ok
}

// checkOptionsJSON: b is a JSON object that reads back as s (an empty object for nil).
func checkOptionsJSON(t *testing.T, b []byte, s *structpb.Struct) {
	t.Helper()
	if !json.Valid(b) || !strings.HasPrefix(strings.TrimSpace(string(b)), "{") {
		t.Fatalf("options %q is not a JSON object", b)
	}
	back := &structpb.Struct{}
	if err := protojson.Unmarshal(b, back); err != nil {
		t.Fatalf("options %q do not read back: %v", b, err)
	}
	if s == nil {
		s = &structpb.Struct{}
	}
	if !proto.Equal(back, s) {
		t.Fatalf("options %q read back as %v, want %v", b, back, s)
	}
}
