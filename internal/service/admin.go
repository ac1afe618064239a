package service

import (
	"context"
	"log/slog"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/dbauthz"
	"github.com/resolverd/resolverd/internal/egress"
	"github.com/resolverd/resolverd/internal/transport"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// Admin serves resolver.v1.AdminService. Secrets are write-only: responses carry fingerprints.
type Admin struct {
	resolverv1.UnimplementedAdminServiceServer
	store *dbauthz.Store
	fpKey []byte
	pages pageTokens
	audit Recorder // records failed calls (admin_refusals.go); nil records none
	log   *slog.Logger
	hosts *egress.AllowList // where a provider's base_url may point; nil: anywhere (AllowProviderHosts)
}

// NewAdmin returns the AdminService handler. audit records the calls that fail (RecordFailures,
// RecordRefusal); changes record themselves in their own transactions.
func NewAdmin(store *dbauthz.Store, fpKey []byte, audit Recorder, log *slog.Logger) *Admin {
	return &Admin{store: store, fpKey: fpKey, pages: newPageTokens(fpKey), audit: audit, log: log}
}

// newID is the id of a row this service creates: time-ordered, so new rows land together in indexes.
func newID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

func (s *Admin) fail(ctx context.Context, err error) error {
	return transport.ToStatus(ctx, s.log, err)
}

// enabledOr returns the value of an optional bool, or def when unset.
func enabledOr(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}

// getByID validates the request's id field, reads the row with get and converts it: the shape of
// every Get*.
func getByID[R, M any](ctx context.Context, s *Admin, raw string, get func(context.Context, uuid.UUID) (R, error), conv func(R) M) (M, error) {
	var zero M
	var v violations
	id := v.id("id", raw)
	if err := v.err(); err != nil {
		return zero, s.fail(ctx, err)
	}
	row, err := get(ctx, id)
	if err != nil {
		return zero, s.fail(ctx, err)
	}
	return conv(row), nil
}

// byID validates the request's id field and runs fn on it: the shape of every Delete* and of
// RevokeToken.
func (s *Admin) byID(ctx context.Context, raw string, fn func(context.Context, uuid.UUID) error) error {
	var v violations
	id := v.id("id", raw)
	if err := v.err(); err != nil {
		return s.fail(ctx, err)
	}
	if err := fn(ctx, id); err != nil {
		return s.fail(ctx, err)
	}
	return nil
}
