package db

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// CreateToken stores a token by its hash.
func (s *Store) CreateToken(ctx context.Context, id uuid.UUID, name string, scopes []string, hash []byte, expiresAt *time.Time) (Token, error) {
	var t Token
	err := s.change(ctx, "CreateToken", func(tx pgx.Tx) (changed, error) {
		var err error
		t, err = scanToken(tx.QueryRow(ctx, `INSERT INTO api_tokens (id, name, token_hash, scopes, expires_at)
VALUES ($1, $2, $3, $4, $5) RETURNING `+tokenCols, id, name, hash, scopes, expiresAt))
		if err != nil {
			return changed{}, classify(err)
		}
		return changed{map[string]string{"new_token_id": id.String(), "name": name, "scopes": strings.Join(scopes, " ")},
			created(tokenFields(t))}, nil
	})
	if err != nil {
		return Token{}, fmt.Errorf("create token %q: %w", name, err)
	}
	return t, nil
}

// RevokeToken revokes token id; revoking it again keeps the first revocation time.
// RevokeToken revokes the token if allowed (given its scopes, read under a row lock) says so.
func (s *Store) RevokeToken(ctx context.Context, id uuid.UUID, allowed func(scopes []string) error) error {
	err := s.change(ctx, "RevokeToken", func(tx pgx.Tx) (changed, error) {
		before, err := scanToken(tx.QueryRow(ctx, `SELECT `+tokenCols+` FROM api_tokens WHERE id = $1 FOR UPDATE`, id))
		if notFound(err) {
			return changed{}, errNotFound("token", id)
		}
		if err != nil {
			return changed{}, classify(err)
		}
		if allowed != nil {
			if err := allowed(before.Scopes); err != nil {
				return changed{}, err
			}
		}
		after, err := scanToken(tx.QueryRow(ctx, `UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1
RETURNING `+tokenCols, id))
		if err != nil {
			return changed{}, classify(err)
		}
		return changed{map[string]string{"revoked_token_id": id.String(), "name": before.Name, "scopes": strings.Join(before.Scopes, " ")},
			diff(tokenFields(before), tokenFields(after))}, nil
	})
	if err != nil {
		return fmt.Errorf("revoke token %s: %w", id, err)
	}
	return nil
}

// tokenFields are a token's fields as its audit records list them (never the token or its hash).
func tokenFields(t Token) []field {
	at := func(p *time.Time) string {
		if p == nil {
			return ""
		}
		return p.UTC().Format(time.RFC3339Nano)
	}
	return []field{{"name", t.Name}, {"scopes", strings.Join(t.Scopes, " ")}, {"expires_at", at(t.ExpiresAt)}, {"revoked_at", at(t.RevokedAt)}}
}

// ListTokens returns a page of every token (revoked and expired ones too), newest first (then by id).
func (s *Store) ListTokens(ctx context.Context, p Page[TokenPos]) ([]Token, error) {
	var created *time.Time
	var id *uuid.UUID
	if a := p.After; a != nil {
		created, id = &a.CreatedAt, &a.ID
	}
	return list(ctx, s, "tokens", `SELECT `+tokenCols+` FROM api_tokens
WHERE $1::timestamptz IS NULL OR created_at < $1 OR (created_at = $1 AND id > $2::uuid)
ORDER BY created_at DESC, id LIMIT $3`, scanToken, created, id, p.limit())
}

// GetToken returns token id, revoked or expired as it may be; a missing one is NOT_FOUND.
func (s *Store) GetToken(ctx context.Context, id uuid.UUID) (Token, error) {
	return get(ctx, s, "token", `SELECT `+tokenCols+` FROM api_tokens WHERE id = $1`, id, scanToken)
}

// ActiveToken returns the token with this hash when it exists, is not revoked and has not expired
// by the database's clock (one clock for every replica); ok is false otherwise.
func (s *Store) ActiveToken(ctx context.Context, hash []byte) (t Token, ok bool, err error) {
	t, err = scanToken(s.pool.QueryRow(ctx, `SELECT `+tokenCols+` FROM api_tokens
WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`, hash))
	if notFound(err) {
		return Token{}, false, nil
	}
	if err != nil {
		return Token{}, false, fmt.Errorf("look up a token: %w", classify(err))
	}
	return t, true, nil
}
