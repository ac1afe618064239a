package db

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/resolverd/resolverd/internal/errs"
)

// constraintErrors says what a violated constraint means to the caller. The validators in
// internal/service reject bad values first; these are the backstop for what only the database can
// know (uniqueness, references) and for writers racing each other.
var constraintErrors = map[string]struct {
	reason errs.Reason
	field  string
	msg    string
}{
	"ai_providers_live_name":                           {errs.AlreadyExists, "name", "a provider with this name already exists"},
	"users_username_key":                               {errs.AlreadyExists, "username", "a user with this username already exists"},
	"users_pkey":                                       {errs.AlreadyExists, "id", "a user with this id already exists"},
	"ai_providers_pkey":                                {errs.AlreadyExists, "id", "a provider with this id already exists"},
	"chat_model_configs_one_default":                   {errs.AlreadyExists, "is_default", "another model config was made the default at the same time"},
	"user_ai_provider_keys_user_id_ai_provider_id_key": {errs.AlreadyExists, "ai_provider_id", "the user already has a key for this provider"},
	"api_tokens_token_hash_key":                        {errs.AlreadyExists, "token", "token collision; try again"},
	"chat_model_configs_ai_provider_id_fkey":           {errs.ProviderNotFound, "ai_provider_id", "the provider does not exist"},
	"ai_provider_keys_provider_id_fkey":                {errs.ProviderNotFound, "provider_id", "the provider does not exist"},
	"user_ai_provider_keys_ai_provider_id_fkey":        {errs.ProviderNotFound, "ai_provider_id", "the provider does not exist"},
	"user_ai_provider_keys_user_id_fkey":               {errs.UserNotFound, "user_id", "the user does not exist"},
	"chats_owner_id_fkey":                              {errs.UserNotFound, "owner_id", "the user does not exist"},
	"chats_last_model_config_id_fkey":                  {errs.ModelConfigNotFound, "model_config_id", "the model config does not exist"},
	"chat_model_configs_live_provider":                 {errs.InvalidArgument, "ai_provider_id", "a model config needs a provider"},
}

// classify turns a pgx error into the error a caller should see, keeping the original as the cause:
// connection and server-availability failures become DATABASE_UNAVAILABLE, known constraint
// violations their reason, cancellation and deadlines stay context errors. Anything else is returned
// unchanged and reaches the caller as INTERNAL.
func classify(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		if c, ok := constraintErrors[pgErr.ConstraintName]; ok {
			if c.reason == errs.InvalidArgument {
				return errs.Invalid(errs.FieldViolation{Field: c.field, Description: c.msg}).WithCause(err)
			}
			return errs.Wrap(err, c.reason, c.msg, "field", c.field)
		}
		switch {
		case pgErr.Code == "23514", pgErr.Code == "22P02", pgErr.Code == "22001", pgErr.Code == "22P05", pgErr.Code == "22021":
			// check_violation, invalid_text_representation, string_data_right_truncation,
			// untranslatable_character (a NUL in jsonb), character_not_in_repertoire (a NUL in
			// text): a value the validators let through. Say which constraint, not the SQL.
			return errs.Wrap(err, errs.InvalidArgument, "a value breaks the constraint "+pgErr.ConstraintName,
				"constraint", pgErr.ConstraintName)
		case strings.HasPrefix(pgErr.Code, "08"), // connection_exception
			pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03", // shutting down, cannot connect now
			pgErr.Code == "53300",                        // too_many_connections
			pgErr.Code == "40001", pgErr.Code == "40P01": // serialization failure, deadlock: safe to retry
			return errs.Wrap(err, errs.DatabaseUnavailable, "the database is unavailable; try again")
		}
		return err
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	if errors.As(err, &connectErr) || errors.As(err, &netErr) || pgconn.SafeToRetry(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, puddle.ErrClosedPool) {
		return errs.Wrap(err, errs.DatabaseUnavailable, "the database is unavailable; try again")
	}
	return err
}

// notFound reports whether err is pgx's "no rows".
func notFound(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
