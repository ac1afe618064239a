package admin_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// TestAdminE2EProviderKeys: RotateProviderKey adds an enabled key and disables every other key of
// that provider only; SetProviderKeyEnabled toggles; DeleteProviderKey removes.
func TestAdminE2EProviderKeys(t *testing.T) {
	t.Parallel()
	w := testenv.NewWorld(t, testenv.Options{})
	e, a := w.Env, w.Admin
	ctx := e.AsAdmin()
	p1 := w.Provider("keys-one", "openai", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	p2 := w.Provider("keys-two", "openai", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	k1a := w.CentralKey(p1.Id, "sk-keys-1a")
	k1b, err := a.AddProviderKey(ctx, &resolverv1.AddProviderKeyRequest{ProviderId: p1.Id, ApiKey: "sk-keys-1b", Enabled: proto.Bool(false)})
	if err != nil {
		t.Fatal(err)
	}
	k1c := w.CentralKey(p1.Id, "sk-keys-1c")
	w.CentralKey(p2.Id, "sk-keys-2a")
	if _, err := a.AddProviderKey(ctx, &resolverv1.AddProviderKeyRequest{ProviderId: p2.Id, ApiKey: "sk-keys-2b", Enabled: proto.Bool(false)}); err != nil {
		t.Fatal(err)
	}
	w.CentralKey(p2.Id, "sk-keys-2c")
	cfg := w.Config(p1.Id, "keys-model", true)
	chat := w.Chat(w.User("keys-alice").Id, cfg.Id)

	t.Run("RotateProviderKey", func(t *testing.T) {
		before1 := adListKeys(t, e, p1.Id)
		before2 := adListKeys(t, e, p2.Id)
		if len(before1) != 3 || len(before2) != 3 {
			t.Fatalf("setup: %d and %d keys", len(before1), len(before2))
		}
		n, err := a.RotateProviderKey(ctx, &resolverv1.RotateProviderKeyRequest{ProviderId: p1.Id, ApiKey: "sk-keys-1-rotated"})
		if err != nil {
			t.Fatal(err)
		}
		adIsUUID(t, "id", n.GetId())
		if !n.GetEnabled() || n.GetProviderId() != p1.Id || len(n.GetFingerprint()) != 16 {
			t.Fatalf("RotateProviderKey = %v, want an enabled key of %s", n, p1.Id)
		}
		after1 := adListKeys(t, e, p1.Id)
		if len(after1) != 4 {
			t.Fatalf("provider 1 has %d keys after the rotation, want 4", len(after1))
		}
		for id, k := range after1 {
			if id == n.Id {
				if !proto.Equal(k, n) {
					t.Errorf("listed %v, rotation returned %v", k, n)
				}
				continue
			}
			if k.GetEnabled() {
				t.Errorf("key %s of the rotated provider is still enabled", id)
			}
			if k.GetFingerprint() != before1[id].GetFingerprint() {
				t.Errorf("key %s fingerprint changed", id)
			}
		}
		after2 := adListKeys(t, e, p2.Id)
		if len(after2) != len(before2) {
			t.Fatalf("provider 2 has %d keys, had %d", len(after2), len(before2))
		}
		for id, k := range before2 {
			if !proto.Equal(after2[id], k) {
				t.Errorf("a key of another provider changed: %v → %v", k, after2[id])
			}
		}
		all := adListKeys(t, e, "")
		if len(all) != 7 {
			t.Errorf("ListProviderKeys(all) has %d keys, want 7", len(all))
		}
		// ResolveModel now serves the rotated key.
		res, err := w.Resolve(chat.Id, "", resolverv1.Purpose_PURPOSE_CHAT)
		if err != nil {
			t.Fatal(err)
		}
		if res.GetCredential().GetKeyId() != n.Id || res.GetCredential().GetApiKey() != "sk-keys-1-rotated" {
			t.Errorf("credential after the rotation = key %s", res.GetCredential().GetKeyId())
		}
	})

	t.Run("SetProviderKeyEnabled", func(t *testing.T) {
		// nil: enabled left out, which means true (SPEC 3: enabled defaults to true).
		for _, set := range []*bool{proto.Bool(true), proto.Bool(false), proto.Bool(false), nil, proto.Bool(false), proto.Bool(true)} {
			enabled := set == nil || *set
			others := adListKeys(t, e, "")
			delete(others, k1a.Id)
			got, err := a.SetProviderKeyEnabled(ctx, &resolverv1.SetProviderKeyEnabledRequest{Id: k1a.Id, Enabled: set})
			if err != nil {
				t.Fatal(err)
			}
			if got.GetId() != k1a.Id || got.GetEnabled() != enabled || got.GetFingerprint() != k1a.GetFingerprint() || got.GetProviderId() != p1.Id {
				t.Fatalf("SetProviderKeyEnabled(%t) = %v", enabled, got)
			}
			now := adListKeys(t, e, "")
			if !proto.Equal(now[k1a.Id], got) {
				t.Errorf("listed %v, SetProviderKeyEnabled returned %v", now[k1a.Id], got)
			}
			for id, k := range others {
				if !proto.Equal(now[id], k) {
					t.Errorf("SetProviderKeyEnabled changed another key: %v → %v", k, now[id])
				}
			}
		}
	})

	t.Run("DeleteProviderKey", func(t *testing.T) {
		if _, err := a.DeleteProviderKey(ctx, &resolverv1.DeleteProviderKeyRequest{Id: k1b.Id}); err != nil {
			t.Fatal(err)
		}
		keys := adListKeys(t, e, p1.Id)
		if _, ok := keys[k1b.Id]; ok || len(keys) != 3 {
			t.Errorf("after deleting %s: %v", k1b.Id, keys)
		}
		if _, ok := keys[k1c.Id]; !ok {
			t.Errorf("another key disappeared")
		}
		if n := adCount(t, e, `SELECT count(*) FROM ai_provider_keys WHERE id = $1`, k1b.Id); n != 0 {
			t.Errorf("the deleted key row is still stored")
		}
	})
}

// TestAdminE2EDefaultModelConfig: is_default moves; at most one live default; deleted configs leave
// ListModelConfigs.
func TestAdminE2EDefaultModelConfig(t *testing.T) {
	t.Parallel()
	w := testenv.NewWorld(t, testenv.Options{})
	e, a := w.Env, w.Admin
	ctx := e.AsAdmin()
	p := w.Provider("def-openai", "openai", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	wantDefaults := func(t *testing.T, want ...string) {
		t.Helper()
		if got := adLiveDefaults(t, e); !slices.Equal(got, want) {
			t.Fatalf("live defaults = %v, want %v", got, want)
		}
		if n := adCount(t, e, `SELECT count(*) FROM chat_model_configs WHERE is_default AND NOT deleted`); n != len(want) {
			t.Fatalf("stored live defaults = %d, want %d", n, len(want))
		}
	}

	c1 := w.Config(p.Id, "def-1", true)
	if !c1.GetIsDefault() {
		t.Fatalf("CreateModelConfig(is_default) = %v", c1)
	}
	wantDefaults(t, c1.Id)

	t.Run("CreateModelConfig-moves-the-default", func(t *testing.T) {
		c2 := adWorld(t, e).Config(p.Id, "def-2", true)
		wantDefaults(t, c2.Id)
		if got := adListConfig(t, e, c1.Id); got == nil || got.GetIsDefault() {
			t.Errorf("the previous default is %v", got)
		}
		adWorld(t, e).Config(p.Id, "def-3", false)
		wantDefaults(t, c2.Id)
	})
	t.Run("UpdateModelConfig-moves-the-default", func(t *testing.T) {
		got, err := a.UpdateModelConfig(ctx, &resolverv1.UpdateModelConfigRequest{Id: c1.Id, IsDefault: proto.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		if !got.GetIsDefault() {
			t.Errorf("UpdateModelConfig(is_default) = %v", got)
		}
		wantDefaults(t, c1.Id)
		// Again on the default itself: still exactly that one.
		if _, err := a.UpdateModelConfig(ctx, &resolverv1.UpdateModelConfigRequest{Id: c1.Id, IsDefault: proto.Bool(true), DisplayName: proto.String("Default")}); err != nil {
			t.Fatal(err)
		}
		wantDefaults(t, c1.Id)
		// Updating another field of another config leaves the default alone.
		others := adLiveDefaults(t, e)
		list, err := a.ListModelConfigs(ctx, &resolverv1.ListModelConfigsRequest{})
		if err != nil || len(list.GetModelConfigs()) < 2 {
			t.Fatalf("ListModelConfigs: %d configs, %v", len(list.GetModelConfigs()), err)
		}
		for _, c := range list.GetModelConfigs() {
			if c.Id != c1.Id {
				if _, err := a.UpdateModelConfig(ctx, &resolverv1.UpdateModelConfigRequest{Id: c.Id, Enabled: proto.Bool(false)}); err != nil {
					t.Fatal(err)
				}
			}
		}
		wantDefaults(t, others...)
	})
	t.Run("DeleteModelConfig-hides-it", func(t *testing.T) {
		if _, err := a.DeleteModelConfig(ctx, &resolverv1.DeleteModelConfigRequest{Id: c1.Id}); err != nil {
			t.Fatal(err)
		}
		if got := adListConfig(t, e, c1.Id); got != nil {
			t.Fatalf("ListModelConfigs still lists the deleted config: %v", got)
		}
		wantDefaults(t)
		c4 := adWorld(t, e).Config(p.Id, "def-4", true)
		wantDefaults(t, c4.Id)
	})
}

// TestAdminE2EDeleteProvider: a deleted provider leaves ListProviders, and resolving one of its
// configs gives PROVIDER_NOT_FOUND (SPEC 2.1; within 1 second, SPEC 5).
func TestAdminE2EDeleteProvider(t *testing.T) {
	t.Parallel()
	w := testenv.NewWorld(t, testenv.Options{})
	e, a := w.Env, w.Admin
	ctx := e.AsAdmin()
	keep := w.Provider("del-keep", "openai", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	w.CentralKey(keep.Id, "sk-del-keep")
	def := w.Config(keep.Id, "del-default", true)
	doomed := w.Provider("del-doomed", "anthropic", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	w.CentralKey(doomed.Id, "sk-del-doomed")
	cfg := w.Config(doomed.Id, "del-claude", false)
	chat := w.Chat(w.User("del-alice").Id, cfg.Id)

	res, err := w.Resolve(chat.Id, cfg.Id, resolverv1.Purpose_PURPOSE_TITLE)
	if err != nil || res.GetProvider().GetId() != doomed.Id {
		t.Fatalf("before the delete: %v, %v", res, err)
	}
	if _, err := a.DeleteProvider(ctx, &resolverv1.DeleteProviderRequest{Id: doomed.Id}); err != nil {
		t.Fatal(err)
	}
	if got := adListProvider(t, e, doomed.Id); got != nil {
		t.Errorf("ListProviders still lists the deleted provider: %v", got)
	}
	if got := adListProvider(t, e, keep.Id); got == nil {
		t.Errorf("ListProviders lost the other provider")
	}
	var deleted, enabled bool
	if err := e.Pool.QueryRow(t.Context(), `SELECT deleted, enabled FROM ai_providers WHERE id = $1`, doomed.Id).Scan(&deleted, &enabled); err != nil {
		t.Fatal(err)
	}
	if !deleted || enabled {
		t.Errorf("stored deleted/enabled = %t/%t, want a soft delete that also disables", deleted, enabled)
	}

	t.Run("hard-override", func(t *testing.T) {
		adEventually(t, 1500*time.Millisecond, func() error {
			_, err := w.Resolve(chat.Id, cfg.Id, resolverv1.Purpose_PURPOSE_TITLE)
			if err == nil {
				return fmt.Errorf("PURPOSE_TITLE of a config of a deleted provider succeeded")
			}
			return nil
		})
		_, err := w.Resolve(chat.Id, cfg.Id, resolverv1.Purpose_PURPOSE_TITLE)
		info := testenv.WantReason(t, err, codes.FailedPrecondition, "PROVIDER_NOT_FOUND")
		adMetaHas(t, info, doomed.Id)
	})
	t.Run("chat-falls-back-to-the-default", func(t *testing.T) {
		res, err := w.Resolve(chat.Id, "", resolverv1.Purpose_PURPOSE_CHAT)
		if err != nil {
			t.Fatal(err)
		}
		d := res.GetDecision()
		if res.GetModelConfig().GetId() != def.Id || !d.GetFallback() || d.GetFallbackReason() != "PROVIDER_NOT_FOUND" || d.GetRequestedModelConfigId() != cfg.Id {
			t.Errorf("resolution = config %s, decision %v; want the default %s with fallback PROVIDER_NOT_FOUND", res.GetModelConfig().GetId(), d, def.Id)
		}
	})
}

// TestAdminE2EUsers: PutUser upserts by id; DeleteUser removes the user's own keys.
func TestAdminE2EUsers(t *testing.T) {
	t.Parallel()
	w := testenv.NewWorld(t, testenv.Options{})
	e, a := w.Env, w.Admin
	ctx := e.AsAdmin()
	p1 := w.Provider("usr-one", "openai", resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL)
	p2 := w.Provider("usr-two", "anthropic", resolverv1.ByokPolicy_BYOK_POLICY_REQUIRED)

	t.Run("PutUser-twice-updates-the-username", func(t *testing.T) {
		id := uuid.NewString()
		first, err := a.PutUser(ctx, &resolverv1.PutUserRequest{Id: id, Username: "usr-alice"})
		if err != nil {
			t.Fatal(err)
		}
		second, err := a.PutUser(ctx, &resolverv1.PutUserRequest{Id: id, Username: "usr-alice-renamed"})
		if err != nil {
			t.Fatal(err)
		}
		if second.GetId() != id || second.GetUsername() != "usr-alice-renamed" {
			t.Errorf("second PutUser = %v", second)
		}
		if !second.GetCreatedAt().AsTime().Equal(first.GetCreatedAt().AsTime()) {
			t.Errorf("created_at changed: %v → %v", first.GetCreatedAt(), second.GetCreatedAt())
		}
		var username string
		if err := e.Pool.QueryRow(t.Context(), `SELECT username FROM users WHERE id = $1`, id).Scan(&username); err != nil {
			t.Fatal(err)
		}
		if username != "usr-alice-renamed" {
			t.Errorf("stored username = %q", username)
		}
		if n := adCount(t, e, `SELECT count(*) FROM users WHERE id = $1 OR username IN ('usr-alice', 'usr-alice-renamed')`, id); n != 1 {
			t.Errorf("%d user rows, want 1", n)
		}
		// The old username is free again.
		if _, err := a.PutUser(ctx, &resolverv1.PutUserRequest{Id: uuid.NewString(), Username: "usr-alice"}); err != nil {
			t.Errorf("reusing a released username: %v", err)
		}
	})

	t.Run("DeleteUser-removes-the-keys", func(t *testing.T) {
		w := adWorld(t, e)
		bob := w.User("usr-bob")
		carol := w.User("usr-carol")
		w.UserKey(bob.Id, p1.Id, "sk-usr-bob-1")
		w.UserKey(bob.Id, p2.Id, "sk-usr-bob-2")
		carolKey := w.UserKey(carol.Id, p1.Id, "sk-usr-carol-1")
		if n := adCount(t, e, `SELECT count(*) FROM user_ai_provider_keys WHERE user_id = $1`, bob.Id); n != 2 {
			t.Fatalf("bob has %d keys before the delete, want 2", n)
		}
		if _, err := a.DeleteUser(ctx, &resolverv1.DeleteUserRequest{Id: bob.Id}); err != nil {
			t.Fatal(err)
		}
		if n := adCount(t, e, `SELECT count(*) FROM user_ai_provider_keys WHERE user_id = $1`, bob.Id); n != 0 {
			t.Errorf("bob has %d keys after the delete, want 0", n)
		}
		if n := adCount(t, e, `SELECT count(*) FROM user_ai_provider_keys WHERE user_id = $1 AND id = $2`, carol.Id, carolKey.Id); n != 1 {
			t.Errorf("carol's key was removed too")
		}
		if n := adCount(t, e, `SELECT count(*) FROM users WHERE id = $1 AND deleted`, bob.Id); n != 1 {
			t.Errorf("bob is not soft-deleted")
		}
	})

	t.Run("DeleteUserProviderKey", func(t *testing.T) {
		w := adWorld(t, e)
		dave := w.User("usr-dave")
		k1 := w.UserKey(dave.Id, p1.Id, "sk-usr-dave-1")
		k2 := w.UserKey(dave.Id, p2.Id, "sk-usr-dave-2")
		if _, err := a.DeleteUserProviderKey(ctx, &resolverv1.DeleteUserProviderKeyRequest{Id: k1.Id}); err != nil {
			t.Fatal(err)
		}
		if n := adCount(t, e, `SELECT count(*) FROM user_ai_provider_keys WHERE id = $1`, k1.Id); n != 0 {
			t.Errorf("the deleted key is still stored")
		}
		if n := adCount(t, e, `SELECT count(*) FROM user_ai_provider_keys WHERE id = $1`, k2.Id); n != 1 {
			t.Errorf("the other key was removed")
		}
	})
}
