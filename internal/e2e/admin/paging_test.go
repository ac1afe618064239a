package admin_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/resolverd/resolverd/internal/service"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// pgList is one List call: a page of at most size rows after token, as ids in the server's order.
type pgList func(ctx context.Context, size int32, token string) (ids []string, next string, err error)

func pgProviders(a resolverv1.AdminServiceClient) pgList {
	return func(ctx context.Context, size int32, token string) ([]string, string, error) {
		resp, err := a.ListProviders(ctx, &resolverv1.ListProvidersRequest{PageSize: size, PageToken: token})
		var ids []string
		for _, p := range resp.GetProviders() {
			ids = append(ids, p.GetId())
		}
		return ids, resp.GetNextPageToken(), err
	}
}

func pgKeys(a resolverv1.AdminServiceClient, providerID string) pgList {
	return func(ctx context.Context, size int32, token string) ([]string, string, error) {
		resp, err := a.ListProviderKeys(ctx, &resolverv1.ListProviderKeysRequest{ProviderId: providerID, PageSize: size, PageToken: token})
		var ids []string
		for _, k := range resp.GetKeys() {
			ids = append(ids, k.GetId())
		}
		return ids, resp.GetNextPageToken(), err
	}
}

func pgConfigs(a resolverv1.AdminServiceClient) pgList {
	return func(ctx context.Context, size int32, token string) ([]string, string, error) {
		resp, err := a.ListModelConfigs(ctx, &resolverv1.ListModelConfigsRequest{PageSize: size, PageToken: token})
		var ids []string
		for _, c := range resp.GetModelConfigs() {
			ids = append(ids, c.GetId())
		}
		return ids, resp.GetNextPageToken(), err
	}
}

func pgTokens(a resolverv1.AdminServiceClient) pgList {
	return func(ctx context.Context, size int32, token string) ([]string, string, error) {
		resp, err := a.ListTokens(ctx, &resolverv1.ListTokensRequest{PageSize: size, PageToken: token})
		var ids []string
		for _, t := range resp.GetTokens() {
			ids = append(ids, t.GetId())
		}
		return ids, resp.GetNextPageToken(), err
	}
}

func pgIdentities(a resolverv1.AdminServiceClient) pgList {
	return func(ctx context.Context, size int32, token string) ([]string, string, error) {
		resp, err := a.ListWorkloadIdentities(ctx, &resolverv1.ListWorkloadIdentitiesRequest{PageSize: size, PageToken: token})
		var subjects []string
		for _, w := range resp.GetWorkloadIdentities() {
			subjects = append(subjects, w.GetSubject())
		}
		return subjects, resp.GetNextPageToken(), err
	}
}

// pgAudit lists the audit events of one action, with page_size (and the deprecated limit when
// limit is true, set to the same value).
func pgAudit(a resolverv1.AdminServiceClient, action string, limit bool) pgList {
	return func(ctx context.Context, size int32, token string) ([]string, string, error) {
		req := &resolverv1.ListAuditEventsRequest{Action: action, PageSize: size, PageToken: token}
		if limit {
			req.PageSize, req.Limit = 0, size
		}
		resp, err := a.ListAuditEvents(ctx, req)
		var ids []string
		for _, e := range resp.GetEvents() {
			ids = append(ids, e.GetId())
		}
		return ids, resp.GetNextPageToken(), err
	}
}

// pgAll pages through list with size rows a page and returns every id in order. It fails on a
// page of the wrong size, on an empty page with a next token, or on more pages than rows.
func pgAll(t *testing.T, ctx context.Context, list pgList, size int32) []string {
	t.Helper()
	var all []string
	token := ""
	for pages := 1; ; pages++ {
		ids, next, err := list(ctx, size, token)
		if err != nil {
			t.Fatalf("page %d (size %d): %v", pages, size, err)
		}
		if next != "" && len(ids) != int(size) {
			t.Fatalf("page %d has %d rows and a next page, want %d rows", pages, len(ids), size)
		}
		if len(ids) > int(size) {
			t.Fatalf("page %d has %d rows, more than page_size %d", pages, len(ids), size)
		}
		all = append(all, ids...)
		if next == "" {
			return all
		}
		if pages > len(all)+1 {
			t.Fatalf("%d pages for %d rows: paging does not end", pages, len(all))
		}
		token = next
	}
}

// pgCheck pages through list with several page sizes and checks each walk against one page of
// the whole list (the server's order): the same ids in the same order, none twice, and want
// among them.
func pgCheck(t *testing.T, ctx context.Context, list pgList, want []string) {
	t.Helper()
	whole, next, err := list(ctx, service.MaxPageSize, "")
	if err != nil || next != "" {
		t.Fatalf("one page of everything: %d rows, next %q, %v", len(whole), next, err)
	}
	for _, id := range want {
		if !slices.Contains(whole, id) {
			t.Fatalf("the list lacks %s", id)
		}
	}
	seen := map[string]bool{}
	for _, id := range whole {
		if seen[id] {
			t.Fatalf("%s is listed twice", id)
		}
		seen[id] = true
	}
	for _, size := range []int32{1, 2, 3, int32(len(whole)), int32(len(whole)) + 1} {
		if size == 0 {
			continue
		}
		if got := pgAll(t, ctx, list, size); !slices.Equal(got, whole) {
			t.Fatalf("pages of %d: %v\nwant the order of one page: %v", size, got, whole)
		}
	}
}

// pgWantInvalid fails unless err is INVALID_ARGUMENT naming exactly field, in the BadRequest and in
// the ErrorInfo's metadata.
func pgWantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	info := testenv.WantReason(t, err, codes.InvalidArgument, "INVALID_ARGUMENT")
	if got := info.GetMetadata()["field"]; got != field {
		t.Errorf("metadata[field] = %q, want %q", got, field)
	}
	var fields []string
	for _, v := range testenv.BadRequest(err).GetFieldViolations() {
		fields = append(fields, v.GetField())
	}
	if !slices.Equal(fields, []string{field}) {
		t.Errorf("BadRequest names %v, want [%s]", fields, field)
	}
}

func TestPagingEveryListKeepsOrderAndMissesNothing(t *testing.T) {
	w := testenv.NewWorld(t, testenv.Options{})
	ctx, a := w.AsAdmin(), w.Admin

	var providers []string
	for _, name := range []string{"pg-delta", "pg-alpha", "pg-echo", "pg-bravo", "pg-golf", "pg-charlie", "pg-foxtrot"} {
		providers = append(providers, w.Provider(name, "openai", resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL).GetId())
	}
	t.Run("ListProviders", func(t *testing.T) { pgCheck(t, ctx, pgProviders(a), providers) })

	var keys1, keys2 []string
	for i := range 5 {
		keys1 = append(keys1, w.CentralKey(providers[0], fmt.Sprintf("sk-pg-one-%d", i)).GetId())
	}
	for i := range 3 {
		keys2 = append(keys2, w.CentralKey(providers[1], fmt.Sprintf("sk-pg-two-%d", i)).GetId())
	}
	t.Run("ListProviderKeys", func(t *testing.T) { pgCheck(t, ctx, pgKeys(a, ""), append(slices.Clone(keys1), keys2...)) })
	t.Run("ListProviderKeys/provider_id", func(t *testing.T) {
		pgCheck(t, ctx, pgKeys(a, providers[0]), keys1)
		if got := pgAll(t, ctx, pgKeys(a, providers[1]), 2); !slices.Equal(got, keys2) {
			t.Fatalf("keys of the second provider: %v, want %v (oldest first)", got, keys2)
		}
	})

	// Ties on every column but the id: the keyset must still order them.
	var configs []string
	for i := range 4 {
		c, err := a.CreateModelConfig(ctx, &resolverv1.CreateModelConfigRequest{AiProviderId: providers[0], Model: "same-model",
			DisplayName: "Same", ContextLimit: 1000, IsDefault: i == 2})
		if err != nil {
			t.Fatal(err)
		}
		configs = append(configs, c.GetId())
	}
	for _, m := range []string{"zeta", "alpha", "mu"} {
		configs = append(configs, w.Config(providers[1], m, false).GetId())
	}
	t.Run("ListModelConfigs", func(t *testing.T) {
		pgCheck(t, ctx, pgConfigs(a), configs)
		first, _, err := pgConfigs(a)(ctx, 1, "")
		if err != nil || len(first) != 1 || first[0] != configs[2] {
			t.Fatalf("the first config is %v (%v), want the default %s", first, err, configs[2])
		}
	})

	// Four tokens created in one statement share created_at: the id breaks the tie.
	if _, err := w.Pool.Exec(context.Background(), `INSERT INTO api_tokens (id, name, token_hash, scopes, created_at)
SELECT gen_random_uuid(), 'pg-tie-' || g, sha256(('pg-tie-' || g)::bytea), '{chat:read}', now() FROM generate_series(1, 4) g`); err != nil {
		t.Fatal(err)
	}
	var tokens []string
	for i := range 3 {
		tok, err := a.CreateToken(ctx, &resolverv1.CreateTokenRequest{Name: fmt.Sprintf("pg-token-%d", i), Scopes: []string{"chat:read"}})
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, tok.GetId())
	}
	t.Run("ListTokens", func(t *testing.T) { pgCheck(t, ctx, pgTokens(a), tokens) })

	var subjects []string
	for _, s := range []string{"spiffe://example.org/b", "cn:b", "system:serviceaccount:x:a", "cn:a", "spiffe://example.org/a"} {
		if _, err := a.PutWorkloadIdentity(ctx, &resolverv1.PutWorkloadIdentityRequest{Subject: s, Scopes: []string{"chat:read"}}); err != nil {
			t.Fatal(err)
		}
		subjects = append(subjects, s)
	}
	t.Run("ListWorkloadIdentities", func(t *testing.T) {
		pgCheck(t, ctx, pgIdentities(a), subjects)
		if got, want := pgAll(t, ctx, pgIdentities(a), 2), slices.Sorted(slices.Values(subjects)); !slices.Equal(got, want) {
			t.Fatalf("bindings in the order %v, want by subject %v", got, want)
		}
	})

	t.Run("ListAuditEvents", func(t *testing.T) {
		pgCheck(t, ctx, pgAudit(a, "CreateProvider", false), nil)
		all := pgAll(t, ctx, pgAudit(a, "CreateProvider", false), 3)
		if len(all) != len(providers) {
			t.Fatalf("%d CreateProvider events, want %d", len(all), len(providers))
		}
		if got := pgAll(t, ctx, pgAudit(a, "CreateProvider", true), 3); !slices.Equal(got, all) {
			t.Fatalf("pages by the deprecated limit: %v, want %v", got, all)
		}
	})
}

// TestPagingKeysetSeesChangesBetweenPages: a row added before the position of the next page is not
// served (it would shift an offset and repeat a row), one added after it is, and none repeats.
func TestPagingKeysetSeesChangesBetweenPages(t *testing.T) {
	w := testenv.NewWorld(t, testenv.Options{})
	ctx, a := w.AsAdmin(), w.Admin
	for _, name := range []string{"ks-b", "ks-d", "ks-f", "ks-h"} {
		w.Provider(name, "openai", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	}
	first, err := a.ListProviders(ctx, &resolverv1.ListProvidersRequest{PageSize: 2})
	if err != nil || len(first.GetProviders()) != 2 || first.GetNextPageToken() == "" {
		t.Fatalf("first page: %v, %v", first, err)
	}
	before := w.Provider("ks-a", "openai", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	after := w.Provider("ks-g", "openai", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	var names []string
	for _, p := range first.GetProviders() {
		names = append(names, p.GetName())
	}
	ids := pgAll(t, ctx, func(ctx context.Context, size int32, token string) ([]string, string, error) {
		if token == "" {
			token = first.GetNextPageToken()
		}
		resp, err := a.ListProviders(ctx, &resolverv1.ListProvidersRequest{PageSize: size, PageToken: token})
		var ids []string
		for _, p := range resp.GetProviders() {
			ids = append(ids, p.GetId())
			names = append(names, p.GetName())
		}
		return ids, resp.GetNextPageToken(), err
	}, 2)
	if slices.Contains(ids, before.GetId()) || !slices.Contains(ids, after.GetId()) {
		t.Fatalf("later pages hold %v", names)
	}
	if want := []string{"ks-b", "ks-d", "ks-f", "ks-g", "ks-h"}; !slices.Equal(names, want) {
		t.Fatalf("pages served %v, want %v", names, want)
	}
}

// TestPagingDefaultAndMaximumPageSize: page_size 0 serves DefaultPageSize rows, a page_size above
// MaxPageSize serves MaxPageSize (AIP-158: larger is clamped, not refused).
func TestPagingDefaultAndMaximumPageSize(t *testing.T) {
	w := testenv.NewWorld(t, testenv.Options{})
	ctx, a := w.AsAdmin(), w.Admin
	const n = service.MaxPageSize + 5
	if _, err := w.Pool.Exec(context.Background(), `INSERT INTO ai_providers (id, type, name)
SELECT gen_random_uuid(), 'openai', 'bulk-' || lpad(g::text, 5, '0') FROM generate_series(1, $1) g`, n); err != nil {
		t.Fatal(err)
	}
	def, err := a.ListProviders(ctx, &resolverv1.ListProvidersRequest{})
	if err != nil || len(def.GetProviders()) != service.DefaultPageSize || def.GetNextPageToken() == "" {
		t.Fatalf("page_size 0: %d providers, next %q, %v; want %d and a next page", len(def.GetProviders()), def.GetNextPageToken(), err, service.DefaultPageSize)
	}
	big, err := a.ListProviders(ctx, &resolverv1.ListProvidersRequest{PageSize: 1 << 30})
	if err != nil || len(big.GetProviders()) != service.MaxPageSize || big.GetNextPageToken() == "" {
		t.Fatalf("page_size 2^30: %d providers, next %q, %v; want %d and a next page", len(big.GetProviders()), big.GetNextPageToken(), err, service.MaxPageSize)
	}
	rest, err := a.ListProviders(ctx, &resolverv1.ListProvidersRequest{PageSize: service.MaxPageSize, PageToken: big.GetNextPageToken()})
	if err != nil || len(rest.GetProviders()) != n-service.MaxPageSize || rest.GetNextPageToken() != "" {
		t.Fatalf("the last page: %d providers, next %q, %v; want %d and no next page", len(rest.GetProviders()), rest.GetNextPageToken(), err, n-service.MaxPageSize)
	}
	if !proto.Equal(def.GetProviders()[0], big.GetProviders()[0]) || def.GetProviders()[0].GetName() != "bulk-00001" {
		t.Fatalf("the first provider is %v, want bulk-00001", def.GetProviders()[0])
	}
}

// TestPagingRefusesBadPageSizesAndTokens: a negative page_size, and a page_token that is malformed,
// tampered with, issued by another List method or for other filters, are INVALID_ARGUMENT naming
// the field, on every List method.
func TestPagingRefusesBadPageSizesAndTokens(t *testing.T) {
	w := testenv.NewWorld(t, testenv.Options{})
	ctx, a := w.AsAdmin(), w.Admin
	p1 := w.Provider("bad-one", "openai", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	p2 := w.Provider("bad-two", "openai", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	for i := range 2 {
		w.CentralKey(p1.GetId(), fmt.Sprintf("sk-bad-one-%d", i))
		w.CentralKey(p2.GetId(), fmt.Sprintf("sk-bad-two-%d", i))
	}
	w.Config(p1.GetId(), "bad-a", true)
	w.Config(p1.GetId(), "bad-b", false)

	lists := map[string]pgList{
		"ListProviders": pgProviders(a), "ListProviderKeys": pgKeys(a, ""), "ListModelConfigs": pgConfigs(a),
		"ListTokens": pgTokens(a), "ListAuditEvents": pgAudit(a, "", false), "ListWorkloadIdentities": pgIdentities(a),
	}
	for _, s := range []string{"cn:bad-one", "cn:bad-two"} {
		if _, err := a.PutWorkloadIdentity(ctx, &resolverv1.PutWorkloadIdentityRequest{Subject: s, Scopes: []string{"chat:read"}}); err != nil {
			t.Fatal(err)
		}
	}
	next := map[string]string{}
	for name, list := range lists {
		_, tok, err := list(ctx, 1, "")
		if err != nil || tok == "" {
			t.Fatalf("%s: a first page of 1 gave next %q, %v", name, tok, err)
		}
		next[name] = tok
	}
	for name, list := range lists {
		t.Run(name, func(t *testing.T) {
			_, _, err := list(ctx, -1, "")
			pgWantInvalid(t, err, "page_size")
			tok := next[name]
			swap := map[bool]string{true: "B", false: "A"}[tok[len(tok)/2] == 'A']
			tampered := tok[:len(tok)/2] + swap + tok[len(tok)/2+1:]
			for what, bad := range map[string]string{"garbage": "not-a-token", "tampered": tampered, "padded": tok + "=",
				"old format": "YTE6MQ", "with a line break": tok[:4] + "\n" + tok[4:]} {
				_, _, err := list(ctx, 1, bad)
				t.Run(what, func(t *testing.T) { pgWantInvalid(t, err, "page_token") })
			}
			for other, foreign := range next {
				if other != name {
					_, _, err := list(ctx, 1, foreign)
					t.Run("token of "+other, func(t *testing.T) { pgWantInvalid(t, err, "page_token") })
				}
			}
			if _, _, err := list(ctx, 2, tok); err != nil {
				t.Fatalf("its own token with another page_size (allowed): %v", err)
			}
		})
	}

	t.Run("ListProviderKeys/other provider_id", func(t *testing.T) {
		_, tok, err := pgKeys(a, p1.GetId())(ctx, 1, "")
		if err != nil || tok == "" {
			t.Fatalf("first page: %q, %v", tok, err)
		}
		for _, filter := range []string{p2.GetId(), ""} {
			_, _, err := pgKeys(a, filter)(ctx, 1, tok)
			pgWantInvalid(t, err, "page_token")
		}
		_, _, err = pgKeys(a, p1.GetId())(ctx, 1, next["ListProviderKeys"])
		pgWantInvalid(t, err, "page_token")
	})

	t.Run("ListAuditEvents/other filters", func(t *testing.T) {
		first, err := a.ListAuditEvents(ctx, &resolverv1.ListAuditEventsRequest{Action: "AddProviderKey", PageSize: 1})
		if err != nil || first.GetNextPageToken() == "" {
			t.Fatalf("first page: %v, %v", first, err)
		}
		tok := first.GetNextPageToken()
		for _, req := range []*resolverv1.ListAuditEventsRequest{
			{Action: "CreateProvider", PageToken: tok}, {PageToken: tok},
			{Action: "AddProviderKey", ChatId: uuid.NewString(), PageToken: tok},
			{Action: "AddProviderKey", TokenId: uuid.NewString(), PageToken: tok},
		} {
			_, err := a.ListAuditEvents(ctx, req)
			pgWantInvalid(t, err, "page_token")
		}
		if _, err := a.ListAuditEvents(ctx, &resolverv1.ListAuditEventsRequest{Action: "AddProviderKey", PageToken: tok}); err != nil {
			t.Fatalf("the same filters: %v", err)
		}
	})

	t.Run("ListAuditEvents/limit and page_size", func(t *testing.T) {
		_, err := a.ListAuditEvents(ctx, &resolverv1.ListAuditEventsRequest{Limit: 2, PageSize: 3})
		pgWantInvalid(t, err, "page_size")
		both, err := a.ListAuditEvents(ctx, &resolverv1.ListAuditEventsRequest{Limit: 2, PageSize: 2})
		if err != nil || len(both.GetEvents()) != 2 {
			t.Fatalf("limit = page_size = 2: %d events, %v", len(both.GetEvents()), err)
		}
		// limit keeps its old bounds, even when page_size agrees with it.
		for _, req := range []*resolverv1.ListAuditEventsRequest{{Limit: -1}, {Limit: 501}, {Limit: 501, PageSize: 501}} {
			_, err := a.ListAuditEvents(ctx, req)
			pgWantInvalid(t, err, "limit")
		}
		big, err := a.ListAuditEvents(ctx, &resolverv1.ListAuditEventsRequest{PageSize: 501})
		if err != nil || big.GetNextPageToken() != "" {
			t.Fatalf("page_size 501 (allowed, unlike limit 501): %v", err)
		}
	})
}
