package service

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/dbauthz"
	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/resolve"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// ReportCredentialOutcome on the fake store (fuzz_fake_test.go): recorded, then failed.
func (q *fakeQuerier) ReportCredentialOutcome(_ context.Context, keyID uuid.UUID, outcome resolve.Outcome, retryAfter time.Duration) (db.KeyReport, error) {
	q.rec("ReportCredentialOutcome", keyID, outcome, retryAfter)
	return db.KeyReport{}, errFakeStore
}

// FuzzReportCredentialOutcomeRequest: ReportCredentialOutcome refuses exactly what id("key_id"),
// outcome, retryAfter and optionalID("chat_id") refuse, records every report in the audit trail, and
// a valid one reaches the store with the parsed key id, outcome and retry_after (docs/CONTRACT.md §17).
func FuzzReportCredentialOutcomeRequest(f *testing.F) {
	for i, s := range uuidSeeds {
		f.Add(s, "", int32(i%6)-1, int64(30), int32(0), i%2 == 0)
	}
	f.Add(seedUUID, seedUUID2, int32(1), int64(-1), int32(0), true)
	f.Add(seedUUID, seedUUID2, int32(2), int64(1), int32(-5), true)
	f.Add(seedUUID, "not-a-chat", int32(3), int64(315576000001), int32(0), true)
	f.Add(seedUUID, nilUUID, int32(4), int64(0), int32(999999999), true)
	f.Add(seedUUID, "", int32(0), int64(0), int32(0), false)
	f.Fuzz(func(t *testing.T, keyID, chatID string, outcome int32, seconds int64, nanos int32, setRetry bool) {
		q, rec := &fakeQuerier{}, &fakeRecorder{}
		s := NewResolver(dbauthz.New(q), resolve.Options{AllowBYOK: true}, fuzzFPKey, rec, fuzzLog, nil)
		req := &resolverv1.ReportCredentialOutcomeRequest{KeyId: keyID, ChatId: chatID, Outcome: resolverv1.CredentialOutcome(outcome)}
		if setRetry {
			req.RetryAfter = &durationpb.Duration{Seconds: seconds, Nanos: nanos}
		}
		resp, err := s.ReportCredentialOutcome(fuzzCtx(), req)
		if resp != nil {
			t.Fatalf("the fake store answered nothing, yet ReportCredentialOutcome answered %v", resp)
		}

		var v violations
		key := v.id("key_id", keyID)
		o := v.outcome("outcome", req.GetOutcome())
		retry := v.retryAfter("retry_after", req.GetRetryAfter())
		chat := v.optionalID("chat_id", chatID)
		call := checkOutcome(t, req, err, fieldsOf(v), q, "ReportCredentialOutcome")

		if len(rec.events) != 1 {
			t.Fatalf("ReportCredentialOutcome made %d audit records, want 1", len(rec.events))
		}
		ev := rec.events[0]
		wantOutcome := string(errs.NotFound) // the fake store's answer
		if len(v) > 0 {
			wantOutcome = string(errs.InvalidArgument)
		}
		if ev.Action != "ReportCredentialOutcome" || ev.Outcome != wantOutcome || ev.Resolution != nil || ev.ChatID != chat {
			t.Fatalf("audit record %+v, want action ReportCredentialOutcome, outcome %s, chat %v", ev, wantOutcome, chat)
		}
		if len(v) > 0 {
			return
		}
		checkStoredID(t, "key_id", keyID, key, call.args[0].(uuid.UUID))
		if call.args[1].(resolve.Outcome) != o || o == "" {
			t.Fatalf("the store got outcome %v, want %v", call.args[1], o)
		}
		if got := call.args[2].(time.Duration); got != retry || got < 0 || (!setRetry && got != 0) {
			t.Fatalf("the store got retry_after %v, want %v", got, retry)
		}
		if ev.Details["key_id"] != key.String() || ev.Details["reported_outcome"] != string(o) {
			t.Fatalf("audit details %v", ev.Details)
		}
	})
}
