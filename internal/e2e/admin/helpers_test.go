package admin_test

// The helpers the AdminService suites share (prefixed ad); the suites are listed in doc.go.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// adWorld is a world bound to t, so fixture helpers fail the (sub)test that calls them.
func adWorld(t *testing.T, e *testenv.Env) *testenv.World { return &testenv.World{T: t, Env: e} }

// adDiff renders the lines that differ between two table snapshots.
func adDiff(before, after string) string {
	b, a := strings.Split(before, "\n"), strings.Split(after, "\n")
	var out strings.Builder
	for _, l := range b {
		if !slices.Contains(a, l) {
			fmt.Fprintf(&out, "- %s\n", l)
		}
	}
	for _, l := range a {
		if !slices.Contains(b, l) {
			fmt.Fprintf(&out, "+ %s\n", l)
		}
	}
	return out.String()
}

// adRefused makes the call as the admin and fails t unless it is refused with code and reason and
// leaves every table byte-identical. It returns the error and its ErrorInfo.
func adRefused(t *testing.T, e *testenv.Env, code codes.Code, reason string, call func(context.Context) error) (*errdetails.ErrorInfo, error) {
	t.Helper()
	before := e.TablesSnapshot(t)
	err := call(e.AsAdmin())
	after := e.TablesSnapshot(t)
	if after != before {
		t.Errorf("a refused call changed the database:\n%s", adDiff(before, after))
	}
	info := testenv.WantReason(t, err, code, reason)
	return info, err
}

// adInvalid is adRefused for INVALID_ARGUMENT: the google.rpc.BadRequest must name exactly the
// fields given, one violation per field, and the ErrorInfo metadata must name one of them.
func adInvalid(t *testing.T, e *testenv.Env, fields []string, call func(context.Context) error) error {
	t.Helper()
	info, err := adRefused(t, e, codes.InvalidArgument, "INVALID_ARGUMENT", call)
	br := testenv.BadRequest(err)
	if br == nil {
		t.Fatalf("INVALID_ARGUMENT without a google.rpc.BadRequest detail: %v", err)
	}
	var got []string
	for _, v := range br.GetFieldViolations() {
		got = append(got, v.GetField())
		if v.GetDescription() == "" {
			t.Errorf("violation of %s has no description", v.GetField())
		}
	}
	want := slices.Clone(fields)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("field violations = %q, want exactly %q (%v)", got, want, err)
	}
	named := false
	for _, v := range info.GetMetadata() {
		named = named || slices.Contains(fields, v)
	}
	if !named {
		t.Errorf("ErrorInfo.metadata %v names none of the fields %q", info.GetMetadata(), fields)
	}
	return err
}

// adMetaHas fails t unless some ErrorInfo metadata value is want (an id or field involved).
func adMetaHas(t *testing.T, info *errdetails.ErrorInfo, want string) {
	t.Helper()
	for _, v := range info.GetMetadata() {
		if v == want {
			return
		}
	}
	t.Errorf("ErrorInfo.metadata %v does not name %q", info.GetMetadata(), want)
}

// adErrText is everything a caller can read in an error: message and every detail.
func adErrText(err error) string {
	st, _ := status.FromError(err)
	var b strings.Builder
	b.WriteString(st.Message())
	for _, d := range st.Proto().GetDetails() {
		b.WriteString("\n")
		b.WriteString(prototext.Format(d))
		b.Write(d.GetValue())
	}
	return b.String()
}

// adNoLeak fails t if any of secrets appears in the error a caller sees.
func adNoLeak(t *testing.T, err error, secrets ...string) {
	t.Helper()
	text := adErrText(err)
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("the refusal quotes the secret %.20q…: %.300q", s, text)
		}
	}
}

// adText is the proto text of a message, for "does this response contain X" checks.
func adText(m proto.Message) string { return prototext.Format(m) }

// adCount runs a COUNT(*) query as another reader, to check what was stored.
func adCount(t *testing.T, e *testenv.Env, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := e.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// adStoredKey is a stored api_key column and its encryption key id.
type adStoredKey struct {
	APIKey string
	KeyID  *string
}

// adStoredKeys reads id → (api_key, api_key_key_id) of a key table.
func adStoredKeys(t *testing.T, e *testenv.Env, table string) map[string]adStoredKey {
	t.Helper()
	rows, err := e.Pool.Query(context.Background(), "SELECT id::text, api_key, api_key_key_id FROM "+pgx.Identifier{table}.Sanitize())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]adStoredKey{}
	for rows.Next() {
		var id string
		var k adStoredKey
		if err := rows.Scan(&id, &k.APIKey, &k.KeyID); err != nil {
			t.Fatal(err)
		}
		out[id] = k
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// adLiveDefaults lists the ids of the configs ListModelConfigs marks as default.
func adLiveDefaults(t *testing.T, e *testenv.Env) []string {
	t.Helper()
	list, err := e.Admin.ListModelConfigs(e.AsAdmin(), &resolverv1.ListModelConfigsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range list.GetModelConfigs() {
		if c.GetIsDefault() {
			out = append(out, c.GetId())
		}
	}
	return out
}

// adKey returns an API key of exactly n bytes that is easy to recognise.
func adKey(tag string, n int) string {
	seed := "sk-" + tag + "-" + strings.ReplaceAll(uuid.NewString(), "-", "")
	return strings.Repeat(seed, n/len(seed)+1)[:n]
}

// adListProvider returns the provider of ListProviders with id, or nil.
func adListProvider(t *testing.T, e *testenv.Env, id string) *resolverv1.Provider {
	t.Helper()
	list, err := e.Admin.ListProviders(e.AsAdmin(), &resolverv1.ListProvidersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range list.GetProviders() {
		if p.GetId() == id {
			return p
		}
	}
	return nil
}

// adListConfig returns the config of ListModelConfigs with id, or nil.
func adListConfig(t *testing.T, e *testenv.Env, id string) *resolverv1.ModelConfig {
	t.Helper()
	list, err := e.Admin.ListModelConfigs(e.AsAdmin(), &resolverv1.ListModelConfigsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list.GetModelConfigs() {
		if c.GetId() == id {
			return c
		}
	}
	return nil
}

// adListKeys returns ListProviderKeys(providerID) by key id.
func adListKeys(t *testing.T, e *testenv.Env, providerID string) map[string]*resolverv1.ProviderKey {
	t.Helper()
	list, err := e.Admin.ListProviderKeys(e.AsAdmin(), &resolverv1.ListProviderKeysRequest{ProviderId: providerID})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*resolverv1.ProviderKey{}
	for _, k := range list.GetKeys() {
		if _, dup := out[k.GetId()]; dup {
			t.Errorf("ListProviderKeys lists key %s twice", k.GetId())
		}
		out[k.GetId()] = k
	}
	return out
}

func adIsUUID(t *testing.T, what, s string) {
	t.Helper()
	if id, err := uuid.Parse(s); err != nil || id == uuid.Nil || len(s) != 36 {
		t.Errorf("%s = %q, want a UUID", what, s)
	}
}
