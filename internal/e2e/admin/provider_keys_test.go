package admin_test

import (
	"testing"

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
		// nil: enabled left out, which means true (docs/CONTRACT.md §3: enabled defaults to true).
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
