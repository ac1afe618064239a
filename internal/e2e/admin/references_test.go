package admin_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// TestAdminE2EReferential: writes that name a provider, user or model config that is missing or
// deleted (or a provider that is disabled, for user keys) are refused with the reason of docs/CONTRACT.md
// §3 and §4, and change nothing.
func TestAdminE2EReferential(t *testing.T) {
	t.Parallel()
	w := testenv.NewWorld(t, testenv.Options{})
	e, a := w.Env, w.Admin
	ctx := e.AsAdmin()

	live := w.Provider("ref-live", "openai", resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL)
	w.CentralKey(live.Id, "sk-ref-live")
	liveCfg := w.Config(live.Id, "ref-live-model", true)

	// A deleted provider that still has keys and a config, so a write that ignored the deletion
	// would change rows (and the snapshot).
	deleted := w.Provider("ref-deleted", "anthropic", resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL)
	w.CentralKey(deleted.Id, "sk-ref-deleted")
	deletedProvCfg := w.Config(deleted.Id, "ref-deleted-model", false)

	disabled := w.Provider("ref-disabled", "google", resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL)

	u := w.User("ref-alice")
	w.UserKey(u.Id, disabled.Id, "sk-ref-alice-disabled")
	w.UserKey(u.Id, deleted.Id, "sk-ref-alice-deleted")
	deletedUser := w.User("ref-deleted-user")
	w.UserKey(deletedUser.Id, live.Id, "sk-ref-deleted-user")
	chat := w.Chat(u.Id, liveCfg.Id)
	deletedCfg := w.Config(live.Id, "ref-deleted-cfg", false)

	w.DisableProvider(disabled.Id)
	if _, err := a.DeleteProvider(ctx, &resolverv1.DeleteProviderRequest{Id: deleted.Id}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.DeleteUser(ctx, &resolverv1.DeleteUserRequest{Id: deletedUser.Id}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.DeleteModelConfig(ctx, &resolverv1.DeleteModelConfigRequest{Id: deletedCfg.Id}); err != nil {
		t.Fatal(err)
	}
	missingProvider, missingUser, missingCfg := uuid.NewString(), uuid.NewString(), uuid.NewString()

	refused := func(t *testing.T, code codes.Code, reason, id string, call func(context.Context) error) {
		t.Helper()
		info, _ := adRefused(t, e, code, reason, call)
		adMetaHas(t, info, id)
	}
	providerGone := []struct{ name, id string }{{"missing", missingProvider}, {"deleted", deleted.Id}}

	for _, pg := range providerGone {
		t.Run("AddProviderKey/"+pg.name, func(t *testing.T) {
			refused(t, codes.FailedPrecondition, "PROVIDER_NOT_FOUND", pg.id, func(ctx context.Context) error {
				_, err := a.AddProviderKey(ctx, &resolverv1.AddProviderKeyRequest{ProviderId: pg.id, ApiKey: "sk-ref-new"})
				return err
			})
		})
		t.Run("RotateProviderKey/"+pg.name, func(t *testing.T) {
			refused(t, codes.FailedPrecondition, "PROVIDER_NOT_FOUND", pg.id, func(ctx context.Context) error {
				_, err := a.RotateProviderKey(ctx, &resolverv1.RotateProviderKeyRequest{ProviderId: pg.id, ApiKey: "sk-ref-rotated"})
				return err
			})
		})
		t.Run("CreateModelConfig/"+pg.name, func(t *testing.T) {
			for _, isDefault := range []bool{false, true} {
				refused(t, codes.FailedPrecondition, "PROVIDER_NOT_FOUND", pg.id, func(ctx context.Context) error {
					_, err := a.CreateModelConfig(ctx, &resolverv1.CreateModelConfigRequest{AiProviderId: pg.id, Model: "m", IsDefault: isDefault, ContextLimit: 1000, CompressionThreshold: 50})
					return err
				})
			}
		})
		t.Run("UpdateModelConfig-ai_provider_id/"+pg.name, func(t *testing.T) {
			refused(t, codes.FailedPrecondition, "PROVIDER_NOT_FOUND", pg.id, func(ctx context.Context) error {
				_, err := a.UpdateModelConfig(ctx, &resolverv1.UpdateModelConfigRequest{Id: liveCfg.Id, AiProviderId: proto.String(pg.id)})
				return err
			})
		})
		t.Run("PutUserProviderKey-provider/"+pg.name, func(t *testing.T) {
			refused(t, codes.FailedPrecondition, "PROVIDER_NOT_FOUND", pg.id, func(ctx context.Context) error {
				_, err := a.PutUserProviderKey(ctx, &resolverv1.PutUserProviderKeyRequest{UserId: u.Id, AiProviderId: pg.id, ApiKey: "sk-ref-replace"})
				return err
			})
		})
	}
	t.Run("PutUserProviderKey-provider/disabled", func(t *testing.T) {
		// alice already has a key for it: the refusal must not replace it either.
		refused(t, codes.FailedPrecondition, "PROVIDER_DISABLED", disabled.Id, func(ctx context.Context) error {
			_, err := a.PutUserProviderKey(ctx, &resolverv1.PutUserProviderKeyRequest{UserId: u.Id, AiProviderId: disabled.Id, ApiKey: "sk-ref-replace"})
			return err
		})
	})
	for _, ug := range []struct{ name, id string }{{"missing", missingUser}, {"deleted", deletedUser.Id}} {
		t.Run("PutUserProviderKey-user/"+ug.name, func(t *testing.T) {
			refused(t, codes.NotFound, "USER_NOT_FOUND", ug.id, func(ctx context.Context) error {
				_, err := a.PutUserProviderKey(ctx, &resolverv1.PutUserProviderKeyRequest{UserId: ug.id, AiProviderId: live.Id, ApiKey: "sk-ref-new-user"})
				return err
			})
		})
		t.Run("PutChat-owner/"+ug.name, func(t *testing.T) {
			refused(t, codes.NotFound, "USER_NOT_FOUND", ug.id, func(ctx context.Context) error {
				_, err := a.PutChat(ctx, &resolverv1.PutChatRequest{Id: uuid.NewString(), OwnerId: ug.id, ModelConfigId: liveCfg.Id})
				return err
			})
			// Moving an existing chat to that owner is refused as well.
			refused(t, codes.NotFound, "USER_NOT_FOUND", ug.id, func(ctx context.Context) error {
				_, err := a.PutChat(ctx, &resolverv1.PutChatRequest{Id: chat.Id, OwnerId: ug.id, ModelConfigId: liveCfg.Id})
				return err
			})
		})
	}
	for _, cg := range []struct{ name, id string }{{"missing", missingCfg}, {"deleted", deletedCfg.Id}} {
		t.Run("PutChat-model_config/"+cg.name, func(t *testing.T) {
			refused(t, codes.NotFound, "MODEL_CONFIG_NOT_FOUND", cg.id, func(ctx context.Context) error {
				_, err := a.PutChat(ctx, &resolverv1.PutChatRequest{Id: uuid.NewString(), OwnerId: u.Id, ModelConfigId: cg.id})
				return err
			})
			refused(t, codes.NotFound, "MODEL_CONFIG_NOT_FOUND", cg.id, func(ctx context.Context) error {
				_, err := a.PutChat(ctx, &resolverv1.PutChatRequest{Id: chat.Id, OwnerId: u.Id, ModelConfigId: cg.id})
				return err
			})
		})
	}
	// A config whose provider was deleted is itself live: it is not MODEL_CONFIG_NOT_FOUND for PutChat.
	t.Run("PutChat-model_config/provider-deleted", func(t *testing.T) {
		got, err := a.PutChat(ctx, &resolverv1.PutChatRequest{Id: uuid.NewString(), OwnerId: u.Id, ModelConfigId: deletedProvCfg.Id})
		if err != nil {
			t.Fatalf("PutChat with a live config of a deleted provider: %v", err)
		}
		if got.GetModelConfigId() != deletedProvCfg.Id {
			t.Errorf("model_config_id = %q, want %q", got.GetModelConfigId(), deletedProvCfg.Id)
		}
	})
}
