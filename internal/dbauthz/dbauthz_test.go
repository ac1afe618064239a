package dbauthz_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/dbauthz"
	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/resolve"
	"github.com/resolverd/resolverd/pkg/secret"
)

// rule is what a method of *dbauthz.Store needs (docs/CONTRACT.md §3) and the Querier method it must
// reach once the check passes.
type rule struct {
	scopes  []rbac.Scope
	querier string
}

// rules is written from docs/CONTRACT.md §3, not from dbauthz.go: ResolveModel reads chats, configs and
// providers on every call and the key tables with their own scopes; every AdminService method needs
// the matching :write scope and List* the :read scope; tokens are administered with token:write.
var rules = map[string]rule{
	"Snapshot":    {[]rbac.Scope{rbac.ChatRead, rbac.ModelConfigRead, rbac.AIProviderRead}, "ResolutionSnapshot"},
	"UserKey":     {[]rbac.Scope{rbac.UserAIProviderKeyRead}, "UserKey"},
	"CentralKeys": {[]rbac.Scope{rbac.AIProviderKeyRead}, "EnabledCentralKeys"},
	// A worker's report writes the health of the one key row it names (docs/CONTRACT.md §17).
	"ReportCredentialOutcome": {[]rbac.Scope{rbac.CredentialReport}, "ReportCredentialOutcome"},

	"CreateProvider": {[]rbac.Scope{rbac.AIProviderWrite}, "CreateProvider"},
	"UpdateProvider": {[]rbac.Scope{rbac.AIProviderWrite}, "UpdateProvider"},
	"DeleteProvider": {[]rbac.Scope{rbac.AIProviderWrite}, "DeleteProvider"},
	"GetProvider":    {[]rbac.Scope{rbac.AIProviderRead}, "GetProvider"},
	"ListProviders":  {[]rbac.Scope{rbac.AIProviderRead}, "ListProviders"},

	"AddProviderKey":        {[]rbac.Scope{rbac.AIProviderKeyWrite}, "AddProviderKey"},
	"RotateProviderKey":     {[]rbac.Scope{rbac.AIProviderKeyWrite}, "RotateProviderKey"},
	"SetProviderKeyEnabled": {[]rbac.Scope{rbac.AIProviderKeyWrite}, "SetProviderKeyEnabled"},
	"DeleteProviderKey":     {[]rbac.Scope{rbac.AIProviderKeyWrite}, "DeleteProviderKey"},
	"ListProviderKeys":      {[]rbac.Scope{rbac.AIProviderKeyRead}, "ListProviderKeys"},

	"CreateModelConfig": {[]rbac.Scope{rbac.ModelConfigWrite}, "CreateModelConfig"},
	"UpdateModelConfig": {[]rbac.Scope{rbac.ModelConfigWrite}, "UpdateModelConfig"},
	"DeleteModelConfig": {[]rbac.Scope{rbac.ModelConfigWrite}, "DeleteModelConfig"},
	"GetModelConfig":    {[]rbac.Scope{rbac.ModelConfigRead}, "GetModelConfig"},
	"ListModelConfigs":  {[]rbac.Scope{rbac.ModelConfigRead}, "ListModelConfigs"},

	"PutUser":               {[]rbac.Scope{rbac.UserWrite}, "PutUser"},
	"DeleteUser":            {[]rbac.Scope{rbac.UserWrite}, "DeleteUser"},
	"GetUser":               {[]rbac.Scope{rbac.UserWrite}, "GetUser"}, // there is no user:read
	"PutUserProviderKey":    {[]rbac.Scope{rbac.UserAIProviderKeyWrite}, "PutUserProviderKey"},
	"DeleteUserProviderKey": {[]rbac.Scope{rbac.UserAIProviderKeyWrite}, "DeleteUserProviderKey"},
	"ListUserProviderKeys":  {[]rbac.Scope{rbac.UserAIProviderKeyRead}, "ListUserProviderKeys"},
	"PutChat":               {[]rbac.Scope{rbac.ChatWrite}, "PutChat"},
	"GetChat":               {[]rbac.Scope{rbac.ChatRead}, "GetChat"},

	// With zero-value arguments CreateToken grants nothing; TestCreateTokenGrants covers the scopes
	// it grants.
	"CreateToken": {[]rbac.Scope{rbac.TokenWrite}, "CreateToken"},
	"RevokeToken": {[]rbac.Scope{rbac.TokenWrite}, "RevokeToken"},
	"GetToken":    {[]rbac.Scope{rbac.TokenWrite}, "GetToken"},
	"ListTokens":  {[]rbac.Scope{rbac.TokenWrite}, "ListTokens"},

	// Workload identities are administered as tokens are; TestWorkloadIdentityGrants covers the
	// scopes a binding grants and carries.
	"PutWorkloadIdentity":    {[]rbac.Scope{rbac.TokenWrite}, "PutWorkloadIdentity"},
	"DeleteWorkloadIdentity": {[]rbac.Scope{rbac.TokenWrite}, "DeleteWorkloadIdentity"},
	"ListWorkloadIdentities": {[]rbac.Scope{rbac.TokenWrite}, "ListWorkloadIdentities"},

	"ListAuditEvents": {[]rbac.Scope{rbac.AuditRead}, "ListAuditEvents"},

	// resolverd's own work, open only to the system actors (system scopes; `*` does not include them).
	"ActiveToken":             {[]rbac.Scope{rbac.TokenAuthenticate}, "ActiveToken"},
	"WorkloadIdentity":        {[]rbac.Scope{rbac.IdentityAuthenticate}, "WorkloadIdentity"},
	"InsertAuditEvents":       {[]rbac.Scope{rbac.AuditAppend}, "InsertAuditEvents"},
	"DeleteAuditEventsBefore": {[]rbac.Scope{rbac.AuditExpire}, "DeleteAuditEventsBefore"},
	// Partitions: made ahead by the writer (room for what it appends), dropped by retention.
	"EnsureAuditPartitions":     {[]rbac.Scope{rbac.AuditAppend}, "EnsureAuditPartitions"},
	"DropAuditPartitionsBefore": {[]rbac.Scope{rbac.AuditExpire}, "DropAuditPartitionsBefore"},
	"FingerprintKey":            {[]rbac.Scope{rbac.FingerprintKeyRead}, "FingerprintKey"},
	"UnavailableCentralKeys":    {[]rbac.Scope{rbac.KeyHealthRead}, "UnavailableCentralKeys"},
}

// unreachable is a Querier whose every method panics (the embedded interface is nil): a call that
// gets past the scope check reaches it.
type unreachable struct{ dbauthz.Querier }

// storeMethods lists the exported methods of *dbauthz.Store.
func storeMethods() []string {
	typ := reflect.TypeOf(&dbauthz.Store{})
	names := make([]string, typ.NumMethod())
	for i := range names {
		names[i] = typ.Method(i).Name
	}
	return names
}

// call calls method name of s with ctx and zero values for every other argument. It returns the
// method's error, or the value it panicked with.
func call(s *dbauthz.Store, name string, ctx context.Context, args ...any) (err error, panicked any) {
	m := reflect.ValueOf(s).MethodByName(name)
	if !m.IsValid() {
		panic("no method " + name)
	}
	typ := m.Type()
	in := make([]reflect.Value, typ.NumIn())
	for i := range in {
		in[i] = reflect.Zero(typ.In(i))
	}
	in[0] = reflect.ValueOf(ctx)
	for i, a := range args {
		in[i+1] = reflect.ValueOf(a)
	}
	defer func() { panicked = recover() }()
	out := m.Call(in)
	if last := out[len(out)-1]; !last.IsNil() {
		err = last.Interface().(error)
	}
	return err, nil
}

// as is a caller holding scopes: a token's caller, or a system actor when a scope is a system one.
func as(scopes ...rbac.Scope) context.Context {
	for _, s := range scopes {
		if s.IsSystem() {
			actor := rbac.System("test", scopes...)
			return dbauthz.AsSystemRestricted(context.Background(), &actor)
		}
	}
	return rbac.WithPrincipal(context.Background(), rbac.Principal{TokenID: uuid.New(), Name: "test", Scopes: scopes})
}

// systemRule reports whether a rule is for the system actors alone.
func systemRule(r rule) bool { return slices.ContainsFunc(r.scopes, rbac.Scope.IsSystem) }

// allBut is every named scope except `*` and s.
func allBut(s rbac.Scope) []rbac.Scope {
	var out []rbac.Scope
	for _, k := range rbac.Known {
		if k != s && k != rbac.All {
			out = append(out, k)
		}
	}
	return out
}

// wantMissingScope fails unless err is MISSING_SCOPE naming scope.
func wantMissingScope(t *testing.T, err error, scope rbac.Scope) {
	t.Helper()
	var e *errs.Error
	if !errors.As(err, &e) || e.Reason != errs.MissingScope {
		t.Fatalf("want MISSING_SCOPE for %s, got %v", scope, err)
	}
	if got := e.Metadata["scope"]; got != string(scope) {
		t.Errorf("metadata[scope] = %q, want %q", got, scope)
	}
}

func TestRulesCoverEveryMethod(t *testing.T) {
	methods := storeMethods()
	if len(methods) == 0 {
		t.Fatal("*dbauthz.Store has no exported methods")
	}
	for _, name := range methods {
		if _, ok := rules[name]; !ok {
			t.Errorf("(*dbauthz.Store).%s has no entry in the test's rules: add the scopes docs/CONTRACT.md §3 gives it", name)
		}
	}
	for name := range rules {
		if !slices.Contains(methods, name) {
			t.Errorf("rules has %s, which *dbauthz.Store does not have", name)
		}
	}
}

func TestNoScopesNeverReachTheDatabase(t *testing.T) {
	s := dbauthz.New(unreachable{})
	for _, name := range storeMethods() {
		t.Run(name, func(t *testing.T) {
			err, p := call(s, name, as())
			if p != nil {
				t.Fatalf("reached the database without a scope check (%v)", p)
			}
			r, ok := rules[name]
			if !ok {
				t.Skip("no rule; TestRulesCoverEveryMethod fails")
			}
			wantMissingScope(t, err, r.scopes[0])
		})
	}
}

func TestNoPrincipalIsUnauthenticated(t *testing.T) {
	s := dbauthz.New(unreachable{})
	for _, name := range storeMethods() {
		t.Run(name, func(t *testing.T) {
			err, p := call(s, name, context.Background())
			if p != nil {
				t.Fatalf("reached the database without a caller (%v)", p)
			}
			if r := errs.ReasonOf(err); r != errs.Unauthenticated {
				t.Fatalf("reason %q (%v), want UNAUTHENTICATED", r, err)
			}
		})
	}
}

// TestEveryScopeIsNeeded: a caller holding every other scope is refused, naming the one it lacks.
func TestEveryScopeIsNeeded(t *testing.T) {
	s := dbauthz.New(unreachable{})
	for _, name := range storeMethods() {
		r, ok := rules[name]
		if !ok {
			continue
		}
		for _, scope := range r.scopes {
			t.Run(name+"/without "+string(scope), func(t *testing.T) {
				err, p := call(s, name, as(allBut(scope)...))
				if p != nil {
					t.Fatalf("reached the database without %s (%v)", scope, p)
				}
				wantMissingScope(t, err, scope)
			})
		}
	}
}

func TestExactScopesReachTheQuerier(t *testing.T) {
	for _, name := range storeMethods() {
		r, ok := rules[name]
		if !ok {
			continue
		}
		for _, tc := range []struct {
			name   string
			scopes []rbac.Scope
		}{{"exact", r.scopes}, {"star", []rbac.Scope{rbac.All}}} {
			if systemRule(r) && tc.name == "star" {
				continue // TestTokensNeverActAsTheSystem: `*` must not reach these
			}
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				rec := &recorder{}
				err, p := call(dbauthz.New(rec), name, as(tc.scopes...))
				if p != nil {
					t.Fatalf("panicked (a Querier method the recorder does not implement?): %v", p)
				}
				if err != nil {
					t.Fatalf("with %v: %v", tc.scopes, err)
				}
				if !slices.Equal(rec.calls, []string{r.querier}) {
					t.Errorf("Querier calls = %v, want [%s]", rec.calls, r.querier)
				}
			})
		}
	}
}

// TestCreateTokenGrants: CreateToken needs token:write and every scope it grants (`*` included), so
// token:write cannot mint a more powerful token.
func TestCreateTokenGrants(t *testing.T) {
	cases := []struct {
		holds   []rbac.Scope
		grants  []rbac.Scope
		missing rbac.Scope // "" when the call must reach the database
	}{
		{[]rbac.Scope{rbac.TokenWrite}, []rbac.Scope{rbac.TokenWrite}, ""},
		{[]rbac.Scope{rbac.TokenWrite}, []rbac.Scope{rbac.All}, rbac.All},
		{[]rbac.Scope{rbac.TokenWrite}, []rbac.Scope{rbac.AIProviderWrite}, rbac.AIProviderWrite},
		{[]rbac.Scope{rbac.TokenWrite}, []rbac.Scope{rbac.TokenWrite, rbac.ChatRead}, rbac.ChatRead},
		{[]rbac.Scope{rbac.TokenWrite, rbac.ChatRead, rbac.ModelConfigRead}, []rbac.Scope{rbac.ChatRead, rbac.ModelConfigRead}, ""},
		{[]rbac.Scope{rbac.ChatRead}, []rbac.Scope{rbac.ChatRead}, rbac.TokenWrite},
		// Every named scope is still not `*`.
		{append(allBut(rbac.All), rbac.TokenWrite), []rbac.Scope{rbac.All}, rbac.All},
		{[]rbac.Scope{rbac.All}, []rbac.Scope{rbac.All}, ""},
		{[]rbac.Scope{rbac.All}, rbac.WorkerScopes, ""},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%v grants %v", tc.holds, tc.grants), func(t *testing.T) {
			rec := &recorder{}
			hash := make([]byte, 32)
			_, err := dbauthz.New(rec).CreateToken(as(tc.holds...), uuid.New(), "t", tc.grants, hash, nil)
			if tc.missing != "" {
				wantMissingScope(t, err, tc.missing)
				if len(rec.calls) != 0 {
					t.Fatalf("reached the database: %v", rec.calls)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := make([]string, len(tc.grants))
			for i, s := range tc.grants {
				want[i] = string(s)
			}
			if !slices.Equal(rec.calls, []string{"CreateToken"}) || !slices.Equal(rec.scopes, want) {
				t.Errorf("Querier got calls %v scopes %v, want CreateToken with %v", rec.calls, rec.scopes, want)
			}
		})
	}
}

// recorder is a Querier that records which methods were called and returns zero values. A method
// added to Querier and not here panics through the nil embedded interface.
type recorder struct {
	dbauthz.Querier
	calls  []string
	scopes []string
	// previous are the scopes of the stored workload identity binding the identity methods show
	// their allowed check (nil: there is none).
	previous []string
}

func (r *recorder) note(name string) { r.calls = append(r.calls, name) }

func (r *recorder) ResolutionSnapshot(context.Context, uuid.UUID, uuid.UUID, db.Prefetch) (*resolve.Snapshot, error) {
	r.note("ResolutionSnapshot")
	return nil, nil
}

func (r *recorder) UserKey(context.Context, uuid.UUID, uuid.UUID) (*resolve.Key, error) {
	r.note("UserKey")
	return nil, nil
}

func (r *recorder) EnabledCentralKeys(context.Context, uuid.UUID) ([]*resolve.Key, error) {
	r.note("EnabledCentralKeys")
	return nil, nil
}

func (r *recorder) ReportCredentialOutcome(context.Context, uuid.UUID, resolve.Outcome, time.Duration) (db.KeyReport, error) {
	r.note("ReportCredentialOutcome")
	return db.KeyReport{}, nil
}

func (r *recorder) ListUserProviderKeys(context.Context, uuid.UUID, db.Page[db.UserProviderKeyPos]) ([]db.UserProviderKey, error) {
	r.note("ListUserProviderKeys")
	return nil, nil
}

func (r *recorder) UnavailableCentralKeys(context.Context) (map[string]int, error) {
	r.note("UnavailableCentralKeys")
	return nil, nil
}

func (r *recorder) CreateProvider(context.Context, resolve.Provider) (db.Provider, error) {
	r.note("CreateProvider")
	return db.Provider{}, nil
}

func (r *recorder) UpdateProvider(context.Context, uuid.UUID, func(*db.Provider) error) (db.Provider, error) {
	r.note("UpdateProvider")
	return db.Provider{}, nil
}

func (r *recorder) DeleteProvider(context.Context, uuid.UUID) error {
	r.note("DeleteProvider")
	return nil
}

func (r *recorder) GetProvider(context.Context, uuid.UUID) (db.Provider, error) {
	r.note("GetProvider")
	return db.Provider{}, nil
}

func (r *recorder) ListProviders(context.Context, db.Page[db.ProviderPos]) ([]db.Provider, error) {
	r.note("ListProviders")
	return nil, nil
}

func (r *recorder) AddProviderKey(context.Context, uuid.UUID, uuid.UUID, secret.String, bool) (db.ProviderKey, error) {
	r.note("AddProviderKey")
	return db.ProviderKey{}, nil
}

func (r *recorder) RotateProviderKey(context.Context, uuid.UUID, uuid.UUID, secret.String) (db.ProviderKey, error) {
	r.note("RotateProviderKey")
	return db.ProviderKey{}, nil
}

func (r *recorder) SetProviderKeyEnabled(context.Context, uuid.UUID, bool) (db.ProviderKey, error) {
	r.note("SetProviderKeyEnabled")
	return db.ProviderKey{}, nil
}

func (r *recorder) DeleteProviderKey(context.Context, uuid.UUID) error {
	r.note("DeleteProviderKey")
	return nil
}

func (r *recorder) ListProviderKeys(context.Context, uuid.UUID, db.Page[db.ProviderKeyPos]) ([]db.ProviderKey, error) {
	r.note("ListProviderKeys")
	return nil, nil
}

func (r *recorder) CreateModelConfig(context.Context, resolve.ModelConfig) (db.ModelConfig, error) {
	r.note("CreateModelConfig")
	return db.ModelConfig{}, nil
}

func (r *recorder) UpdateModelConfig(context.Context, uuid.UUID, func(*db.ModelConfig) error) (db.ModelConfig, error) {
	r.note("UpdateModelConfig")
	return db.ModelConfig{}, nil
}

func (r *recorder) DeleteModelConfig(context.Context, uuid.UUID) error {
	r.note("DeleteModelConfig")
	return nil
}

func (r *recorder) GetModelConfig(context.Context, uuid.UUID) (db.ModelConfig, error) {
	r.note("GetModelConfig")
	return db.ModelConfig{}, nil
}

func (r *recorder) ListModelConfigs(context.Context, db.Page[db.ModelConfigPos]) ([]db.ModelConfig, error) {
	r.note("ListModelConfigs")
	return nil, nil
}

func (r *recorder) PutUser(context.Context, uuid.UUID, string) (db.User, error) {
	r.note("PutUser")
	return db.User{}, nil
}

func (r *recorder) DeleteUser(context.Context, uuid.UUID) error {
	r.note("DeleteUser")
	return nil
}

func (r *recorder) GetUser(context.Context, uuid.UUID) (db.User, error) {
	r.note("GetUser")
	return db.User{}, nil
}

func (r *recorder) PutUserProviderKey(context.Context, uuid.UUID, uuid.UUID, uuid.UUID, secret.String) (db.UserProviderKey, error) {
	r.note("PutUserProviderKey")
	return db.UserProviderKey{}, nil
}

func (r *recorder) DeleteUserProviderKey(context.Context, uuid.UUID) error {
	r.note("DeleteUserProviderKey")
	return nil
}

func (r *recorder) PutChat(context.Context, uuid.UUID, uuid.UUID, uuid.UUID) (db.Chat, error) {
	r.note("PutChat")
	return db.Chat{}, nil
}

func (r *recorder) GetChat(context.Context, uuid.UUID) (db.Chat, error) {
	r.note("GetChat")
	return db.Chat{}, nil
}

func (r *recorder) CreateToken(_ context.Context, _ uuid.UUID, _ string, scopes []string, _ []byte, _ *time.Time) (db.Token, error) {
	r.note("CreateToken")
	r.scopes = scopes
	return db.Token{}, nil
}

func (r *recorder) RevokeToken(context.Context, uuid.UUID, func([]string) error) error {
	r.note("RevokeToken")
	return nil
}

func (r *recorder) ListAuditEvents(context.Context, db.AuditFilter) ([]db.AuditEvent, error) {
	r.note("ListAuditEvents")
	return nil, nil
}

func (r *recorder) ActiveToken(context.Context, []byte) (db.Token, bool, error) {
	r.note("ActiveToken")
	return db.Token{}, false, nil
}

func (r *recorder) InsertAuditEvents(context.Context, []db.AuditEvent) error {
	r.note("InsertAuditEvents")
	return nil
}

func (r *recorder) DeleteAuditEventsBefore(context.Context, time.Time, int) (int64, error) {
	r.note("DeleteAuditEventsBefore")
	return 0, nil
}

func (r *recorder) EnsureAuditPartitions(context.Context, time.Time, int) ([]string, error) {
	r.note("EnsureAuditPartitions")
	return nil, nil
}

func (r *recorder) DropAuditPartitionsBefore(context.Context, time.Time) (db.AuditExpiry, error) {
	r.note("DropAuditPartitionsBefore")
	return db.AuditExpiry{}, nil
}

func (r *recorder) FingerprintKey(context.Context) ([]byte, error) {
	r.note("FingerprintKey")
	return nil, nil
}

func (r *recorder) GetToken(context.Context, uuid.UUID) (db.Token, error) {
	r.note("GetToken")
	return db.Token{}, nil
}

func (r *recorder) ListTokens(context.Context, db.Page[db.TokenPos]) ([]db.Token, error) {
	r.note("ListTokens")
	return nil, nil
}

// TestTokensNeverActAsTheSystem: a token's caller, even with `*` or with a system scope written
// into its row with psql, cannot reach what only the system actors may do; and each system actor
// reaches only its own work.
func TestTokensNeverActAsTheSystem(t *testing.T) {
	allSystem := []rbac.Scope{rbac.TokenAuthenticate, rbac.IdentityAuthenticate, rbac.AuditAppend, rbac.AuditExpire, rbac.FingerprintKeyRead, rbac.KeyHealthRead}
	for name, r := range rules {
		if !systemRule(r) {
			continue
		}
		for _, scopes := range [][]rbac.Scope{{rbac.All}, allSystem, append([]rbac.Scope{rbac.All}, allSystem...)} {
			ctx := rbac.WithPrincipal(context.Background(), rbac.Principal{TokenID: uuid.New(), Name: "token", Scopes: scopes})
			err, p := call(dbauthz.New(unreachable{}), name, ctx)
			if p != nil {
				t.Fatalf("%s: a token with %v reached the database (%v)", name, scopes, p)
			}
			wantMissingScope(t, err, r.scopes[0])
		}
	}
	actors := map[string]*rbac.Principal{
		"ActiveToken": dbauthz.SystemAuthenticator, "InsertAuditEvents": dbauthz.SystemAuditWriter,
		"DeleteAuditEventsBefore": dbauthz.SystemAuditRetention, "FingerprintKey": dbauthz.SystemStartup,
		"WorkloadIdentity": dbauthz.SystemIdentityAuthenticator, "UnavailableCentralKeys": dbauthz.SystemKeyHealth,
		"EnsureAuditPartitions": dbauthz.SystemAuditWriter, "DropAuditPartitionsBefore": dbauthz.SystemAuditRetention,
	}
	for method, actor := range actors {
		for other, otherActor := range actors {
			rec := &recorder{}
			err, p := call(dbauthz.New(rec), other, dbauthz.AsSystemRestricted(context.Background(), actor))
			if p != nil {
				t.Fatalf("%s as %s panicked: %v", other, actor.Name, p)
			}
			own := otherActor.Name == actor.Name // an actor may have several methods
			if (other == method || own) && err != nil {
				t.Errorf("%s cannot do its own work (%s): %v", actor.Name, other, err)
			}
			if !own && err == nil {
				t.Errorf("%s can call %s, which is not its work", actor.Name, other)
			}
		}
	}
}

// TestRecorderImplementsQuerier names the Querier methods the recorder lacks: a method added to
// Querier would otherwise only show as a panic in TestExactScopesReachTheQuerier.
func TestRecorderImplementsQuerier(t *testing.T) {
	q := reflect.TypeOf((*dbauthz.Querier)(nil)).Elem()
	// The recorder's own methods have pointer receivers, so the value type's method set holds only
	// what is promoted from the nil embedded Querier: the methods the recorder does not implement.
	promoted := reflect.TypeOf(recorder{})
	var missing []string
	for i := range q.NumMethod() {
		if _, ok := promoted.MethodByName(q.Method(i).Name); ok {
			missing = append(missing, q.Method(i).Name)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("the recorder does not implement %v", missing)
	}
}
