package service

import (
	"context"
	"net/url"
	"strconv"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/resolverd/resolverd/internal/db"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// maxAuditLimit bounds ListAuditEventsRequest's deprecated limit field, as it always has.
const maxAuditLimit = 500

// ListAuditEvents pages through the audit trail, newest first. Its keyset position is the event id.
func (s *Admin) ListAuditEvents(ctx context.Context, req *resolverv1.ListAuditEventsRequest) (*resolverv1.ListAuditEventsResponse, error) {
	var v violations
	chat := v.optionalID("chat_id", req.GetChatId())
	token := v.optionalID("token_id", req.GetTokenId())
	action := req.GetAction()
	v.text("action", action, false)
	size := v.pageSize("page_size", req.GetPageSize())
	switch limit := req.GetLimit(); {
	case limit == 0:
	case limit < 0 || limit > maxAuditLimit:
		v.add("limit", "must be between 1 and %d (0 leaves the size to page_size); limit is deprecated: use page_size", maxAuditLimit)
	case req.GetPageSize() != 0 && req.GetPageSize() != limit:
		v.add("page_size", "differs from the deprecated limit (%d); set page_size alone", limit)
	default:
		size = int(limit)
	}
	pg := newPager[int64](&v, s.pages, "ListAuditEvents", auditFilter(chat, token, action), size, req.GetPageToken())
	if err := v.err(); err != nil {
		return nil, s.fail(ctx, err)
	}
	list := func(ctx context.Context, p db.Page[int64]) ([]db.AuditEvent, error) {
		f := db.AuditFilter{ChatID: chat, TokenID: token, Action: action, Limit: p.Limit}
		if p.After != nil {
			f.BeforeID = *p.After
		}
		return s.store.ListAuditEvents(ctx, f)
	}
	pos := func(e db.AuditEvent) int64 { return e.ID }
	events, next, err := serve(ctx, pg, list, pos, auditEventProto)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &resolverv1.ListAuditEventsResponse{Events: events, NextPageToken: next}, nil
}

// auditFilter renders ListAuditEvents' filters for its page tokens, with the parsed ids: a token
// issued for an upper-case chat_id serves the same chat_id in lower case.
func auditFilter(chat, token uuid.UUID, action string) string {
	return url.Values{"chat_id": {idString(chat)}, "token_id": {idString(token)}, "action": {action}}.Encode()
}

func auditEventProto(e db.AuditEvent) *resolverv1.AuditEvent {
	out := &resolverv1.AuditEvent{
		Id: strconv.FormatInt(e.ID, 10), CreatedAt: timestamppb.New(e.OccurredAt), Action: e.Action,
		TokenId: idString(e.TokenID), ChatId: idString(e.ChatID), Details: e.Details, Outcome: e.Outcome,
		Subject: e.Subject, Count: 1, FirstAt: timestamppb.New(e.OccurredAt), LastAt: timestamppb.New(e.OccurredAt),
	}
	if e.Summary() {
		out.Count, out.FirstAt, out.LastAt = int64(e.Count), timestamppb.New(e.FirstAt), timestamppb.New(e.LastAt)
	}
	for _, c := range e.Changes {
		fc := &resolverv1.AuditFieldChange{Field: c.Field}
		if c.HasBefore {
			fc.Before = proto.String(c.Before)
		}
		if c.HasAfter {
			fc.After = proto.String(c.After)
		}
		out.Changes = append(out.Changes, fc)
	}
	return out
}
