package db

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/resolve"
)

// configColumns and providerColumns are read together: a config always comes with its provider.
const (
	configColumns   = `m.id, m.ai_provider_id, m.model, m.display_name, m.enabled, m.is_default, m.deleted, m.context_limit, m.compression_threshold, m.options, m.created_at, m.updated_at`
	providerColumns = `p.id, p.type, p.name, p.display_name, p.base_url, p.enabled, p.deleted, p.byok_policy, p.created_at, p.updated_at, p.central_key_policy`
)

// The chat and every config a resolution may need (the requested one, the chat's own, the live
// default), each joined with its provider, and optionally the keys of those providers: one batch,
// one round trip.
const (
	snapshotChatSQL    = `SELECT id, owner_id, last_model_config_id FROM chats WHERE id = $1`
	snapshotConfigsSQL = `SELECT ` + configColumns + `, ` + providerColumns + `
FROM chat_model_configs m LEFT JOIN ai_providers p ON p.id = m.ai_provider_id
WHERE m.id = $1
   OR m.id = (SELECT last_model_config_id FROM chats WHERE id = $2)
   OR (m.is_default AND NOT m.deleted)`
	candidateProvidersCTE = `WITH cand AS (
  SELECT DISTINCT m.ai_provider_id AS id FROM chat_model_configs m
   WHERE (m.id = $1 OR m.id = (SELECT last_model_config_id FROM chats WHERE id = $2) OR (m.is_default AND NOT m.deleted))
     AND m.ai_provider_id IS NOT NULL)
`
	// Every enabled central key of each candidate provider, oldest first, with its health: the
	// pool a resolution chooses from in memory (docs/CONTRACT.md §2.2).
	snapshotCentralKeysSQL = candidateProvidersCTE + `SELECT k.provider_id, k.id, k.api_key, k.api_key_key_id, k.cooling_until, k.suspended_at
FROM ai_provider_keys k JOIN cand ON cand.id = k.provider_id
WHERE k.enabled ORDER BY k.provider_id, k.created_at, k.id`
	snapshotUserKeysSQL = candidateProvidersCTE + `SELECT k.ai_provider_id, k.id, k.api_key, k.api_key_key_id, NULL::timestamptz, k.suspended_at, k.user_id
FROM user_ai_provider_keys k JOIN cand ON cand.id = k.ai_provider_id
WHERE k.user_id = (SELECT owner_id FROM chats WHERE id = $2)`
)

// Prefetch says which key tables a resolution load also reads. The scope-checking layer sets
// them only for tables the caller may read.
type Prefetch struct {
	UserKeys, CentralKeys bool
}

// Loaded is everything one resolution load read.
type Loaded struct {
	Snapshot *resolve.Snapshot
	// UserKeys (the chat owner's) and CentralKeys (every enabled one, oldest first) hold, when
	// prefetched, an entry for every provider of Snapshot.Configs; nil means that provider has no
	// such key. The keys are still sealed: a resolution opens only the one it answers with
	// (docs/CONTRACT.md §7.1), so a damaged row fails no resolution that does not answer with it.
	UserKeys    map[uuid.UUID]*resolve.Key
	CentralKeys map[uuid.UUID][]*resolve.Key
}

// ResolutionSnapshot reads what resolve.Resolve decides on. requestedConfigID may be uuid.Nil. The
// store keeps nothing between calls, so it does not prefetch keys: the rules read the ones they
// need. (internal/cachedstore prefetches into its cache.)
func (s *Store) ResolutionSnapshot(ctx context.Context, chatID, requestedConfigID uuid.UUID, _ Prefetch) (*resolve.Snapshot, error) {
	l, err := s.LoadResolution(ctx, chatID, requestedConfigID, Prefetch{})
	if err != nil {
		return nil, err
	}
	return l.Snapshot, nil
}

// LoadResolution reads the snapshot and the prefetched keys in one round trip.
//
// The statements run in one REPEATABLE READ transaction, inside the same batch, so they all see
// one snapshot of the database. Under READ COMMITTED each would see its own moment, and a change
// committed between them (a chat given to another owner, a config moved to another provider) would
// combine into a state that never existed — one owner's keys filed under another, a provider
// recorded as keyless — which the cache would then keep until the change's notification or its TTL.
func (s *Store) LoadResolution(ctx context.Context, chatID, requestedConfigID uuid.UUID, pre Prefetch) (*Loaded, error) {
	batch := &pgx.Batch{}
	batch.Queue(`BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY`)
	batch.Queue(snapshotChatSQL, chatID)
	batch.Queue(snapshotConfigsSQL, nullUUID(requestedConfigID), chatID)
	if pre.CentralKeys {
		batch.Queue(snapshotCentralKeysSQL, nullUUID(requestedConfigID), chatID)
	}
	if pre.UserKeys {
		batch.Queue(snapshotUserKeysSQL, nullUUID(requestedConfigID), chatID)
	}
	// COMMIT ends it; if a statement fails, PostgreSQL skips the rest, the transaction stays open
	// and aborted, and the pool discards the connection rather than reuse it (pgxpool does so for
	// any connection not idle outside a transaction).
	batch.Queue(`COMMIT`)
	br := s.pool.SendBatch(ctx, batch)
	defer br.Close()

	if _, err := br.Exec(); err != nil {
		return nil, fmt.Errorf("read chat %s: %w", chatID, classify(err))
	}
	snap := &resolve.Snapshot{Configs: map[uuid.UUID]*resolve.ModelConfig{}}
	var chatModel *uuid.UUID
	err := br.QueryRow().Scan(&snap.Chat.ID, &snap.Chat.OwnerID, &chatModel)
	if notFound(err) {
		return nil, errs.New(errs.ChatNotFound, fmt.Sprintf("chat %s does not exist", chatID), "chat_id", chatID.String())
	}
	if err != nil {
		return nil, fmt.Errorf("read chat %s: %w", chatID, classify(err))
	}
	if chatModel != nil {
		snap.Chat.ModelConfigID = *chatModel
	}
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("read the model configs of chat %s: %w", chatID, classify(err))
	}
	for rows.Next() {
		c, err := scanConfigWithProvider(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("read the model configs of chat %s: %w", chatID, classify(err))
		}
		snap.Configs[c.ID] = &c.ModelConfig
		if c.IsDefault && !c.Deleted {
			snap.DefaultID = c.ID
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the model configs of chat %s: %w", chatID, classify(err))
	}
	out := &Loaded{Snapshot: snap}
	// readKeys reads one key table's rows, calling put with each row's provider and key.
	readKeys := func(table string, put func(provider uuid.UUID, k *resolve.Key)) error {
		rows, err := br.Query()
		if err != nil {
			return fmt.Errorf("read the %s of chat %s: %w", table, chatID, classify(err))
		}
		defer rows.Close()
		for rows.Next() {
			var (
				providerID, id, userID uuid.UUID
				sealed                 string
				keyID                  *string
				cooling, suspended     *time.Time
				scan                   = []any{&providerID, &id, &sealed, &keyID, &cooling, &suspended}
			)
			if table == userKeysTable {
				scan = append(scan, &userID)
			}
			if err := rows.Scan(scan...); err != nil {
				return fmt.Errorf("read the %s of chat %s: %w", table, chatID, classify(err))
			}
			at := centralPlace(id, providerID)
			if table == userKeysTable {
				at = userPlace(id, userID, providerID)
			}
			put(providerID, s.keyWithHealth(at, sealed, keyID, cooling, suspended))
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read the %s of chat %s: %w", table, chatID, classify(err))
		}
		return nil
	}
	if pre.CentralKeys {
		out.CentralKeys = map[uuid.UUID][]*resolve.Key{}
		for _, c := range snap.Configs {
			if c.ProviderID != uuid.Nil {
				out.CentralKeys[c.ProviderID] = nil
			}
		}
		if err := readKeys(centralKeysTable, func(p uuid.UUID, k *resolve.Key) { out.CentralKeys[p] = append(out.CentralKeys[p], k) }); err != nil {
			return nil, err
		}
	}
	if pre.UserKeys {
		out.UserKeys = map[uuid.UUID]*resolve.Key{}
		for _, c := range snap.Configs {
			if c.ProviderID != uuid.Nil {
				out.UserKeys[c.ProviderID] = nil
			}
		}
		if err := readKeys(userKeysTable, func(p uuid.UUID, k *resolve.Key) { out.UserKeys[p] = k }); err != nil {
			return nil, err
		}
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("read chat %s: %w", chatID, classify(err))
	}
	return out, nil
}

// UserKey returns the user's own key for the provider (sealed: opened when chosen; with its mark of
// invalid, if any), or nil when the user has none.
func (s *Store) UserKey(ctx context.Context, userID, providerID uuid.UUID) (*resolve.Key, error) {
	var (
		id         uuid.UUID
		ciphertext string
		keyID      *string
		suspended  *time.Time
	)
	err := s.pool.QueryRow(ctx, `SELECT id, api_key, api_key_key_id, suspended_at FROM user_ai_provider_keys
WHERE user_id = $1 AND ai_provider_id = $2`, userID, providerID).Scan(&id, &ciphertext, &keyID, &suspended)
	if notFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the key of user %s for provider %s: %w", userID, providerID, classify(err))
	}
	return s.keyWithHealth(userPlace(id, userID, providerID), ciphertext, keyID, nil, suspended), nil
}

func nullUUID(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}

// ResolutionLoadPlans shows how PostgreSQL runs LoadResolution's batch for chatID (EXPLAIN, no
// costs): for `make bench` to show that the cold path uses indexes on large tables.
func ResolutionLoadPlans(ctx context.Context, conn *pgx.Conn, chatID uuid.UUID) ([]string, error) {
	queries := []struct {
		name string
		sql  string
		args []any
	}{
		{"chat", snapshotChatSQL, []any{chatID}},
		{"configs and providers", snapshotConfigsSQL, []any{nil, chatID}},
		{"enabled central keys", snapshotCentralKeysSQL, []any{nil, chatID}},
		{"the owner's keys", snapshotUserKeysSQL, []any{nil, chatID}},
	}
	var out []string
	for _, q := range queries {
		rows, err := conn.Query(ctx, "EXPLAIN (COSTS OFF) "+q.sql, q.args...)
		if err != nil {
			return nil, fmt.Errorf("explain %s: %w", q.name, err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, fmt.Errorf("explain %s: %w", q.name, err)
		}
		out = append(out, q.name+":\n    "+strings.Join(lines, "\n    "))
	}
	return out, nil
}
