package db_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/internal/resolve"
	"github.com/resolverd/resolverd/pkg/secret"
)

// TestLoadResolutionSeesOneSnapshot: while another session keeps handing a chat between two
// owners and two model configs (on two providers), every load returns a state that existed: the
// user keys it returns are its owner's, the chat's own config is among its configs, and each
// prefetched provider is one of those configs'. (The statements of a load used to run under READ
// COMMITTED, each at its own moment: the cache then filed one owner's keys under the other.)
func TestLoadResolutionSeesOneSnapshot(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	s := db.New(pool, pgtest.Keyring)
	if _, err := s.FingerprintKey(ctx); err != nil {
		t.Fatal(err)
	}
	mustDo := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var providers [2]uuid.UUID
	var configs [2]uuid.UUID
	for i := range providers {
		p, err := s.CreateProvider(ctx, resolve.Provider{ID: uuid.New(), Type: "openai", Name: []string{"snap-a", "snap-b"}[i], Enabled: true, BYOKPolicy: resolve.BYOKOptional})
		mustDo(err)
		providers[i] = p.ID
		_, err = s.AddProviderKey(ctx, uuid.New(), p.ID, secret.New("sk-central-"+p.Name), true)
		mustDo(err)
		c, err := s.CreateModelConfig(ctx, resolve.ModelConfig{ID: uuid.New(), ProviderID: p.ID, Model: "m", Enabled: true, IsDefault: i == 0, ContextLimit: 1000, Options: []byte("{}")})
		mustDo(err)
		configs[i] = c.ID
	}
	owners := [2]uuid.UUID{uuid.New(), uuid.New()}
	keyOf := map[uuid.UUID]string{}
	for i, o := range owners {
		_, err := s.PutUser(ctx, o, []string{"snap-alice", "snap-bob"}[i])
		mustDo(err)
		for _, p := range providers {
			k := "sk-user-" + o.String()[:8]
			_, err := s.PutUserProviderKey(ctx, uuid.New(), o, p, secret.New(k))
			mustDo(err)
			keyOf[o] = k
		}
	}
	chat := uuid.New()
	_, err := s.PutChat(ctx, chat, owners[0], configs[1])
	mustDo(err)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the other session
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := pool.Exec(ctx, `UPDATE chats SET owner_id = $2, last_model_config_id = $3 WHERE id = $1`,
				chat, owners[i%2], configs[(i/2)%2]); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	loads := 0
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); loads++ {
		l, err := s.LoadResolution(ctx, chat, uuid.Nil, db.Prefetch{UserKeys: true, CentralKeys: true})
		mustDo(err)
		snap := l.Snapshot
		if _, ok := snap.Configs[snap.Chat.ModelConfigID]; !ok {
			t.Fatalf("load %d: the chat's config %s is not among the configs read", loads, snap.Chat.ModelConfigID)
		}
		providersRead := map[uuid.UUID]bool{}
		for _, c := range snap.Configs {
			providersRead[c.ProviderID] = true
		}
		for p := range l.UserKeys {
			if !providersRead[p] {
				t.Fatalf("load %d: user keys for provider %s, whose config was not read", loads, p)
			}
		}
		for p := range l.CentralKeys {
			if !providersRead[p] {
				t.Fatalf("load %d: central keys for provider %s, whose config was not read", loads, p)
			}
		}
		for p, k := range l.UserKeys {
			if k == nil {
				t.Fatalf("load %d: no user key for provider %s, though both owners have one", loads, p)
			}
			got, _, err := k.Open(ctx)
			mustDo(err)
			if got.Reveal() != keyOf[snap.Chat.OwnerID] {
				t.Fatalf("load %d: owner %s read with another user's key", loads, snap.Chat.OwnerID)
			}
		}
	}
	t.Logf("%d consistent loads while the chat changed hands", loads)
}
