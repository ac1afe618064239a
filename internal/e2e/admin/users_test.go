package admin_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

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
