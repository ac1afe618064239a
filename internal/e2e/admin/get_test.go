package admin_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// gtCase is one Get method with a row it must find.
type gtCase struct {
	name  string
	scope rbac.Scope // the one scope it needs
	get   func(ctx context.Context, id string) (proto.Message, error)
	id    string        // an existing row
	want  proto.Message // that row as the Create/Put/List methods returned it
	gone  string        // a deleted row's id, "" for a kind that is never deleted
}

func gtCases(t *testing.T, w *testenv.World) []gtCase {
	t.Helper()
	ctx, a := w.AsAdmin(), w.Admin
	p := w.Provider("get-live", "openai", resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL)
	deletedP := w.Provider("get-deleted", "anthropic", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	cfg := w.Config(p.GetId(), "get-model", true)
	deletedCfg := w.Config(p.GetId(), "get-deleted-model", false)
	u := w.User("get-alice")
	deletedU := w.User("get-bob")
	chat := w.Chat(u.GetId(), cfg.GetId())
	tok, err := a.CreateToken(ctx, &resolverv1.CreateTokenRequest{Name: "get-token", Scopes: []string{"chat:read"}, TtlSeconds: 3600})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.DeleteProvider(ctx, &resolverv1.DeleteProviderRequest{Id: deletedP.GetId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.DeleteModelConfig(ctx, &resolverv1.DeleteModelConfigRequest{Id: deletedCfg.GetId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.DeleteUser(ctx, &resolverv1.DeleteUserRequest{Id: deletedU.GetId()}); err != nil {
		t.Fatal(err)
	}
	var listed *resolverv1.Token
	tokens, err := a.ListTokens(ctx, &resolverv1.ListTokensRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, lt := range tokens.GetTokens() {
		if lt.GetId() == tok.GetId() {
			listed = lt
		}
	}
	if listed == nil || listed.GetName() != tok.GetName() {
		t.Fatalf("ListTokens lacks the new token %s", tok.GetId())
	}
	return []gtCase{
		{"GetProvider", rbac.AIProviderRead, func(ctx context.Context, id string) (proto.Message, error) {
			return a.GetProvider(ctx, &resolverv1.GetProviderRequest{Id: id})
		}, p.GetId(), p, deletedP.GetId()},
		{"GetModelConfig", rbac.ModelConfigRead, func(ctx context.Context, id string) (proto.Message, error) {
			return a.GetModelConfig(ctx, &resolverv1.GetModelConfigRequest{Id: id})
		}, cfg.GetId(), cfg, deletedCfg.GetId()},
		{"GetUser", rbac.UserWrite, func(ctx context.Context, id string) (proto.Message, error) {
			return a.GetUser(ctx, &resolverv1.GetUserRequest{Id: id})
		}, u.GetId(), u, deletedU.GetId()},
		{"GetChat", rbac.ChatRead, func(ctx context.Context, id string) (proto.Message, error) {
			return a.GetChat(ctx, &resolverv1.GetChatRequest{Id: id})
		}, chat.GetId(), chat, ""},
		{"GetToken", rbac.TokenWrite, func(ctx context.Context, id string) (proto.Message, error) {
			return a.GetToken(ctx, &resolverv1.GetTokenRequest{Id: id})
		}, tok.GetId(), listed, ""},
	}
}

func TestGetMethods(t *testing.T) {
	w := testenv.NewWorld(t, testenv.Options{})
	for _, c := range gtCases(t, w) {
		t.Run(c.name, func(t *testing.T) {
			t.Run("found", func(t *testing.T) {
				got, err := c.get(w.AsAdmin(), c.id)
				if err != nil {
					t.Fatal(err)
				}
				if !proto.Equal(got, c.want) {
					t.Fatalf("got %v\nwant what the write or List returned: %v", got, c.want)
				}
				// With exactly its scope, too.
				got, err = c.get(w.As(w.Token(t, c.name+"-exact", c.scope)), c.id)
				if err != nil || !proto.Equal(got, c.want) {
					t.Fatalf("with exactly %s: %v, %v", c.scope, got, err)
				}
			})

			t.Run("missing", func(t *testing.T) {
				missing := uuid.NewString()
				_, err := c.get(w.AsAdmin(), missing)
				info := testenv.WantReason(t, err, codes.NotFound, "NOT_FOUND")
				if got := info.GetMetadata()["id"]; got != missing {
					t.Errorf("metadata[id] = %q, want %q", got, missing)
				}
			})

			if c.gone != "" {
				t.Run("deleted", func(t *testing.T) {
					_, err := c.get(w.AsAdmin(), c.gone)
					info := testenv.WantReason(t, err, codes.NotFound, "NOT_FOUND")
					if got := info.GetMetadata()["id"]; got != c.gone {
						t.Errorf("metadata[id] = %q, want %q", got, c.gone)
					}
				})
			}

			t.Run("bad id", func(t *testing.T) {
				for _, id := range []string{"", "x", uuid.Nil.String(), strings.ToUpper(c.id) + "0", "{" + c.id + "}"} {
					_, err := c.get(w.AsAdmin(), id)
					pgWantInvalid(t, err, "id")
				}
			})

			t.Run("missing scope", func(t *testing.T) {
				// Every other scope: none may stand in for the one it needs.
				var others []rbac.Scope
				for _, s := range rbac.Known {
					if s != c.scope && s != rbac.All {
						others = append(others, s)
					}
				}
				for _, ctx := range []context.Context{w.As(w.Token(t, c.name+"-others", others...)), w.As(w.Token(t, c.name+"-none"))} {
					_, err := c.get(ctx, c.id)
					info := testenv.WantReason(t, err, codes.PermissionDenied, "MISSING_SCOPE")
					if got := info.GetMetadata()["scope"]; got != string(c.scope) {
						t.Errorf("metadata[scope] = %q, want %q", got, c.scope)
					}
				}
			})
		})
	}
}

// TestGetTokenNeverShowsTheToken: GetToken answers a token's name, scopes and dates, never the
// bearer token (only its hash is stored), and still answers a revoked token, as ListTokens lists it.
func TestGetTokenNeverShowsTheToken(t *testing.T) {
	w := testenv.NewWorld(t, testenv.Options{})
	ctx, a := w.AsAdmin(), w.Admin
	created, err := a.CreateToken(ctx, &resolverv1.CreateTokenRequest{Name: "get-secret", Scopes: []string{"chat:read", "model_config:read"}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.GetToken(ctx, &resolverv1.GetTokenRequest{Id: created.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	b, err := protojson.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), created.GetToken()) {
		t.Fatalf("GetToken shows the token: %s", b)
	}
	if got.GetName() != "get-secret" || len(got.GetScopes()) != 2 || got.GetRevokedAt() != nil || got.GetExpiresAt() != nil {
		t.Fatalf("GetToken = %s", b)
	}
	if _, err := a.RevokeToken(ctx, &resolverv1.RevokeTokenRequest{Id: created.GetId()}); err != nil {
		t.Fatal(err)
	}
	revoked, err := a.GetToken(ctx, &resolverv1.GetTokenRequest{Id: created.GetId()})
	if err != nil || revoked.GetRevokedAt() == nil {
		t.Fatalf("GetToken of a revoked token: %v, %v; want it with revoked_at", revoked, err)
	}
}
