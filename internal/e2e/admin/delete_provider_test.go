package admin_test

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// TestAdminE2EDeleteProvider: a deleted provider leaves ListProviders, and resolving one of its
// configs gives PROVIDER_NOT_FOUND (docs/CONTRACT.md §2.1; within 1 second, docs/CONTRACT.md §5).
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
		testenv.Within(t, 1500*time.Millisecond, "the awaited state", func() error {
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
