package admin_test

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

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
