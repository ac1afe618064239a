package service

// Fuzz targets for every request validator and for the audit page token, run without a database.
//
// Two layers:
//   - FuzzValidate* call one validator of validate.go directly and check it against the property it
//     must have (SPEC sections 1, 3 and 4), both ways where the property decides acceptance: a value
//     the property refuses must be refused, and one it accepts must be accepted. FuzzPageToken does
//     the same for parsePageToken and pageTokens.issue.
//   - Fuzz*Request call the real handler (Admin or Resolver) on a dbauthz.Store over fakeQuerier, a
//     store that records the call and fails it, so nothing here needs PostgreSQL. They check the
//     wiring: the handler refuses with INVALID_ARGUMENT exactly the fields whose validator refuses
//     (each violation naming a field of the request message, with ErrorInfo and BadRequest details),
//     never reaches the store when it refuses, and otherwise reaches it once with the validated
//     values (ids that round-trip, the trimmed key, the parsed filter...).
//
// The package's TestMain (main_test.go, package service_test) starts PostgreSQL for every test
// binary, fuzz workers included; these targets do not use it.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
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

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/dbauthz"
	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/resolve"
	"github.com/resolverd/resolverd/pkg/secret"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// ---------------------------------------------------------------------------------------------
// Seeds shared by the targets.

const (
	seedUUID      = "123e4567-e89b-12d3-a456-426614174000"
	seedUUIDUpper = "123E4567-E89B-12D3-A456-426614174000"
	seedUUID2     = "0190a4c2-7b1e-7c3d-9f00-1a2b3c4d5e6f"
	nilUUID       = "00000000-0000-0000-0000-000000000000"
	maxUUID       = "ffffffff-ffff-ffff-ffff-ffffffffffff"
)

// uuidSeeds are the id shapes worth starting from: valid, upper case, nil, the other forms
// uuid.Parse knows (URN, braces, 32 hex digits), one character off, empty.
var uuidSeeds = []string{
	seedUUID, seedUUIDUpper, seedUUID2, nilUUID, maxUUID, "",
	"urn:uuid:" + seedUUID, "{" + seedUUID + "}", strings.ReplaceAll(seedUUID, "-", ""),
	seedUUID[:35], seedUUID + "0", "123e4567-e89b-12d3-a456-42661417400g", "123e4567+e89b-12d3-a456-426614174000",
	" " + seedUUID[1:], "not-a-uuid",
}

// ---------------------------------------------------------------------------------------------
// The fake store and the handlers over it.

// errFakeStore is what every fakeQuerier method answers, once it has recorded the call: a request
// that reaches it passed validation.
var errFakeStore = errs.New(errs.NotFound, "fake store: the request passed validation")

type storeCall struct {
	method string
	args   []any
}

// fakeQuerier implements dbauthz.Querier without a database: it records each call and fails it.
// The Update* methods run the handler's mutate on a zero row and record the row.
type fakeQuerier struct{ calls []storeCall }

var _ dbauthz.Querier = (*fakeQuerier)(nil)

func (q *fakeQuerier) rec(method string, args ...any) {
	q.calls = append(q.calls, storeCall{method: method, args: args})
}

func (q *fakeQuerier) ResolutionSnapshot(_ context.Context, chatID, requestedConfigID uuid.UUID, prefetch db.Prefetch) (*resolve.Snapshot, error) {
	q.rec("ResolutionSnapshot", chatID, requestedConfigID, prefetch)
	return nil, errFakeStore
}

func (q *fakeQuerier) UserKey(_ context.Context, userID, providerID uuid.UUID) (*resolve.Key, error) {
	q.rec("UserKey", userID, providerID)
	return nil, errFakeStore
}

func (q *fakeQuerier) OldestEnabledCentralKey(_ context.Context, providerID uuid.UUID) (*resolve.Key, error) {
	q.rec("OldestEnabledCentralKey", providerID)
	return nil, errFakeStore
}

func (q *fakeQuerier) CreateProvider(_ context.Context, p resolve.Provider) (db.Provider, error) {
	q.rec("CreateProvider", p)
	return db.Provider{}, errFakeStore
}

func (q *fakeQuerier) UpdateProvider(_ context.Context, id uuid.UUID, mutate func(*db.Provider) error) (db.Provider, error) {
	var p db.Provider
	if err := mutate(&p); err != nil {
		return db.Provider{}, err
	}
	q.rec("UpdateProvider", id, p)
	return db.Provider{}, errFakeStore
}

func (q *fakeQuerier) DeleteProvider(_ context.Context, id uuid.UUID) error {
	q.rec("DeleteProvider", id)
	return errFakeStore
}

func (q *fakeQuerier) GetProvider(_ context.Context, id uuid.UUID) (db.Provider, error) {
	q.rec("GetProvider", id)
	return db.Provider{}, errFakeStore
}

func (q *fakeQuerier) ListProviders(_ context.Context, p db.Page[db.ProviderPos]) ([]db.Provider, error) {
	q.rec("ListProviders", p)
	return nil, errFakeStore
}

func (q *fakeQuerier) AddProviderKey(_ context.Context, id, providerID uuid.UUID, key secret.String, enabled bool) (db.ProviderKey, error) {
	q.rec("AddProviderKey", id, providerID, key, enabled)
	return db.ProviderKey{}, errFakeStore
}

func (q *fakeQuerier) RotateProviderKey(_ context.Context, id, providerID uuid.UUID, key secret.String) (db.ProviderKey, error) {
	q.rec("RotateProviderKey", id, providerID, key)
	return db.ProviderKey{}, errFakeStore
}

func (q *fakeQuerier) SetProviderKeyEnabled(_ context.Context, id uuid.UUID, enabled bool) (db.ProviderKey, error) {
	q.rec("SetProviderKeyEnabled", id, enabled)
	return db.ProviderKey{}, errFakeStore
}

func (q *fakeQuerier) DeleteProviderKey(_ context.Context, id uuid.UUID) error {
	q.rec("DeleteProviderKey", id)
	return errFakeStore
}

func (q *fakeQuerier) ListProviderKeys(_ context.Context, providerID uuid.UUID, p db.Page[db.ProviderKeyPos]) ([]db.ProviderKey, error) {
	q.rec("ListProviderKeys", providerID, p)
	return nil, errFakeStore
}

func (q *fakeQuerier) CreateModelConfig(_ context.Context, c resolve.ModelConfig) (db.ModelConfig, error) {
	q.rec("CreateModelConfig", c)
	return db.ModelConfig{}, errFakeStore
}

func (q *fakeQuerier) UpdateModelConfig(_ context.Context, id uuid.UUID, mutate func(*db.ModelConfig) error) (db.ModelConfig, error) {
	var c db.ModelConfig
	if err := mutate(&c); err != nil {
		return db.ModelConfig{}, err
	}
	q.rec("UpdateModelConfig", id, c)
	return db.ModelConfig{}, errFakeStore
}

func (q *fakeQuerier) DeleteModelConfig(_ context.Context, id uuid.UUID) error {
	q.rec("DeleteModelConfig", id)
	return errFakeStore
}

func (q *fakeQuerier) GetModelConfig(_ context.Context, id uuid.UUID) (db.ModelConfig, error) {
	q.rec("GetModelConfig", id)
	return db.ModelConfig{}, errFakeStore
}

func (q *fakeQuerier) ListModelConfigs(_ context.Context, p db.Page[db.ModelConfigPos]) ([]db.ModelConfig, error) {
	q.rec("ListModelConfigs", p)
	return nil, errFakeStore
}

func (q *fakeQuerier) PutUser(_ context.Context, id uuid.UUID, username string) (db.User, error) {
	q.rec("PutUser", id, username)
	return db.User{}, errFakeStore
}

func (q *fakeQuerier) DeleteUser(_ context.Context, id uuid.UUID) error {
	q.rec("DeleteUser", id)
	return errFakeStore
}

func (q *fakeQuerier) GetUser(_ context.Context, id uuid.UUID) (db.User, error) {
	q.rec("GetUser", id)
	return db.User{}, errFakeStore
}

func (q *fakeQuerier) PutUserProviderKey(_ context.Context, id, userID, providerID uuid.UUID, key secret.String) (db.UserProviderKey, error) {
	q.rec("PutUserProviderKey", id, userID, providerID, key)
	return db.UserProviderKey{}, errFakeStore
}

func (q *fakeQuerier) DeleteUserProviderKey(_ context.Context, id uuid.UUID) error {
	q.rec("DeleteUserProviderKey", id)
	return errFakeStore
}

func (q *fakeQuerier) PutChat(_ context.Context, id, ownerID, modelConfigID uuid.UUID) (db.Chat, error) {
	q.rec("PutChat", id, ownerID, modelConfigID)
	return db.Chat{}, errFakeStore
}

func (q *fakeQuerier) GetChat(_ context.Context, id uuid.UUID) (db.Chat, error) {
	q.rec("GetChat", id)
	return db.Chat{}, errFakeStore
}

func (q *fakeQuerier) CreateToken(_ context.Context, id uuid.UUID, name string, scopes []string, hash []byte, expiresAt *time.Time) (db.Token, error) {
	q.rec("CreateToken", id, name, scopes, hash, expiresAt)
	return db.Token{}, errFakeStore
}

func (q *fakeQuerier) RevokeToken(_ context.Context, id uuid.UUID, _ func([]string) error) error {
	q.rec("RevokeToken", id)
	return errFakeStore
}

func (q *fakeQuerier) GetToken(_ context.Context, id uuid.UUID) (db.Token, error) {
	q.rec("GetToken", id)
	return db.Token{}, errFakeStore
}

func (q *fakeQuerier) ListTokens(_ context.Context, p db.Page[db.TokenPos]) ([]db.Token, error) {
	q.rec("ListTokens", p)
	return nil, errFakeStore
}

func (q *fakeQuerier) ListAuditEvents(_ context.Context, f db.AuditFilter) ([]db.AuditEvent, error) {
	q.rec("ListAuditEvents", f)
	return nil, errFakeStore
}

// fakeRecorder keeps ResolveModel's audit records.
type fakeRecorder struct{ events []db.AuditEvent }

func (r *fakeRecorder) Record(e db.AuditEvent) error {
	r.events = append(r.events, e)
	return nil
}

var (
	fuzzLog   = slog.New(slog.DiscardHandler)
	fuzzFPKey = []byte("fuzz fingerprint key")
)

// fuzzCtx is a caller holding every scope, so the scope checks of dbauthz pass and the fake store
// sees every request that passed validation.
func fuzzCtx() context.Context {
	return rbac.WithPrincipal(context.Background(), rbac.Principal{Name: "fuzz", Scopes: []rbac.Scope{rbac.All}})
}

func fuzzAdmin() (*Admin, *fakeQuerier) {
	q := &fakeQuerier{}
	return NewAdmin(dbauthz.New(q), fuzzFPKey, fuzzLog), q
}

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
	if info.GetReason() != string(errs.InvalidArgument) || info.GetDomain() != Domain {
		t.Fatalf("ErrorInfo %v, want reason INVALID_ARGUMENT in domain %s", info, Domain)
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
// Independent oracles: the properties of SPEC sections 1 and 3, written without the validators.

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// uuidOK: the canonical hyphenated form, either case, not the nil UUID.
func uuidOK(s string) bool { return uuidRE.MatchString(s) && s != nilUUID }

// specNameRE is SPEC section 1's pattern of provider names.
var specNameRE = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// nameOK: SPEC section 1's ^[a-z0-9]+(-[a-z0-9]+)*$, at most 63 bytes, checked by hand.
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

// apiKeyProblem says why raw is not an acceptable api_key ("" when it is), by SPEC section 3: it is
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
	case strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) >= 0:
		return "has a control or invisible formatting character"
	case s != strings.TrimSpace(s):
		return "starts or ends with white space"
	}
	return ""
}

// specProviderTypes is SPEC section 1's list of provider types.
var specProviderTypes = []string{"anthropic", "azure", "bedrock", "google", "openai", "openai-compat", "openrouter", "vercel"}

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
			t.Fatalf("apiKey(%q) accepted=%v; SPEC 3 says %q", raw, accepted, problem)
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

// FuzzValidateEnumsAndLimits: purposeOf accepts exactly the five purposes of SPEC section 2,
// byokPolicy exactly the four ByokPolicy values (unspecified → disabled), providerType exactly the
// eight types of SPEC section 1, contextLimit exactly n > 0 and compressionThreshold exactly 0..100.
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

// ---------------------------------------------------------------------------------------------
// Request targets: the real handlers over the fake store.

// FuzzResolveModelRequest: ResolveModel refuses exactly what id("chat_id"), optionalID
// ("model_config_id") and purposeOf refuse, records the call in the audit trail either way, and a
// valid request reaches the store with the parsed ids.
func FuzzResolveModelRequest(f *testing.F) {
	for i, s := range uuidSeeds {
		f.Add(s, "", int32(1))
		f.Add(seedUUID, s, int32(i%8)-1)
	}
	f.Add(seedUUIDUpper, seedUUID2, int32(5))
	f.Add(nilUUID, nilUUID, int32(0))
	f.Fuzz(func(t *testing.T, chatID, configID string, purpose int32) {
		q, rec := &fakeQuerier{}, &fakeRecorder{}
		s := NewResolver(dbauthz.New(q), resolve.Options{AllowBYOK: true}, fuzzFPKey, rec, fuzzLog, nil)
		req := &resolverv1.ResolveModelRequest{ChatId: chatID, ModelConfigId: configID, Purpose: resolverv1.Purpose(purpose)}
		resp, err := s.ResolveModel(fuzzCtx(), req)
		if resp != nil {
			t.Fatalf("the fake store answered nothing, yet ResolveModel answered %v", resp)
		}

		var v violations
		chat := v.id("chat_id", chatID)
		cfg := v.optionalID("model_config_id", configID)
		p := purposeOf(&v, req.GetPurpose())
		call := checkOutcome(t, req, err, fieldsOf(v), q, "ResolutionSnapshot")

		if len(rec.events) != 1 {
			t.Fatalf("ResolveModel made %d audit records, want 1", len(rec.events))
		}
		ev := rec.events[0]
		wantOutcome := string(errs.NotFound) // the fake store's answer
		if len(v) > 0 {
			wantOutcome = string(errs.InvalidArgument)
		}
		if ev.Action != "ResolveModel" || ev.Outcome != wantOutcome || ev.Resolution == nil || ev.Resolution.Purpose != p.String() {
			t.Fatalf("audit record %+v (resolution %+v), want action ResolveModel, outcome %s, purpose %s", ev, ev.Resolution, wantOutcome, p)
		}
		if len(v) > 0 {
			return
		}
		checkStoredID(t, "chat_id", chatID, chat, call.args[0].(uuid.UUID))
		checkStoredID(t, "model_config_id", configID, cfg, call.args[1].(uuid.UUID))
		if ev.ChatID != chat {
			t.Fatalf("audit record of chat %v, want %v", ev.ChatID, chat)
		}
	})
}

// FuzzCreateProviderRequest: CreateProvider refuses exactly what its validators refuse, and a valid
// request reaches the store as given, with enabled defaulting to true and the policy mapped.
func FuzzCreateProviderRequest(f *testing.F) {
	f.Add("openai", "openai-eu", "OpenAI (EU)", "https://api.example.com/v1", false, false, int32(0))
	f.Add("bedrock", strings.Repeat("a", 63), "", "", true, false, int32(3))
	f.Add("openai", strings.Repeat("a", 64), "", "", true, true, int32(2))
	f.Add("OpenAI", "Bad_Name", " x", "https://user:pass@api.example.com", false, true, int32(4))
	f.Add("", "", "", "ftp://x", false, false, int32(-1))
	f.Add("vercel", "v", "V\x00", "https://api.example.com/v1?k=1", true, true, int32(1))
	f.Fuzz(func(t *testing.T, typ, name, display, baseURL string, setEnabled, enabled bool, policy int32) {
		a, q := fuzzAdmin()
		req := &resolverv1.CreateProviderRequest{Type: typ, Name: name, DisplayName: display, BaseUrl: baseURL, ByokPolicy: resolverv1.ByokPolicy(policy)}
		if setEnabled {
			req.Enabled = boolPtr(enabled)
		}
		_, err := a.CreateProvider(fuzzCtx(), req)

		var v violations
		v.providerType("type", typ)
		v.providerName("name", name)
		v.text("display_name", display, false)
		v.baseURL("base_url", baseURL)
		pol := v.byokPolicy("byok_policy", req.GetByokPolicy())
		call := checkOutcome(t, req, err, fieldsOf(v), q, "CreateProvider")
		if len(v) > 0 {
			return
		}
		p := call.args[0].(resolve.Provider)
		checkNewID(t, p.ID)
		want := resolve.Provider{ID: p.ID, Type: typ, Name: name, DisplayName: display, BaseURL: baseURL, Enabled: !setEnabled || enabled, BYOKPolicy: pol}
		if p != want {
			t.Fatalf("the store got %+v, want %+v", p, want)
		}
		if !nameOK(p.Name) || !slices.Contains(specProviderTypes, p.Type) || pol == "" {
			t.Fatalf("the store got provider %+v", p)
		}
	})
}

// FuzzUpdateProviderRequest: UpdateProvider validates exactly the fields that are set, and a valid
// request changes exactly those fields (the policy when not unspecified).
func FuzzUpdateProviderRequest(f *testing.F) {
	f.Add(seedUUID, "openai-eu", "OpenAI", "https://api.example.com", uint8(0xff), true, int32(2))
	f.Add(seedUUIDUpper, "", "", "", uint8(0), false, int32(0))
	f.Add(nilUUID, "-bad-", " x", "https://u@h", uint8(0x07), false, int32(9))
	f.Add("", strings.Repeat("z", 64), "", "", uint8(0x01), true, int32(1))
	f.Add(seedUUID, "", "", "", uint8(0x07), true, int32(3))
	f.Fuzz(func(t *testing.T, id, name, display, baseURL string, mask uint8, enabled bool, policy int32) {
		a, q := fuzzAdmin()
		req := &resolverv1.UpdateProviderRequest{
			Id: id, Name: strPtrIf(mask&1 != 0, name), DisplayName: strPtrIf(mask&2 != 0, display),
			BaseUrl: strPtrIf(mask&4 != 0, baseURL), ByokPolicy: resolverv1.ByokPolicy(policy),
		}
		if mask&8 != 0 {
			req.Enabled = boolPtr(enabled)
		}
		_, err := a.UpdateProvider(fuzzCtx(), req)

		var v violations
		pid := v.id("id", id)
		if req.Name != nil {
			v.providerName("name", name)
		}
		if req.DisplayName != nil {
			v.text("display_name", display, false)
		}
		if req.BaseUrl != nil {
			v.baseURL("base_url", baseURL)
		}
		var pol resolve.BYOKPolicy
		if req.GetByokPolicy() != resolverv1.ByokPolicy_BYOK_POLICY_UNSPECIFIED {
			pol = v.byokPolicy("byok_policy", req.GetByokPolicy())
		}
		call := checkOutcome(t, req, err, fieldsOf(v), q, "UpdateProvider")
		if len(v) > 0 {
			return
		}
		checkStoredID(t, "id", id, pid, call.args[0].(uuid.UUID))
		var want db.Provider
		if req.Name != nil {
			want.Name = name
		}
		if req.DisplayName != nil {
			want.DisplayName = display
		}
		if req.BaseUrl != nil {
			want.BaseURL = baseURL
		}
		if req.Enabled != nil {
			want.Enabled = enabled
		}
		want.BYOKPolicy = pol
		if got := call.args[1].(db.Provider); got != want {
			t.Fatalf("the update wrote %+v, want %+v", got, want)
		}
	})
}

// FuzzProviderKeyRequests: AddProviderKey, RotateProviderKey and PutUserProviderKey refuse exactly
// what their validators refuse, never quote a refused key, and hand the store the trimmed key.
func FuzzProviderKeyRequests(f *testing.F) {
	for i, key := range []string{
		"sk-proj-abc123", "  sk-padded\n", "", strings.Repeat("k", 10240), strings.Repeat("k", 10241),
		"sk-\x00secretsecret", "sk-\xffsecretsecret",
	} {
		f.Add(uint8(i), seedUUID, seedUUID2, key, i%2 == 0, true)
	}
	f.Add(uint8(0), "", "", "", false, false)
	f.Add(uint8(2), nilUUID, seedUUIDUpper, "sk-ok", false, false)
	f.Fuzz(func(t *testing.T, method uint8, providerID, userID, apiKey string, setEnabled, enabled bool) {
		a, q := fuzzAdmin()
		var (
			req  proto.Message
			err  error
			v    violations
			name string
		)
		switch method % 3 {
		case 0:
			r := &resolverv1.AddProviderKeyRequest{ProviderId: providerID, ApiKey: apiKey}
			if setEnabled {
				r.Enabled = boolPtr(enabled)
			}
			req, name = r, "AddProviderKey"
			_, err = a.AddProviderKey(fuzzCtx(), r)
		case 1:
			r := &resolverv1.RotateProviderKeyRequest{ProviderId: providerID, ApiKey: apiKey}
			req, name = r, "RotateProviderKey"
			_, err = a.RotateProviderKey(fuzzCtx(), r)
		case 2:
			r := &resolverv1.PutUserProviderKeyRequest{UserId: userID, AiProviderId: providerID, ApiKey: apiKey}
			req, name = r, "PutUserProviderKey"
			_, err = a.PutUserProviderKey(fuzzCtx(), r)
		}
		var uid, pid uuid.UUID
		if method%3 == 2 {
			uid = v.id("user_id", userID)
			pid = v.id("ai_provider_id", providerID)
		} else {
			pid = v.id("provider_id", providerID)
		}
		v.apiKey("api_key", apiKey)
		call := checkOutcome(t, req, err, fieldsOf(v), q, name)
		if len(v) > 0 {
			checkKeyNotShown(t, err, "api_key", apiKey)
			return
		}
		checkNewID(t, call.args[0].(uuid.UUID))
		switch method % 3 {
		case 0:
			checkStoredID(t, "provider_id", providerID, pid, call.args[1].(uuid.UUID))
			checkAcceptedKey(t, apiKey, call.args[2].(secret.String))
			if got := call.args[3].(bool); got != (!setEnabled || enabled) {
				t.Fatalf("enabled %v reached the store as %v", req, got)
			}
		case 1:
			checkStoredID(t, "provider_id", providerID, pid, call.args[1].(uuid.UUID))
			checkAcceptedKey(t, apiKey, call.args[2].(secret.String))
		case 2:
			checkStoredID(t, "user_id", userID, uid, call.args[1].(uuid.UUID))
			checkStoredID(t, "ai_provider_id", providerID, pid, call.args[2].(uuid.UUID))
			checkAcceptedKey(t, apiKey, call.args[3].(secret.String))
		}
	})
}

// FuzzCreateModelConfigRequest: CreateModelConfig refuses exactly what its validators refuse, and a
// valid request reaches the store as given, its options as the JSON object of the Struct.
func FuzzCreateModelConfigRequest(f *testing.F) {
	f.Add(seedUUID, "gpt-4o", "GPT-4o", true, false, false, int32(128000), int32(70), uint8(2), "temperature", "x", 0.5, uint16(0))
	f.Add(seedUUIDUpper, "m", "", false, true, true, int32(1), int32(0), uint8(0), "", "", 0.0, uint16(0))
	f.Add("", "", " pad", false, false, false, int32(0), int32(101), uint8(3), "k", "v", math.NaN(), uint16(65535))
	f.Add(nilUUID, " ", "\x00", true, true, false, int32(-5), int32(-1), uint8(1), "", "", 1.0, uint16(0))
	f.Add(seedUUID2, strings.Repeat("m", 201), "ok", true, true, true, int32(1), int32(100), uint8(2), "k", "\xff", 1.0, uint16(0))
	f.Fuzz(func(t *testing.T, providerID, model, display string, setEnabled, enabled, isDefault bool, limit, threshold int32, optMode uint8, optKey, optStr string, optNum float64, optPad uint16) {
		a, q := fuzzAdmin()
		opts := fuzzStruct(optMode, optKey, optStr, optNum, optPad)
		req := &resolverv1.CreateModelConfigRequest{
			AiProviderId: providerID, Model: model, DisplayName: display, IsDefault: isDefault,
			ContextLimit: limit, CompressionThreshold: threshold, Options: opts,
		}
		if setEnabled {
			req.Enabled = boolPtr(enabled)
		}
		_, err := a.CreateModelConfig(fuzzCtx(), req)

		var v violations
		pid := v.id("ai_provider_id", providerID)
		v.text("model", model, true)
		v.text("display_name", display, false)
		v.contextLimit("context_limit", limit)
		v.compressionThreshold("compression_threshold", threshold)
		v.options("options", opts)
		call := checkOutcome(t, req, err, fieldsOf(v), q, "CreateModelConfig")
		if len(v) > 0 {
			return
		}
		c := call.args[0].(resolve.ModelConfig)
		checkNewID(t, c.ID)
		checkStoredID(t, "ai_provider_id", providerID, pid, c.ProviderID)
		checkOptionsJSON(t, c.Options, opts)
		if c.Model != model || c.DisplayName != display || c.Enabled != (!setEnabled || enabled) || c.IsDefault != isDefault ||
			c.ContextLimit != limit || c.CompressionThreshold != threshold || c.Deleted || c.Provider != nil {
			t.Fatalf("the store got %+v for %v", c, req)
		}
		if limit <= 0 || threshold < 0 || threshold > 100 || textProblem(model, true) != "" || textProblem(display, false) != "" {
			t.Fatalf("the store got an invalid config %+v", c)
		}
	})
}

// FuzzUpdateModelConfigRequest: UpdateModelConfig validates exactly the fields that are set, and a
// valid request changes exactly those.
func FuzzUpdateModelConfigRequest(f *testing.F) {
	f.Add(seedUUID, seedUUID2, "gpt-4o", "GPT", uint16(0xffff), true, true, int32(1000), int32(50), uint8(2), "k", "v", 1.0, uint16(0))
	f.Add(seedUUIDUpper, "", "", "", uint16(0), false, false, int32(0), int32(0), uint8(0), "", "", 0.0, uint16(0))
	f.Add("", "bad", " ", " x", uint16(0x3f), false, false, int32(0), int32(101), uint8(3), "k", "v", math.Inf(-1), uint16(65535))
	f.Add(nilUUID, nilUUID, "m", "", uint16(0x01), false, false, int32(1), int32(1), uint8(1), "", "", 0.0, uint16(0))
	f.Add(seedUUID, "", "", "", uint16(0x30), true, false, int32(-1), int32(-1), uint8(0), "", "", 0.0, uint16(0))
	f.Fuzz(func(t *testing.T, id, providerID, model, display string, mask uint16, enabled, isDefault bool, limit, threshold int32, optMode uint8, optKey, optStr string, optNum float64, optPad uint16) {
		a, q := fuzzAdmin()
		opts := fuzzStruct(optMode, optKey, optStr, optNum, optPad)
		req := &resolverv1.UpdateModelConfigRequest{
			Id: id, AiProviderId: strPtrIf(mask&1 != 0, providerID), Model: strPtrIf(mask&2 != 0, model),
			DisplayName: strPtrIf(mask&4 != 0, display), ContextLimit: int32PtrIf(mask&8 != 0, limit),
			CompressionThreshold: int32PtrIf(mask&16 != 0, threshold), Options: opts,
		}
		if mask&32 != 0 {
			req.Enabled = boolPtr(enabled)
		}
		if mask&64 != 0 {
			req.IsDefault = boolPtr(isDefault)
		}
		_, err := a.UpdateModelConfig(fuzzCtx(), req)

		var v violations
		cid := v.id("id", id)
		pid := uuid.Nil
		if req.AiProviderId != nil {
			pid = v.id("ai_provider_id", providerID)
		}
		if req.Model != nil {
			v.text("model", model, true)
		}
		if req.DisplayName != nil {
			v.text("display_name", display, false)
		}
		if req.ContextLimit != nil {
			v.contextLimit("context_limit", limit)
		}
		if req.CompressionThreshold != nil {
			v.compressionThreshold("compression_threshold", threshold)
		}
		if req.Options != nil {
			v.options("options", opts)
		}
		call := checkOutcome(t, req, err, fieldsOf(v), q, "UpdateModelConfig")
		if len(v) > 0 {
			return
		}
		checkStoredID(t, "id", id, cid, call.args[0].(uuid.UUID))
		got := call.args[1].(db.ModelConfig)
		if req.AiProviderId != nil {
			checkStoredID(t, "ai_provider_id", providerID, pid, got.ProviderID)
		} else if got.ProviderID != uuid.Nil {
			t.Fatalf("ai_provider_id unset, but the update wrote %v", got.ProviderID)
		}
		if req.Options != nil {
			checkOptionsJSON(t, got.Options, opts)
		} else if got.Options != nil {
			t.Fatalf("options unset, but the update wrote %q", got.Options)
		}
		want := resolve.ModelConfig{ProviderID: got.ProviderID, Options: got.Options}
		if req.Model != nil {
			want.Model = model
		}
		if req.DisplayName != nil {
			want.DisplayName = display
		}
		if req.Enabled != nil {
			want.Enabled = enabled
		}
		if req.IsDefault != nil {
			want.IsDefault = isDefault
		}
		if req.ContextLimit != nil {
			want.ContextLimit = limit
		}
		if req.CompressionThreshold != nil {
			want.CompressionThreshold = threshold
		}
		if !reflect.DeepEqual(got.ModelConfig, want) {
			t.Fatalf("the update wrote %+v, want %+v", got.ModelConfig, want)
		}
	})
}

// FuzzPutUserRequest: PutUser refuses exactly what id("id") and text("username", required) refuse.
func FuzzPutUserRequest(f *testing.F) {
	f.Add(seedUUID, "alice")
	f.Add(seedUUIDUpper, " alice")
	f.Add(nilUUID, "")
	f.Add("", "\x00")
	f.Add(seedUUID2, strings.Repeat("ü", 200))
	f.Add(seedUUID2, strings.Repeat("ü", 201))
	f.Fuzz(func(t *testing.T, id, username string) {
		a, q := fuzzAdmin()
		req := &resolverv1.PutUserRequest{Id: id, Username: username}
		_, err := a.PutUser(fuzzCtx(), req)
		var v violations
		uid := v.id("id", id)
		v.text("username", username, true)
		call := checkOutcome(t, req, err, fieldsOf(v), q, "PutUser")
		if len(v) > 0 {
			return
		}
		checkStoredID(t, "id", id, uid, call.args[0].(uuid.UUID))
		if got := call.args[1].(string); got != username || textProblem(got, true) != "" {
			t.Fatalf("the store got username %q for %q", got, username)
		}
	})
}

// FuzzPutChatRequest: PutChat refuses exactly what its id validators refuse; model_config_id may be
// empty.
func FuzzPutChatRequest(f *testing.F) {
	f.Add(seedUUID, seedUUID2, "")
	f.Add(seedUUIDUpper, seedUUID, seedUUID2)
	f.Add(nilUUID, "", nilUUID)
	f.Add("", "urn:uuid:"+seedUUID, "{"+seedUUID+"}")
	f.Fuzz(func(t *testing.T, id, owner, model string) {
		a, q := fuzzAdmin()
		req := &resolverv1.PutChatRequest{Id: id, OwnerId: owner, ModelConfigId: model}
		_, err := a.PutChat(fuzzCtx(), req)
		var v violations
		cid := v.id("id", id)
		oid := v.id("owner_id", owner)
		mid := v.optionalID("model_config_id", model)
		call := checkOutcome(t, req, err, fieldsOf(v), q, "PutChat")
		if len(v) > 0 {
			return
		}
		checkStoredID(t, "id", id, cid, call.args[0].(uuid.UUID))
		checkStoredID(t, "owner_id", owner, oid, call.args[1].(uuid.UUID))
		checkStoredID(t, "model_config_id", model, mid, call.args[2].(uuid.UUID))
	})
}

// FuzzIDRequests: the requests that carry only an id (every Delete*, RevokeToken,
// SetProviderKeyEnabled, and ListProviderKeys with its optional provider_id) refuse exactly a bad id
// and hand the store the parsed one.
func FuzzIDRequests(f *testing.F) {
	for i, s := range uuidSeeds {
		f.Add(uint8(i), s, i%2 == 0)
	}
	f.Fuzz(func(t *testing.T, method uint8, id string, enabled bool) {
		a, q := fuzzAdmin()
		ctx := fuzzCtx()
		var (
			req   proto.Message
			err   error
			name  string
			field = "id"
		)
		switch method % 8 {
		case 0:
			r := &resolverv1.DeleteProviderRequest{Id: id}
			req, name = r, "DeleteProvider"
			_, err = a.DeleteProvider(ctx, r)
		case 1:
			r := &resolverv1.DeleteProviderKeyRequest{Id: id}
			req, name = r, "DeleteProviderKey"
			_, err = a.DeleteProviderKey(ctx, r)
		case 2:
			r := &resolverv1.DeleteModelConfigRequest{Id: id}
			req, name = r, "DeleteModelConfig"
			_, err = a.DeleteModelConfig(ctx, r)
		case 3:
			r := &resolverv1.DeleteUserRequest{Id: id}
			req, name = r, "DeleteUser"
			_, err = a.DeleteUser(ctx, r)
		case 4:
			r := &resolverv1.DeleteUserProviderKeyRequest{Id: id}
			req, name = r, "DeleteUserProviderKey"
			_, err = a.DeleteUserProviderKey(ctx, r)
		case 5:
			r := &resolverv1.RevokeTokenRequest{Id: id}
			req, name = r, "RevokeToken"
			_, err = a.RevokeToken(ctx, r)
		case 6:
			r := &resolverv1.SetProviderKeyEnabledRequest{Id: id, Enabled: proto.Bool(enabled)}
			req, name = r, "SetProviderKeyEnabled"
			_, err = a.SetProviderKeyEnabled(ctx, r)
		case 7:
			r := &resolverv1.ListProviderKeysRequest{ProviderId: id}
			req, name, field = r, "ListProviderKeys", "provider_id"
			_, err = a.ListProviderKeys(ctx, r)
		}
		var v violations
		var want uuid.UUID
		if field == "provider_id" {
			want = v.optionalID(field, id)
		} else {
			want = v.id(field, id)
		}
		call := checkOutcome(t, req, err, fieldsOf(v), q, name)
		if len(v) > 0 {
			return
		}
		checkStoredID(t, field, id, want, call.args[0].(uuid.UUID))
		if name == "SetProviderKeyEnabled" && call.args[1].(bool) != enabled {
			t.Fatalf("enabled=%v reached the store as %v", enabled, call.args[1])
		}
	})
}

// FuzzCreateTokenRequest: CreateToken refuses exactly a bad name, unknown or no scopes, and a
// ttl_seconds outside 0..ten years; a valid request hands the store the name, the sorted distinct
// scopes, a SHA-256 and the expiry (none for 0).
func FuzzCreateTokenRequest(f *testing.F) {
	f.Add("ci", "chat:read,model_config:read", int64(3600))
	f.Add("worker", "*", int64(0))
	f.Add("", "", int64(-1))
	f.Add(" x", "chat:read,chat:read,bogus", int64(10*365*24*3600))
	f.Add("n", "chat:read", int64(10*365*24*3600+1))
	f.Add("n\x00", "CHAT:READ", int64(math.MaxInt64))
	f.Fuzz(func(t *testing.T, name, scopeList string, ttl int64) {
		a, q := fuzzAdmin()
		var scopes []string
		if scopeList != "" {
			scopes = strings.Split(scopeList, ",")
		}
		req := &resolverv1.CreateTokenRequest{Name: name, Scopes: scopes, TtlSeconds: ttl}
		before := time.Now()
		resp, err := a.CreateToken(fuzzCtx(), req)
		if resp != nil {
			t.Fatalf("the fake store created nothing, yet CreateToken answered %v", resp)
		}
		var v violations
		v.text("name", name, true)
		parsed, perr := rbac.ParseScopes(scopes)
		switch {
		case perr != nil:
			v.add("scopes", "%v", perr)
		case len(parsed) == 0:
			v.add("scopes", "at least one scope is required")
		}
		if ttl < 0 || ttl > int64(MaxTokenTTL/time.Second) {
			v.add("ttl_seconds", "out of range")
		}
		call := checkOutcome(t, req, err, fieldsOf(v), q, "CreateToken")
		if len(v) > 0 {
			return
		}
		checkNewID(t, call.args[0].(uuid.UUID))
		if got := call.args[1].(string); got != name {
			t.Fatalf("the store got name %q for %q", got, name)
		}
		want := slices.Clone(scopes)
		slices.Sort(want)
		want = slices.Compact(want)
		if got := call.args[2].([]string); !slices.Equal(got, want) {
			t.Fatalf("the store got scopes %v for %v, want %v", got, scopes, want)
		}
		if h := call.args[3].([]byte); len(h) != 32 {
			t.Fatalf("the store got a %d-byte hash", len(h))
		}
		exp := call.args[4].(*time.Time)
		switch {
		case ttl == 0 && exp != nil:
			t.Fatalf("ttl_seconds 0 expires at %v", exp)
		case ttl > 0 && exp == nil:
			t.Fatalf("ttl_seconds %d never expires", ttl)
		case ttl > 0:
			lo, hi := before.Add(time.Duration(ttl)*time.Second-time.Second), time.Now().Add(time.Duration(ttl)*time.Second+time.Second)
			if exp.Before(lo) || exp.After(hi) {
				t.Fatalf("ttl_seconds %d expires at %v, want between %v and %v", ttl, exp, lo, hi)
			}
		}
	})
}

// FuzzListAuditEventsRequest: ListAuditEvents refuses exactly a bad chat_id or token_id, a
// (deprecated) limit outside 0..500, an action that is not short printable text (at most 200
// characters, valid UTF-8, no control or invisible formatting characters, no surrounding white space)
// and a page token parsePageToken refuses for these filters; a valid request hands the store the
// filter (limit+1 rows, DefaultPageSize+1 for 0). An accepted action goes into a text query
// parameter, so it must be something PostgreSQL takes: no NUL (the gRPC transport already refuses
// invalid UTF-8 in a string field).
func FuzzListAuditEventsRequest(f *testing.F) {
	tok, err := newPageTokens(fuzzFPKey).issue("ListAuditEvents", auditFilter(uuid.MustParse(seedUUID), uuid.MustParse(seedUUID2), "ResolveModel"), 12345)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(int32(0), "", "", "", "")
	f.Add(int32(500), tok, seedUUIDUpper, seedUUID2, "ResolveModel")
	f.Add(int32(500), tok, seedUUID, seedUUID2, "RotateProviderKey")
	f.Add(int32(501), "YTE6MA", nilUUID, "x", strings.Repeat("a", 201))
	f.Add(int32(-1), "not base64!", seedUUIDUpper, "", strings.Repeat("a", 200))
	f.Add(int32(1), tok, "", seedUUID, "RotateProviderKey")
	f.Fuzz(func(t *testing.T, limit int32, tok, chatID, tokenID, action string) {
		a, q := fuzzAdmin()
		req := &resolverv1.ListAuditEventsRequest{Limit: limit, PageToken: tok, ChatId: chatID, TokenId: tokenID, Action: action}
		_, err := a.ListAuditEvents(fuzzCtx(), req)

		var v violations
		chat := v.optionalID("chat_id", chatID)
		token := v.optionalID("token_id", tokenID)
		wantLimit := int(limit)
		switch {
		case limit == 0:
			wantLimit = DefaultPageSize
		case limit < 0 || limit > 500:
			v.add("limit", "out of range")
		}
		if !utf8.ValidString(action) || utf8.RuneCountInString(action) > 200 || action != strings.TrimSpace(action) ||
			strings.IndexFunc(action, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) >= 0 {
			v.add("action", "not short printable text")
		}
		var before int64
		if tok != "" {
			pos, problem := parsePageToken[int64](a.pages, "ListAuditEvents", auditFilter(chat, token, action), tok)
			if problem != "" {
				v.add("page_token", "bad")
			} else {
				before = *pos
			}
		}
		call := checkOutcome(t, req, err, fieldsOf(v), q, "ListAuditEvents")
		if len(v) > 0 {
			return
		}
		got := call.args[0].(db.AuditFilter)
		checkStoredID(t, "chat_id", chatID, chat, got.ChatID)
		checkStoredID(t, "token_id", tokenID, token, got.TokenID)
		want := db.AuditFilter{ChatID: chat, TokenID: token, Action: action, BeforeID: before, Limit: wantLimit + 1}
		if got != want {
			t.Fatalf("the store got filter %+v, want %+v", got, want)
		}
		if utf8.ValidString(action) && strings.ContainsRune(action, 0) {
			t.Fatalf("accepted the action %q, which holds NUL: PostgreSQL refuses it and the call fails with INTERNAL instead of INVALID_ARGUMENT", action)
		}
	})
}
