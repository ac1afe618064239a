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

// TestAdminE2ENotFound: updating or deleting a row that does not exist (or no longer exists) is
// NOT_FOUND/NOT_FOUND naming the id, and changes nothing (SPEC section 3).
func TestAdminE2ENotFound(t *testing.T) {
	t.Parallel()
	w := testenv.NewWorld(t, testenv.Options{})
	e, a := w.Env, w.Admin
	ctx := e.AsAdmin()
	// Live rows of every kind, so that "nothing changed" is checked against a populated database.
	p := w.Provider("nf-openai", "openai", resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL)
	w.CentralKey(p.Id, "sk-nf-central")
	c := w.Config(p.Id, "nf-model", true)
	u := w.User("nf-alice")
	w.UserKey(u.Id, p.Id, "sk-nf-user")
	w.Chat(u.Id, c.Id)

	notFound := func(t *testing.T, id string, call func(context.Context) error) {
		t.Helper()
		info, _ := adRefused(t, e, codes.NotFound, "NOT_FOUND", call)
		adMetaHas(t, info, id)
	}
	missing := func() string { return uuid.NewString() }

	t.Run("UpdateProvider/missing", func(t *testing.T) {
		id := missing()
		notFound(t, id, func(ctx context.Context) error {
			_, err := a.UpdateProvider(ctx, &resolverv1.UpdateProviderRequest{Id: id, DisplayName: proto.String("x")})
			return err
		})
	})
	t.Run("DeleteProvider/missing", func(t *testing.T) {
		id := missing()
		notFound(t, id, func(ctx context.Context) error {
			_, err := a.DeleteProvider(ctx, &resolverv1.DeleteProviderRequest{Id: id})
			return err
		})
	})
	t.Run("DeleteProvider/twice-and-update-after", func(t *testing.T) {
		gone := adWorld(t, e).Provider("nf-gone", "anthropic", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
		if _, err := a.DeleteProvider(ctx, &resolverv1.DeleteProviderRequest{Id: gone.Id}); err != nil {
			t.Fatalf("first delete: %v", err)
		}
		notFound(t, gone.Id, func(ctx context.Context) error {
			_, err := a.DeleteProvider(ctx, &resolverv1.DeleteProviderRequest{Id: gone.Id})
			return err
		})
		notFound(t, gone.Id, func(ctx context.Context) error {
			_, err := a.UpdateProvider(ctx, &resolverv1.UpdateProviderRequest{Id: gone.Id, Enabled: proto.Bool(true)})
			return err
		})
	})
	t.Run("SetProviderKeyEnabled/missing", func(t *testing.T) {
		for _, enabled := range []bool{true, false} {
			id := missing()
			notFound(t, id, func(ctx context.Context) error {
				_, err := a.SetProviderKeyEnabled(ctx, &resolverv1.SetProviderKeyEnabledRequest{Id: id, Enabled: proto.Bool(enabled)})
				return err
			})
		}
	})
	t.Run("DeleteProviderKey/missing-and-twice", func(t *testing.T) {
		id := missing()
		notFound(t, id, func(ctx context.Context) error {
			_, err := a.DeleteProviderKey(ctx, &resolverv1.DeleteProviderKeyRequest{Id: id})
			return err
		})
		k := adWorld(t, e).CentralKey(p.Id, "sk-nf-doomed")
		if _, err := a.DeleteProviderKey(ctx, &resolverv1.DeleteProviderKeyRequest{Id: k.Id}); err != nil {
			t.Fatalf("first delete: %v", err)
		}
		notFound(t, k.Id, func(ctx context.Context) error {
			_, err := a.DeleteProviderKey(ctx, &resolverv1.DeleteProviderKeyRequest{Id: k.Id})
			return err
		})
		notFound(t, k.Id, func(ctx context.Context) error {
			_, err := a.SetProviderKeyEnabled(ctx, &resolverv1.SetProviderKeyEnabledRequest{Id: k.Id, Enabled: proto.Bool(true)})
			return err
		})
	})
	t.Run("UpdateModelConfig/missing", func(t *testing.T) {
		id := missing()
		notFound(t, id, func(ctx context.Context) error {
			_, err := a.UpdateModelConfig(ctx, &resolverv1.UpdateModelConfigRequest{Id: id, Enabled: proto.Bool(false)})
			return err
		})
	})
	t.Run("DeleteModelConfig/missing-twice-and-update-after", func(t *testing.T) {
		id := missing()
		notFound(t, id, func(ctx context.Context) error {
			_, err := a.DeleteModelConfig(ctx, &resolverv1.DeleteModelConfigRequest{Id: id})
			return err
		})
		doomed := adWorld(t, e).Config(p.Id, "nf-doomed", false)
		if _, err := a.DeleteModelConfig(ctx, &resolverv1.DeleteModelConfigRequest{Id: doomed.Id}); err != nil {
			t.Fatalf("first delete: %v", err)
		}
		notFound(t, doomed.Id, func(ctx context.Context) error {
			_, err := a.DeleteModelConfig(ctx, &resolverv1.DeleteModelConfigRequest{Id: doomed.Id})
			return err
		})
		notFound(t, doomed.Id, func(ctx context.Context) error {
			_, err := a.UpdateModelConfig(ctx, &resolverv1.UpdateModelConfigRequest{Id: doomed.Id, IsDefault: proto.Bool(true)})
			return err
		})
	})
	t.Run("DeleteUser/missing-and-twice", func(t *testing.T) {
		id := missing()
		notFound(t, id, func(ctx context.Context) error {
			_, err := a.DeleteUser(ctx, &resolverv1.DeleteUserRequest{Id: id})
			return err
		})
		gone := adWorld(t, e).User("nf-bob")
		if _, err := a.DeleteUser(ctx, &resolverv1.DeleteUserRequest{Id: gone.Id}); err != nil {
			t.Fatalf("first delete: %v", err)
		}
		notFound(t, gone.Id, func(ctx context.Context) error {
			_, err := a.DeleteUser(ctx, &resolverv1.DeleteUserRequest{Id: gone.Id})
			return err
		})
	})
	t.Run("DeleteUserProviderKey/missing-and-twice", func(t *testing.T) {
		id := missing()
		notFound(t, id, func(ctx context.Context) error {
			_, err := a.DeleteUserProviderKey(ctx, &resolverv1.DeleteUserProviderKeyRequest{Id: id})
			return err
		})
		w := adWorld(t, e)
		k := w.UserKey(w.User("nf-carol").Id, p.Id, "sk-nf-carol")
		if _, err := a.DeleteUserProviderKey(ctx, &resolverv1.DeleteUserProviderKeyRequest{Id: k.Id}); err != nil {
			t.Fatalf("first delete: %v", err)
		}
		notFound(t, k.Id, func(ctx context.Context) error {
			_, err := a.DeleteUserProviderKey(ctx, &resolverv1.DeleteUserProviderKeyRequest{Id: k.Id})
			return err
		})
	})
	t.Run("RevokeToken/missing", func(t *testing.T) {
		id := missing()
		notFound(t, id, func(ctx context.Context) error {
			_, err := a.RevokeToken(ctx, &resolverv1.RevokeTokenRequest{Id: id})
			return err
		})
	})
}

// TestAdminE2EReferential: writes that name a provider, user or model config that is missing or
// deleted (or a provider that is disabled, for user keys) are refused with the reason of SPEC
// sections 3 and 4, and change nothing.
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

// TestAdminE2EAlreadyExists: provider names are unique among live providers, usernames among users.
func TestAdminE2EAlreadyExists(t *testing.T) {
	t.Parallel()
	w := testenv.NewWorld(t, testenv.Options{})
	e, a := w.Env, w.Admin
	ctx := e.AsAdmin()
	first := w.Provider("dup-openai", "openai", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	other := w.Provider("dup-other", "anthropic", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)

	t.Run("CreateProvider/live-name", func(t *testing.T) {
		for _, typ := range []string{"openai", "azure"} { // same type or not: the name is what is unique
			info, _ := adRefused(t, e, codes.AlreadyExists, "ALREADY_EXISTS", func(ctx context.Context) error {
				_, err := a.CreateProvider(ctx, &resolverv1.CreateProviderRequest{Type: typ, Name: "dup-openai"})
				return err
			})
			adMetaHas(t, info, "name")
		}
	})
	t.Run("CreateProvider/disabled-provider-keeps-its-name", func(t *testing.T) {
		adWorld(t, e).DisableProvider(other.Id)
		adRefused(t, e, codes.AlreadyExists, "ALREADY_EXISTS", func(ctx context.Context) error {
			_, err := a.CreateProvider(ctx, &resolverv1.CreateProviderRequest{Type: "anthropic", Name: "dup-other"})
			return err
		})
	})
	t.Run("UpdateProvider/rename-onto-live-name", func(t *testing.T) {
		info, _ := adRefused(t, e, codes.AlreadyExists, "ALREADY_EXISTS", func(ctx context.Context) error {
			_, err := a.UpdateProvider(ctx, &resolverv1.UpdateProviderRequest{Id: other.Id, Name: proto.String("dup-openai"), DisplayName: proto.String("renamed")})
			return err
		})
		adMetaHas(t, info, "name")
	})
	t.Run("UpdateProvider/rename-onto-own-name", func(t *testing.T) {
		got, err := a.UpdateProvider(ctx, &resolverv1.UpdateProviderRequest{Id: first.Id, Name: proto.String("dup-openai")})
		if err != nil {
			t.Fatalf("renaming a provider onto its own name: %v", err)
		}
		if got.GetName() != "dup-openai" {
			t.Errorf("name = %q", got.GetName())
		}
	})
	t.Run("name-reusable-after-delete", func(t *testing.T) {
		if _, err := a.DeleteProvider(ctx, &resolverv1.DeleteProviderRequest{Id: first.Id}); err != nil {
			t.Fatal(err)
		}
		again, err := a.CreateProvider(ctx, &resolverv1.CreateProviderRequest{Type: "openai", Name: "dup-openai"})
		if err != nil {
			t.Fatalf("re-creating a deleted provider's name: %v", err)
		}
		if again.GetId() == first.GetId() || again.GetName() != "dup-openai" {
			t.Errorf("re-created provider = %v (the deleted one was %s)", again, first.Id)
		}
		// The new provider holds the name now: a third is refused, renaming onto it too.
		adRefused(t, e, codes.AlreadyExists, "ALREADY_EXISTS", func(ctx context.Context) error {
			_, err := a.CreateProvider(ctx, &resolverv1.CreateProviderRequest{Type: "openai", Name: "dup-openai"})
			return err
		})
		// A live provider may also take a deleted provider's name by renaming.
		third := adWorld(t, e).Provider("dup-third", "vercel", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
		if _, err := a.DeleteProvider(ctx, &resolverv1.DeleteProviderRequest{Id: third.Id}); err != nil {
			t.Fatal(err)
		}
		renamed, err := a.UpdateProvider(ctx, &resolverv1.UpdateProviderRequest{Id: other.Id, Name: proto.String("dup-third")})
		if err != nil {
			t.Fatalf("renaming onto a deleted provider's name: %v", err)
		}
		if renamed.GetName() != "dup-third" {
			t.Errorf("name = %q", renamed.GetName())
		}
	})
	t.Run("PutUser/username-of-another-user", func(t *testing.T) {
		alice := adWorld(t, e).User("dup-alice")
		bob := adWorld(t, e).User("dup-bob")
		info, _ := adRefused(t, e, codes.AlreadyExists, "ALREADY_EXISTS", func(ctx context.Context) error {
			_, err := a.PutUser(ctx, &resolverv1.PutUserRequest{Id: uuid.NewString(), Username: "dup-alice"})
			return err
		})
		adMetaHas(t, info, "username")
		adRefused(t, e, codes.AlreadyExists, "ALREADY_EXISTS", func(ctx context.Context) error {
			_, err := a.PutUser(ctx, &resolverv1.PutUserRequest{Id: bob.Id, Username: alice.Username})
			return err
		})
		// Putting a user under its own username again is not a conflict.
		same, err := a.PutUser(ctx, &resolverv1.PutUserRequest{Id: alice.Id, Username: alice.Username})
		if err != nil {
			t.Fatalf("re-putting a user unchanged: %v", err)
		}
		if same.GetId() != alice.Id || same.GetUsername() != alice.Username {
			t.Errorf("re-put user = %v", same)
		}
	})
}
