package service

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/resolverd/resolverd/internal/db"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// Audit listing limits.
const (
	defaultAuditLimit = 50
	maxAuditLimit     = 500
)

// pageTokenPrefix versions the opaque page token.
const pageTokenPrefix = "a1:"

// ListAuditEvents pages through the audit trail, newest first.
func (s *Admin) ListAuditEvents(ctx context.Context, req *resolverv1.ListAuditEventsRequest) (*resolverv1.ListAuditEventsResponse, error) {
	var v violations
	f := db.AuditFilter{
		ChatID:  v.optionalID("chat_id", req.GetChatId()),
		TokenID: v.optionalID("token_id", req.GetTokenId()),
		Action:  req.GetAction(),
		Limit:   int(req.GetLimit()),
	}
	switch {
	case req.GetLimit() == 0:
		f.Limit = defaultAuditLimit
	case req.GetLimit() < 0 || req.GetLimit() > maxAuditLimit:
		v.add("limit", "must be between 1 and %d (0 means %d)", maxAuditLimit, defaultAuditLimit)
	}
	v.text("action", f.Action, false)
	if t := req.GetPageToken(); t != "" {
		id, ok := parsePageToken(t)
		if !ok {
			v.add("page_token", "must be the next_page_token of an earlier ListAuditEvents response")
		}
		f.BeforeID = id
	}
	if err := v.err(); err != nil {
		return nil, s.fail(ctx, err)
	}
	want := f.Limit
	f.Limit++ // one more tells whether there is a next page
	events, err := s.store.ListAuditEvents(ctx, f)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &resolverv1.ListAuditEventsResponse{}
	if len(events) > want {
		events = events[:want]
		out.NextPageToken = pageToken(events[want-1].ID)
	}
	for _, e := range events {
		out.Events = append(out.Events, &resolverv1.AuditEvent{
			Id: strconv.FormatInt(e.ID, 10), CreatedAt: timestamppb.New(e.OccurredAt), Action: e.Action,
			TokenId: idString(e.TokenID), ChatId: idString(e.ChatID), Details: e.Details, Outcome: e.Outcome,
		})
	}
	return out, nil
}

func pageToken(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(pageTokenPrefix + strconv.FormatInt(id, 10)))
}

func parsePageToken(t string) (int64, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(t)
	if err != nil {
		return 0, false
	}
	n, ok := strings.CutPrefix(string(raw), pageTokenPrefix)
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(n, 10, 64)
	// Only what pageToken makes: no leading zeros or signs, no stray base64 bits.
	return id, err == nil && id > 0 && pageToken(id) == t
}
