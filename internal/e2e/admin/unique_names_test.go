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
