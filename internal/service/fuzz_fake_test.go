package service

// Fuzz targets for every request validator and for the audit page token, run without a database.
//
// Two layers:
//   - FuzzValidate* call one validator of validate.go directly and check it against the property it
//     must have (docs/CONTRACT.md §1, §3 and §4), both ways where the property decides acceptance: a value
//     the property refuses must be refused, and one it accepts must be accepted. FuzzPageToken does
//     the same for parsePageToken and pageTokens.issue.
//   - Fuzz*Request call the real handler (Admin or Resolver) on a dbauthz.Store over fakeQuerier, a
//     store that records the call and fails it, so nothing here needs PostgreSQL. They check the
//     wiring: the handler refuses with INVALID_ARGUMENT exactly the fields whose validator refuses
//     (each violation naming a field of the request message, with ErrorInfo and BadRequest details),
//     never reaches the store when it refuses, and otherwise reaches it once with the validated
//     values (ids that round-trip, the trimmed key, the parsed filter...).
//
// The files: fuzz_fake_test.go (this one) the seeds and the fake store; fuzz_checks_test.go the
// checks the request targets share and the independent oracles; fuzz_validate_test.go the
// validator targets; fuzz_requests_test.go the request targets. Their seed corpora are under
// testdata/fuzz/<target>/; scripts/fuzz-short.sh (make fuzz) runs every target.

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/dbauthz"
	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/resolve"
	"github.com/resolverd/resolverd/pkg/secret"
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

// fakeQuerier is a dbauthz.Querier without a database. It overrides the methods the request
// targets reach: each records its call and fails it (the Update* methods first run the handler's
// mutate on a zero row and record the row). Every other method is the embedded Querier's, which
// is nil: a target that reaches one panics, and the fuzzer reports that as a failure. A method
// added to the interface needs nothing here until a target reaches it.
type fakeQuerier struct {
	dbauthz.Querier
	calls []storeCall
}

func (q *fakeQuerier) rec(method string, args ...any) {
	q.calls = append(q.calls, storeCall{method: method, args: args})
}

func (q *fakeQuerier) ResolutionSnapshot(_ context.Context, chatID, requestedConfigID uuid.UUID, prefetch db.Prefetch) (*resolve.Snapshot, error) {
	q.rec("ResolutionSnapshot", chatID, requestedConfigID, prefetch)
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

func (q *fakeQuerier) PutUser(_ context.Context, id uuid.UUID, username string) (db.User, error) {
	q.rec("PutUser", id, username)
	return db.User{}, errFakeStore
}

func (q *fakeQuerier) DeleteUser(_ context.Context, id uuid.UUID) error {
	q.rec("DeleteUser", id)
	return errFakeStore
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

func (q *fakeQuerier) CreateToken(_ context.Context, id uuid.UUID, name string, scopes []string, hash []byte, expiresAt *time.Time) (db.Token, error) {
	q.rec("CreateToken", id, name, scopes, hash, expiresAt)
	return db.Token{}, errFakeStore
}

func (q *fakeQuerier) RevokeToken(_ context.Context, id uuid.UUID, _ func([]string) error) error {
	q.rec("RevokeToken", id)
	return errFakeStore
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
	return NewAdmin(dbauthz.New(q), fuzzFPKey, nil, fuzzLog), q
}
