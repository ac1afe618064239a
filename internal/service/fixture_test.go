package service_test

import (
	"context"
	"fmt"
	"strings"

	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// world builds fixtures through AdminService, as an operator would.
type world struct {
	t *testing.T
	e *testenv.Env
}

func newWorld(t *testing.T, opts testenv.Options) *world {
	t.Helper()
	return &world{t: t, e: testenv.New(t, opts)}
}

func (w *world) provider(name, typ string, policy resolverv1.ByokPolicy) *resolverv1.Provider {
	w.t.Helper()
	p, err := w.e.Admin.CreateProvider(w.e.AsAdmin(), &resolverv1.CreateProviderRequest{Type: typ, Name: name, ByokPolicy: policy})
	if err != nil {
		w.t.Fatalf("create provider %s: %v", name, err)
	}
	return p
}

func (w *world) centralKey(providerID, key string) *resolverv1.ProviderKey {
	w.t.Helper()
	k, err := w.e.Admin.AddProviderKey(w.e.AsAdmin(), &resolverv1.AddProviderKeyRequest{ProviderId: providerID, ApiKey: key})
	if err != nil {
		w.t.Fatalf("add key: %v", err)
	}
	return k
}

func (w *world) config(providerID, model string, isDefault bool) *resolverv1.ModelConfig {
	w.t.Helper()
	c, err := w.e.Admin.CreateModelConfig(w.e.AsAdmin(), &resolverv1.CreateModelConfigRequest{
		AiProviderId: providerID, Model: model, IsDefault: isDefault, ContextLimit: 100000, CompressionThreshold: 70,
	})
	if err != nil {
		w.t.Fatalf("create config %s: %v", model, err)
	}
	return c
}

func (w *world) user(name string) *resolverv1.User {
	w.t.Helper()
	u, err := w.e.Admin.PutUser(w.e.AsAdmin(), &resolverv1.PutUserRequest{Id: uuid.NewString(), Username: name})
	if err != nil {
		w.t.Fatalf("put user %s: %v", name, err)
	}
	return u
}

func (w *world) userKey(userID, providerID, key string) *resolverv1.UserProviderKey {
	w.t.Helper()
	k, err := w.e.Admin.PutUserProviderKey(w.e.AsAdmin(), &resolverv1.PutUserProviderKeyRequest{UserId: userID, AiProviderId: providerID, ApiKey: key})
	if err != nil {
		w.t.Fatalf("put user key: %v", err)
	}
	return k
}

func (w *world) chat(ownerID, configID string) *resolverv1.Chat {
	w.t.Helper()
	c, err := w.e.Admin.PutChat(w.e.AsAdmin(), &resolverv1.PutChatRequest{Id: uuid.NewString(), OwnerId: ownerID, ModelConfigId: configID})
	if err != nil {
		w.t.Fatalf("put chat: %v", err)
	}
	return c
}

func (w *world) disableConfig(id string) {
	w.t.Helper()
	if _, err := w.e.Admin.UpdateModelConfig(w.e.AsAdmin(), &resolverv1.UpdateModelConfigRequest{Id: id, Enabled: proto.Bool(false)}); err != nil {
		w.t.Fatalf("disable config: %v", err)
	}
}

func (w *world) disableProvider(id string) {
	w.t.Helper()
	if _, err := w.e.Admin.UpdateProvider(w.e.AsAdmin(), &resolverv1.UpdateProviderRequest{Id: id, Enabled: proto.Bool(false)}); err != nil {
		w.t.Fatalf("disable provider: %v", err)
	}
}

// resolve calls ResolveModel as the worker.
func (w *world) resolve(chatID, configID string, purpose resolverv1.Purpose) (*resolverv1.ResolveModelResponse, error) {
	return w.e.Resolver.ResolveModel(w.e.AsWorker(), &resolverv1.ResolveModelRequest{ChatId: chatID, ModelConfigId: configID, Purpose: purpose})
}

// wantReason fails unless err is a status with code and an ErrorInfo of reason in domain resolver.v1.
// It returns the ErrorInfo.
func wantReason(t *testing.T, err error, code codes.Code, reason string) *errdetails.ErrorInfo {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s/%s, got success", code, reason)
	}
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("want a status error, got %v", err)
	}
	info := errorInfo(st)
	if st.Code() != code || info == nil || info.GetReason() != reason {
		t.Fatalf("want %s/%s, got %s/%v: %s", code, reason, st.Code(), info.GetReason(), st.Message())
	}
	if info.GetDomain() != "resolver.v1" {
		t.Fatalf("ErrorInfo.domain = %q, want resolver.v1", info.GetDomain())
	}
	return info
}

func errorInfo(st *status.Status) *errdetails.ErrorInfo {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info
		}
	}
	return nil
}

func badRequest(err error) *errdetails.BadRequest {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			return br
		}
	}
	return nil
}

// tablesSnapshot renders every row of every resolverd table (timestamps included) in a stable order,
// so a test can assert that a refused call changed nothing.
func tablesSnapshot(t *testing.T, e *testenv.Env) string {
	t.Helper()
	// audit_events is left out on purpose: a refused resolution is still recorded there.
	tables := []string{"users", "chat_model_configs", "chats", "ai_providers", "ai_provider_keys",
		"user_ai_provider_keys", "api_tokens", "resolver_settings", "encryption_keys"}
	var b strings.Builder
	for _, table := range tables {
		rows, err := e.Pool.Query(context.Background(), "SELECT to_jsonb(x)::text FROM "+table+" x ORDER BY to_jsonb(x)::text")
		if err != nil {
			t.Fatalf("snapshot %s: %v", table, err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("snapshot %s: %v", table, err)
		}
		fmt.Fprintf(&b, "%s (%d rows)\n%s\n", table, len(lines), strings.Join(lines, "\n"))
	}
	return b.String()
}
