package main

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/keyring"
	"github.com/resolverd/resolverd/internal/resolve"
	"github.com/resolverd/resolverd/pkg/secret"
)

// seedSet is what the phases resolve.
type seedSet struct {
	warmChats []uuid.UUID // one provider, a central key, BYOK optional: the hot path
	coldChats []uuid.UUID // chats of the big data set nobody has resolved yet
	// The propagation trials toggle propChatConfig's enabled flag: the chat's answer moves
	// between its own config and the default.
	propChat, propChatConfig uuid.UUID
	big                      bool
	// pools is the key pools' data (pools.go).
	pools *poolSet
}

const (
	warmChats  = 1000
	bigProv    = 1000
	bigConfigs = 10_000
	bigChats   = 100_000
	keysPerUsr = 10 // bigChats users × keysPerUsr = 1,000,000 user keys
)

func seed(ctx context.Context, url string, kr *keyring.Keyring, big bool, logf func(string, ...any)) (*seedSet, error) {
	pool, err := db.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	s := db.New(pool, kr)
	set := &seedSet{big: big}

	p, err := s.CreateProvider(ctx, resolve.Provider{ID: uuid.New(), Type: "openai", Name: "bench-openai", Enabled: true, BYOKPolicy: resolve.BYOKOptional})
	if err != nil {
		return nil, err
	}
	if _, err := s.AddProviderKey(ctx, uuid.New(), p.ID, secret.New("sk-bench-central"), true); err != nil {
		return nil, err
	}
	def, err := s.CreateModelConfig(ctx, resolve.ModelConfig{ID: uuid.New(), ProviderID: p.ID, Model: "bench-default", Enabled: true, IsDefault: true,
		ContextLimit: 128000, CompressionThreshold: 70, Options: []byte(`{"temperature": 0.2, "max_tokens": 4096}`)})
	if err != nil {
		return nil, err
	}
	prop, err := s.CreateModelConfig(ctx, resolve.ModelConfig{ID: uuid.New(), ProviderID: p.ID, Model: "bench-propagation", Enabled: true,
		ContextLimit: 128000, CompressionThreshold: 70, Options: []byte(`{}`)})
	if err != nil {
		return nil, err
	}
	set.propChatConfig = prop.ID

	// The warm set: users and chats on the default config, written with COPY.
	users := make([][]any, 0, warmChats+1)
	chats := make([][]any, 0, warmChats+1)
	for i := range warmChats + 1 {
		u, c := uuid.New(), uuid.New()
		users = append(users, []any{u, fmt.Sprintf("warm%d", i)})
		cfg := def.ID
		if i == warmChats {
			cfg, set.propChat = prop.ID, c
		} else {
			set.warmChats = append(set.warmChats, c)
		}
		chats = append(chats, []any{c, u, cfg})
	}
	if err := copyRows(ctx, pool.Config().ConnConfig.ConnString(), "users", []string{"id", "username"}, users); err != nil {
		return nil, err
	}
	if err := copyRows(ctx, pool.Config().ConnConfig.ConnString(), "chats", []string{"id", "owner_id", "last_model_config_id"}, chats); err != nil {
		return nil, err
	}
	if set.pools, err = seedPools(ctx, s, pool); err != nil {
		return nil, err
	}
	if big {
		if err := seedBig(ctx, pool.Config().ConnConfig.ConnString(), kr, set, logf); err != nil {
			return nil, err
		}
	}
	if _, err := pool.Exec(ctx, "ANALYZE"); err != nil {
		return nil, err
	}
	return set, nil
}

// seedBig writes 1,000 providers (a sealed central key each), 10,000 configs, 100,000 users with a
// chat each, and 1,000,000 user keys (sealed), with COPY and the change triggers off (nothing
// listens yet; a million notifications would only slow the load).
func seedBig(ctx context.Context, connString string, kr *keyring.Keyring, set *seedSet, logf func(string, ...any)) error {
	types := resolve.ProviderTypes
	// Every chat must resolve: BYOK-optional providers answer with the owner's key (each owner
	// has one for their chat's provider), BYOK-disabled ones with the central key.
	policies := []string{"disabled", "optional"}
	providers := make([]uuid.UUID, bigProv)
	var provRows, keyRows [][]any
	for i := range bigProv {
		providers[i] = uuid.New()
		provRows = append(provRows, []any{providers[i], types[i%len(types)], fmt.Sprintf("big-%04d", i), policies[i%2]})
		id := uuid.New()
		ct, kid, err := kr.Seal(secret.New(fmt.Sprintf("sk-big-central-%04d", i)),
			keyring.Place{Table: "ai_provider_keys", RowID: id, ProviderID: providers[i]})
		if err != nil {
			return err
		}
		keyRows = append(keyRows, []any{id, providers[i], ct, kid})
	}
	configs := make([]uuid.UUID, bigConfigs)
	var cfgRows [][]any
	for i := range bigConfigs {
		configs[i] = uuid.New()
		cfgRows = append(cfgRows, []any{configs[i], providers[i%bigProv], fmt.Sprintf("big-model-%05d", i)})
	}
	var userRows, chatRows [][]any
	users := make([]uuid.UUID, bigChats)
	for i := range bigChats {
		users[i] = uuid.New()
		c := uuid.New()
		userRows = append(userRows, []any{users[i], fmt.Sprintf("big%06d", i)})
		chatRows = append(chatRows, []any{c, users[i], configs[i%bigConfigs]})
		set.coldChats = append(set.coldChats, c)
	}
	start := time.Now()
	ukRows := make([][]any, 0, bigChats*keysPerUsr)
	for i, u := range users {
		for j := range keysPerUsr {
			// j = 0 is the provider of the owner's chat (config i%bigConfigs, provider i%bigProv);
			// 97·j mod 1000 keeps the ten distinct.
			id, provider := uuid.New(), providers[(i+j*97)%bigProv]
			ct, kid, err := kr.Seal(secret.New(fmt.Sprintf("sk-big-user-%06d-%d", i, j)),
				keyring.Place{Table: "user_ai_provider_keys", RowID: id, ProviderID: provider, UserID: u})
			if err != nil {
				return err
			}
			ukRows = append(ukRows, []any{id, u, provider, ct, kid})
		}
	}
	logf("sealed %d user keys in %s", len(ukRows), time.Since(start).Round(time.Millisecond))
	steps := []struct {
		table string
		cols  []string
		rows  [][]any
	}{
		{"ai_providers", []string{"id", "type", "name", "byok_policy"}, provRows},
		{"ai_provider_keys", []string{"id", "provider_id", "api_key", "api_key_key_id"}, keyRows},
		{"chat_model_configs", []string{"id", "ai_provider_id", "model"}, cfgRows},
		{"users", []string{"id", "username"}, userRows},
		{"chats", []string{"id", "owner_id", "last_model_config_id"}, chatRows},
		{"user_ai_provider_keys", []string{"id", "user_id", "ai_provider_id", "api_key", "api_key_key_id"}, ukRows},
	}
	for _, st := range steps {
		t := time.Now()
		if err := copyRows(ctx, connString, st.table, st.cols, st.rows); err != nil {
			return err
		}
		logf("copied %d rows into %s in %s", len(st.rows), st.table, time.Since(t).Round(time.Millisecond))
	}
	return nil
}

// copyRows COPYs rows into table on a connection whose triggers are off (session_replication_role
// = replica: the seeding connection is the cluster's superuser).
func copyRows(ctx context.Context, connString, table string, cols []string, rows [][]any) error {
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SET session_replication_role = replica"); err != nil {
		return err
	}
	if table == "ai_provider_keys" || table == "user_ai_provider_keys" {
		// The sealing key must be registered (encryption_keys) for the foreign key.
		if _, err := conn.Exec(ctx, `INSERT INTO encryption_keys (id) SELECT DISTINCT unnest($1::text[]) ON CONFLICT DO NOTHING`, keyIDs(rows, len(cols)-1)); err != nil {
			return err
		}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("copy into %s: %w", table, err)
	}
	return nil
}

func keyIDs(rows [][]any, col int) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range rows {
		if id := r[col].(string); !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
