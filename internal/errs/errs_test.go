package errs_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/resolverd/resolverd/internal/errs"
)

func TestErrorChain(t *testing.T) {
	cause := errors.New("connection refused")
	e := errs.Wrap(cause, errs.DatabaseUnavailable, "the database is unavailable", "chat_id", "c1")
	wrapped := fmt.Errorf("read chat c1: %w", e)
	if !errors.Is(wrapped, cause) || errs.ReasonOf(wrapped) != errs.DatabaseUnavailable || !errs.Is(wrapped, errs.DatabaseUnavailable) {
		t.Fatal("reason or cause lost through wrapping")
	}
	if !strings.Contains(wrapped.Error(), "connection refused") || !strings.Contains(wrapped.Error(), "chat_id=c1") {
		t.Fatalf("Error() = %q", wrapped.Error())
	}
	if errs.ReasonOf(cause) != "" || errs.Is(nil, errs.Internal) {
		t.Fatal("a plain error has a reason")
	}
	w := e.With("provider_id", "p1")
	if w.Metadata["provider_id"] != "p1" || e.Metadata["provider_id"] != "" || !errors.Is(w, cause) {
		t.Fatal("With must copy, keep the cause and not change the original")
	}
}

func TestInvalid(t *testing.T) {
	e := errs.Invalid(errs.FieldViolation{Field: "chat_id", Description: "must be a UUID"}, errs.FieldViolation{Field: "purpose", Description: "is required"})
	if e.Reason != errs.InvalidArgument || len(e.Violations) != 2 || e.Metadata["field"] != "chat_id" ||
		!strings.Contains(e.Message, "chat_id: must be a UUID") || !strings.Contains(e.Message, "purpose: is required") {
		t.Fatalf("%+v", e)
	}
}
