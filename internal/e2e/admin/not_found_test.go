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
// NOT_FOUND/NOT_FOUND naming the id, and changes nothing (docs/CONTRACT.md §3).
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
