package admin_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// adCase is one refused request of the validation table.
type adCase struct {
	name   string
	fields []string // the field violations expected, one per field
	leak   []string // values that must not appear in the refusal
	call   func(context.Context) error
}

func TestAdminE2EValidation(t *testing.T) {
	t.Parallel()
	w := testenv.NewWorld(t, testenv.Options{})
	e, a := w.Env, w.Admin
	p := w.Provider("val-openai", "openai", resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL)
	k := w.CentralKey(p.Id, "sk-val-central-1")
	c := w.Config(p.Id, "gpt-val", true)
	u := w.User("val-alice")
	uk := w.UserKey(u.Id, p.Id, "sk-val-user-1")
	chat := w.Chat(u.Id, c.Id)
	tok, err := a.CreateToken(e.AsAdmin(), &resolverv1.CreateTokenRequest{Name: "val-token", Scopes: []string{"chat:read"}})
	if err != nil {
		t.Fatal(err)
	}

	var cases []adCase
	add := func(name string, fields []string, call func(context.Context) error, leak ...string) {
		cases = append(cases, adCase{name: name, fields: fields, call: call, leak: leak})
	}

	// Ids: every id field of every request. Malformed forms are built from a live id, so a server
	// that parsed them leniently would act on a real row and change the snapshot.
	type idField struct {
		method, field string
		optional      bool
		live          string
		call          func(ctx context.Context, id string) error
	}
	idFields := []idField{
		{"UpdateProvider", "id", false, p.Id, func(ctx context.Context, id string) error {
			_, err := a.UpdateProvider(ctx, &resolverv1.UpdateProviderRequest{Id: id, DisplayName: proto.String("changed")})
			return err
		}},
		{"DeleteProvider", "id", false, p.Id, func(ctx context.Context, id string) error {
			_, err := a.DeleteProvider(ctx, &resolverv1.DeleteProviderRequest{Id: id})
			return err
		}},
		{"AddProviderKey", "provider_id", false, p.Id, func(ctx context.Context, id string) error {
			_, err := a.AddProviderKey(ctx, &resolverv1.AddProviderKeyRequest{ProviderId: id, ApiKey: "sk-val-new"})
			return err
		}},
		{"RotateProviderKey", "provider_id", false, p.Id, func(ctx context.Context, id string) error {
			_, err := a.RotateProviderKey(ctx, &resolverv1.RotateProviderKeyRequest{ProviderId: id, ApiKey: "sk-val-rotated"})
			return err
		}},
		{"SetProviderKeyEnabled", "id", false, k.Id, func(ctx context.Context, id string) error {
			_, err := a.SetProviderKeyEnabled(ctx, &resolverv1.SetProviderKeyEnabledRequest{Id: id, Enabled: proto.Bool(false)})
			return err
		}},
		{"DeleteProviderKey", "id", false, k.Id, func(ctx context.Context, id string) error {
			_, err := a.DeleteProviderKey(ctx, &resolverv1.DeleteProviderKeyRequest{Id: id})
			return err
		}},
		{"ListProviderKeys", "provider_id", true, p.Id, func(ctx context.Context, id string) error {
			_, err := a.ListProviderKeys(ctx, &resolverv1.ListProviderKeysRequest{ProviderId: id})
			return err
		}},
		{"CreateModelConfig", "ai_provider_id", false, p.Id, func(ctx context.Context, id string) error {
			_, err := a.CreateModelConfig(ctx, &resolverv1.CreateModelConfigRequest{AiProviderId: id, Model: "m", ContextLimit: 1000, CompressionThreshold: 50})
			return err
		}},
		{"UpdateModelConfig", "id", false, c.Id, func(ctx context.Context, id string) error {
			_, err := a.UpdateModelConfig(ctx, &resolverv1.UpdateModelConfigRequest{Id: id, DisplayName: proto.String("changed")})
			return err
		}},
		{"UpdateModelConfig", "ai_provider_id", false, p.Id, func(ctx context.Context, id string) error {
			_, err := a.UpdateModelConfig(ctx, &resolverv1.UpdateModelConfigRequest{Id: c.Id, AiProviderId: proto.String(id)})
			return err
		}},
		{"DeleteModelConfig", "id", false, c.Id, func(ctx context.Context, id string) error {
			_, err := a.DeleteModelConfig(ctx, &resolverv1.DeleteModelConfigRequest{Id: id})
			return err
		}},
		{"PutUser", "id", false, u.Id, func(ctx context.Context, id string) error {
			_, err := a.PutUser(ctx, &resolverv1.PutUserRequest{Id: id, Username: "val-bob"})
			return err
		}},
		{"DeleteUser", "id", false, u.Id, func(ctx context.Context, id string) error {
			_, err := a.DeleteUser(ctx, &resolverv1.DeleteUserRequest{Id: id})
			return err
		}},
		{"PutUserProviderKey", "user_id", false, u.Id, func(ctx context.Context, id string) error {
			_, err := a.PutUserProviderKey(ctx, &resolverv1.PutUserProviderKeyRequest{UserId: id, AiProviderId: p.Id, ApiKey: "sk-val-user-2"})
			return err
		}},
		{"PutUserProviderKey", "ai_provider_id", false, p.Id, func(ctx context.Context, id string) error {
			_, err := a.PutUserProviderKey(ctx, &resolverv1.PutUserProviderKeyRequest{UserId: u.Id, AiProviderId: id, ApiKey: "sk-val-user-2"})
			return err
		}},
		{"DeleteUserProviderKey", "id", false, uk.Id, func(ctx context.Context, id string) error {
			_, err := a.DeleteUserProviderKey(ctx, &resolverv1.DeleteUserProviderKeyRequest{Id: id})
			return err
		}},
		{"ListUserProviderKeys", "user_id", false, u.Id, func(ctx context.Context, id string) error {
			_, err := a.ListUserProviderKeys(ctx, &resolverv1.ListUserProviderKeysRequest{UserId: id})
			return err
		}},
		{"PutChat", "id", false, chat.Id, func(ctx context.Context, id string) error {
			_, err := a.PutChat(ctx, &resolverv1.PutChatRequest{Id: id, OwnerId: u.Id, ModelConfigId: c.Id})
			return err
		}},
		{"PutChat", "owner_id", false, u.Id, func(ctx context.Context, id string) error {
			_, err := a.PutChat(ctx, &resolverv1.PutChatRequest{Id: chat.Id, OwnerId: id, ModelConfigId: c.Id})
			return err
		}},
		{"PutChat", "model_config_id", true, c.Id, func(ctx context.Context, id string) error {
			_, err := a.PutChat(ctx, &resolverv1.PutChatRequest{Id: chat.Id, OwnerId: u.Id, ModelConfigId: id})
			return err
		}},
		{"RevokeToken", "id", false, tok.Id, func(ctx context.Context, id string) error {
			_, err := a.RevokeToken(ctx, &resolverv1.RevokeTokenRequest{Id: id})
			return err
		}},
		{"GetProvider", "id", false, p.Id, func(ctx context.Context, id string) error {
			_, err := a.GetProvider(ctx, &resolverv1.GetProviderRequest{Id: id})
			return err
		}},
		{"GetModelConfig", "id", false, c.Id, func(ctx context.Context, id string) error {
			_, err := a.GetModelConfig(ctx, &resolverv1.GetModelConfigRequest{Id: id})
			return err
		}},
		{"GetUser", "id", false, u.Id, func(ctx context.Context, id string) error {
			_, err := a.GetUser(ctx, &resolverv1.GetUserRequest{Id: id})
			return err
		}},
		{"GetChat", "id", false, chat.Id, func(ctx context.Context, id string) error {
			_, err := a.GetChat(ctx, &resolverv1.GetChatRequest{Id: id})
			return err
		}},
		{"GetToken", "id", false, tok.Id, func(ctx context.Context, id string) error {
			_, err := a.GetToken(ctx, &resolverv1.GetTokenRequest{Id: id})
			return err
		}},
		{"ListAuditEvents", "chat_id", true, chat.Id, func(ctx context.Context, id string) error {
			_, err := a.ListAuditEvents(ctx, &resolverv1.ListAuditEventsRequest{ChatId: id})
			return err
		}},
		{"ListAuditEvents", "token_id", true, tok.Id, func(ctx context.Context, id string) error {
			_, err := a.ListAuditEvents(ctx, &resolverv1.ListAuditEventsRequest{TokenId: id})
			return err
		}},
	}
	for _, f := range idFields {
		bad := []struct{ name, value string }{
			{"not-a-uuid", "not-a-uuid"},
			{"nil-uuid", uuid.Nil.String()},
			{"truncated", f.live[:35]},
			{"no-dashes", strings.ReplaceAll(f.live, "-", "")},
			{"braces", "{" + f.live + "}"},
			{"urn", "urn:uuid:" + f.live},
			{"non-hex", "g" + f.live[1:]},
			{"trailing-space", f.live + " "},
		}
		if !f.optional {
			bad = append(bad, struct{ name, value string }{"empty", ""})
		}
		for _, b := range bad {
			call, value := f.call, b.value
			add(f.method+"/"+f.field+"/"+b.name, []string{f.field}, func(ctx context.Context) error { return call(ctx, value) })
		}
	}

	// Provider type: only the contract's list.
	for _, typ := range []string{"", "OpenAI", "openai_compat", "azure-openai", "mistral", " openai", "openai-compat "} {
		add(fmt.Sprintf("CreateProvider/type/%q", typ), []string{"type"}, func(ctx context.Context) error {
			_, err := a.CreateProvider(ctx, &resolverv1.CreateProviderRequest{Type: typ, Name: "val-type"})
			return err
		})
	}

	// Names: ^[a-z0-9]+(-[a-z0-9]+)*$, at most 63 characters.
	badNames := []struct{ name, value string }{
		{"uppercase", "OpenAI"}, {"leading-dash", "-openai"}, {"trailing-dash", "openai-"},
		{"double-dash", "open--ai"}, {"underscore", "open_ai"}, {"empty", ""}, {"64-chars", strings.Repeat("a", 64)},
		{"space", "open ai"}, {"dot", "open.ai"}, {"non-ascii", "öpenai"}, {"newline", "openai\n"},
	}
	for _, n := range badNames {
		add("CreateProvider/name/"+n.name, []string{"name"}, func(ctx context.Context) error {
			_, err := a.CreateProvider(ctx, &resolverv1.CreateProviderRequest{Type: "openai", Name: n.value})
			return err
		})
		add("UpdateProvider/name/"+n.name, []string{"name"}, func(ctx context.Context) error {
			_, err := a.UpdateProvider(ctx, &resolverv1.UpdateProviderRequest{Id: p.Id, Name: proto.String(n.value)})
			return err
		})
	}

	// base_url: empty or an absolute http(s) URL without credentials, spaces, query or fragment.
	badURLs := []struct{ name, value string }{
		{"relative-path", "/v1"}, {"no-scheme", "api.example.com/v1"}, {"ftp", "ftp://files.example.com/v1"},
		{"userinfo", "https://valuser:valpass@api.example.com/v1"}, {"space-in-path", "https://api.example.com/v 1"},
		{"space-in-host", "https://api.exa mple.com/v1"}, {"leading-space", " https://api.example.com/v1"},
		{"query", "https://api.example.com/v1?api-version=2024"}, {"fragment", "https://api.example.com/v1#top"},
		{"no-host", "https://"}, {"javascript", "javascript:alert(1)"},
	}
	for _, u := range badURLs {
		add("CreateProvider/base_url/"+u.name, []string{"base_url"}, func(ctx context.Context) error {
			_, err := a.CreateProvider(ctx, &resolverv1.CreateProviderRequest{Type: "openai", Name: "val-url", BaseUrl: u.value})
			return err
		}, "valpass")
		add("UpdateProvider/base_url/"+u.name, []string{"base_url"}, func(ctx context.Context) error {
			_, err := a.UpdateProvider(ctx, &resolverv1.UpdateProviderRequest{Id: p.Id, BaseUrl: proto.String(u.value)})
			return err
		}, "valpass")
	}

	// byok_policy: an enum value outside ByokPolicy.
	for _, pol := range []resolverv1.ByokPolicy{42, -1} {
		add(fmt.Sprintf("CreateProvider/byok_policy/%d", pol), []string{"byok_policy"}, func(ctx context.Context) error {
			_, err := a.CreateProvider(ctx, &resolverv1.CreateProviderRequest{Type: "openai", Name: "val-pol", ByokPolicy: pol})
			return err
		})
		add(fmt.Sprintf("UpdateProvider/byok_policy/%d", pol), []string{"byok_policy"}, func(ctx context.Context) error {
			_, err := a.UpdateProvider(ctx, &resolverv1.UpdateProviderRequest{Id: p.Id, ByokPolicy: pol})
			return err
		})
	}

	// central_key_policy: an enum value outside CentralKeyPolicy.
	for _, pol := range []resolverv1.CentralKeyPolicy{3, -1} {
		add(fmt.Sprintf("CreateProvider/central_key_policy/%d", pol), []string{"central_key_policy"}, func(ctx context.Context) error {
			_, err := a.CreateProvider(ctx, &resolverv1.CreateProviderRequest{Type: "openai", Name: "val-kpol", CentralKeyPolicy: pol})
			return err
		})
		add(fmt.Sprintf("UpdateProvider/central_key_policy/%d", pol), []string{"central_key_policy"}, func(ctx context.Context) error {
			_, err := a.UpdateProvider(ctx, &resolverv1.UpdateProviderRequest{Id: p.Id, CentralKeyPolicy: pol})
			return err
		})
	}

	// display_name: no control characters.
	for _, dn := range []string{"nul\x00byte", "line\nbreak", "tab\there", "del\x7f", "c1\u0085control", "esc\x1b[31m"} {
		add(fmt.Sprintf("CreateProvider/display_name/%q", dn), []string{"display_name"}, func(ctx context.Context) error {
			_, err := a.CreateProvider(ctx, &resolverv1.CreateProviderRequest{Type: "openai", Name: "val-dn", DisplayName: dn})
			return err
		})
		add(fmt.Sprintf("UpdateProvider/display_name/%q", dn), []string{"display_name"}, func(ctx context.Context) error {
			_, err := a.UpdateProvider(ctx, &resolverv1.UpdateProviderRequest{Id: p.Id, DisplayName: proto.String(dn)})
			return err
		})
		add(fmt.Sprintf("CreateModelConfig/display_name/%q", dn), []string{"display_name"}, func(ctx context.Context) error {
			_, err := a.CreateModelConfig(ctx, &resolverv1.CreateModelConfigRequest{AiProviderId: p.Id, Model: "m", DisplayName: dn, ContextLimit: 1000, CompressionThreshold: 50})
			return err
		})
		add(fmt.Sprintf("UpdateModelConfig/display_name/%q", dn), []string{"display_name"}, func(ctx context.Context) error {
			_, err := a.UpdateModelConfig(ctx, &resolverv1.UpdateModelConfigRequest{Id: c.Id, DisplayName: proto.String(dn)})
			return err
		})
	}

	// API keys: trimmed, non-empty, printable, at most 10 KiB; the refusal never quotes the key.
	newline := "sk-NLLEAK-first\nsk-NLLEAK-second"
	ctrl := "sk-CTRLLEAK\x00rest"
	long := adKey("LONGLEAK", 10241)
	longPadded := "  " + adKey("LONGPADLEAK", 10241) + "  "
	badKeys := []struct{ name, value string }{
		{"empty", ""}, {"whitespace-only", " \t \n "}, {"newline-inside", newline}, {"nul-inside", ctrl},
		{"10241-bytes", long}, {"10241-bytes-padded", longPadded},
	}
	for _, bk := range badKeys {
		leaks := []string{bk.value, strings.TrimSpace(bk.value), "NLLEAK", "CTRLLEAK", "LONGLEAK", "LONGPADLEAK"}
		add("AddProviderKey/api_key/"+bk.name, []string{"api_key"}, func(ctx context.Context) error {
			_, err := a.AddProviderKey(ctx, &resolverv1.AddProviderKeyRequest{ProviderId: p.Id, ApiKey: bk.value})
			return err
		}, leaks...)
		add("RotateProviderKey/api_key/"+bk.name, []string{"api_key"}, func(ctx context.Context) error {
			_, err := a.RotateProviderKey(ctx, &resolverv1.RotateProviderKeyRequest{ProviderId: p.Id, ApiKey: bk.value})
			return err
		}, leaks...)
		add("PutUserProviderKey/api_key/"+bk.name, []string{"api_key"}, func(ctx context.Context) error {
			_, err := a.PutUserProviderKey(ctx, &resolverv1.PutUserProviderKeyRequest{UserId: u.Id, AiProviderId: p.Id, ApiKey: bk.value})
			return err
		}, leaks...)
	}

	// context_limit > 0; compression_threshold 0..100.
	for _, n := range []int32{0, -1, math.MinInt32} {
		add(fmt.Sprintf("CreateModelConfig/context_limit/%d", n), []string{"context_limit"}, func(ctx context.Context) error {
			_, err := a.CreateModelConfig(ctx, &resolverv1.CreateModelConfigRequest{AiProviderId: p.Id, Model: "m", ContextLimit: n, CompressionThreshold: 50})
			return err
		})
		add(fmt.Sprintf("UpdateModelConfig/context_limit/%d", n), []string{"context_limit"}, func(ctx context.Context) error {
			_, err := a.UpdateModelConfig(ctx, &resolverv1.UpdateModelConfigRequest{Id: c.Id, ContextLimit: proto.Int32(n)})
			return err
		})
	}
	for _, n := range []int32{-1, 101, math.MaxInt32, math.MinInt32} {
		add(fmt.Sprintf("CreateModelConfig/compression_threshold/%d", n), []string{"compression_threshold"}, func(ctx context.Context) error {
			_, err := a.CreateModelConfig(ctx, &resolverv1.CreateModelConfigRequest{AiProviderId: p.Id, Model: "m", ContextLimit: 1000, CompressionThreshold: n})
			return err
		})
		add(fmt.Sprintf("UpdateModelConfig/compression_threshold/%d", n), []string{"compression_threshold"}, func(ctx context.Context) error {
			_, err := a.UpdateModelConfig(ctx, &resolverv1.UpdateModelConfigRequest{Id: c.Id, CompressionThreshold: proto.Int32(n)})
			return err
		})
	}

	// model: required.
	for _, m := range []string{"", "   "} {
		add(fmt.Sprintf("CreateModelConfig/model/%q", m), []string{"model"}, func(ctx context.Context) error {
			_, err := a.CreateModelConfig(ctx, &resolverv1.CreateModelConfigRequest{AiProviderId: p.Id, Model: m, ContextLimit: 1000, CompressionThreshold: 50})
			return err
		})
		add(fmt.Sprintf("UpdateModelConfig/model/%q", m), []string{"model"}, func(ctx context.Context) error {
			_, err := a.UpdateModelConfig(ctx, &resolverv1.UpdateModelConfigRequest{Id: c.Id, Model: proto.String(m)})
			return err
		})
	}

	// username: required, printable.
	for _, n := range []string{"", "   ", "al\nice"} {
		add(fmt.Sprintf("PutUser/username/%q", n), []string{"username"}, func(ctx context.Context) error {
			_, err := a.PutUser(ctx, &resolverv1.PutUserRequest{Id: u.Id, Username: n})
			return err
		})
	}

	// CreateToken: a name, at least one known scope, a ttl that is not negative.
	add("CreateToken/name/empty", []string{"name"}, func(ctx context.Context) error {
		_, err := a.CreateToken(ctx, &resolverv1.CreateTokenRequest{Name: "", Scopes: []string{"chat:read"}})
		return err
	})
	add("CreateToken/scopes/none", []string{"scopes"}, func(ctx context.Context) error {
		_, err := a.CreateToken(ctx, &resolverv1.CreateTokenRequest{Name: "val-noscope"})
		return err
	})
	add("CreateToken/scopes/unknown", []string{"scopes"}, func(ctx context.Context) error {
		_, err := a.CreateToken(ctx, &resolverv1.CreateTokenRequest{Name: "val-unknown", Scopes: []string{"chat:read", "chat:admin"}})
		return err
	})
	for _, ttl := range []int64{-1, math.MinInt64} {
		add(fmt.Sprintf("CreateToken/ttl_seconds/%d", ttl), []string{"ttl_seconds"}, func(ctx context.Context) error {
			_, err := a.CreateToken(ctx, &resolverv1.CreateTokenRequest{Name: "val-ttl", Scopes: []string{"chat:read"}, TtlSeconds: ttl})
			return err
		})
	}

	// Workload identities: the subject's rules, scopes as CreateToken's, a free-text description.
	for name, subject := range map[string]string{"empty": "", "padded": " cn:x", "control": "cn:x\ny", "invisible": "cn:\u200bx", "1025-bytes": strings.Repeat("s", 1025)} {
		add("PutWorkloadIdentity/subject/"+name, []string{"subject"}, func(ctx context.Context) error {
			_, err := a.PutWorkloadIdentity(ctx, &resolverv1.PutWorkloadIdentityRequest{Subject: subject, Scopes: []string{"chat:read"}})
			return err
		})
		add("DeleteWorkloadIdentity/subject/"+name, []string{"subject"}, func(ctx context.Context) error {
			_, err := a.DeleteWorkloadIdentity(ctx, &resolverv1.DeleteWorkloadIdentityRequest{Subject: subject})
			return err
		})
	}
	add("PutWorkloadIdentity/scopes/unknown", []string{"scopes"}, func(ctx context.Context) error {
		_, err := a.PutWorkloadIdentity(ctx, &resolverv1.PutWorkloadIdentityRequest{Subject: "cn:x", Scopes: []string{"chat:admin"}})
		return err
	})
	add("multi/PutWorkloadIdentity", []string{"subject", "scopes", "description"}, func(ctx context.Context) error {
		_, err := a.PutWorkloadIdentity(ctx, &resolverv1.PutWorkloadIdentityRequest{Description: strings.Repeat("d", 201)})
		return err
	})

	// ListAuditEvents: limit 1..500 (0 means 50).
	for _, l := range []int32{501, -1} {
		add(fmt.Sprintf("ListAuditEvents/limit/%d", l), []string{"limit"}, func(ctx context.Context) error {
			_, err := a.ListAuditEvents(ctx, &resolverv1.ListAuditEventsRequest{Limit: l})
			return err
		})
	}

	// page_size and page_token of every List method (the paging suite has the accepted side).
	listPages := map[string]func(ctx context.Context, size int32, token string) error{
		"ListProviders": func(ctx context.Context, size int32, token string) error {
			_, err := a.ListProviders(ctx, &resolverv1.ListProvidersRequest{PageSize: size, PageToken: token})
			return err
		},
		"ListProviderKeys": func(ctx context.Context, size int32, token string) error {
			_, err := a.ListProviderKeys(ctx, &resolverv1.ListProviderKeysRequest{PageSize: size, PageToken: token})
			return err
		},
		"ListModelConfigs": func(ctx context.Context, size int32, token string) error {
			_, err := a.ListModelConfigs(ctx, &resolverv1.ListModelConfigsRequest{PageSize: size, PageToken: token})
			return err
		},
		"ListTokens": func(ctx context.Context, size int32, token string) error {
			_, err := a.ListTokens(ctx, &resolverv1.ListTokensRequest{PageSize: size, PageToken: token})
			return err
		},
		"ListAuditEvents": func(ctx context.Context, size int32, token string) error {
			_, err := a.ListAuditEvents(ctx, &resolverv1.ListAuditEventsRequest{PageSize: size, PageToken: token})
			return err
		},
		"ListWorkloadIdentities": func(ctx context.Context, size int32, token string) error {
			_, err := a.ListWorkloadIdentities(ctx, &resolverv1.ListWorkloadIdentitiesRequest{PageSize: size, PageToken: token})
			return err
		},
		"ListUserProviderKeys": func(ctx context.Context, size int32, token string) error {
			_, err := a.ListUserProviderKeys(ctx, &resolverv1.ListUserProviderKeysRequest{UserId: u.Id, PageSize: size, PageToken: token})
			return err
		},
	}
	for _, name := range []string{"ListProviders", "ListProviderKeys", "ListModelConfigs", "ListTokens", "ListAuditEvents", "ListWorkloadIdentities", "ListUserProviderKeys"} {
		list := listPages[name]
		for _, size := range []int32{-1, math.MinInt32} {
			add(fmt.Sprintf("%s/page_size/%d", name, size), []string{"page_size"}, func(ctx context.Context) error { return list(ctx, size, "") })
		}
		add(name+"/page_token/garbage", []string{"page_token"}, func(ctx context.Context) error { return list(ctx, 1, "not-a-page-token") })
	}

	// Several bad fields in one request: one violation per field.
	add("multi/CreateProvider", []string{"type", "name", "display_name", "base_url", "byok_policy", "central_key_policy"}, func(ctx context.Context) error {
		_, err := a.CreateProvider(ctx, &resolverv1.CreateProviderRequest{Type: "mistral", Name: "Bad_Name", DisplayName: "a\x00b", BaseUrl: "ftp://x.example.com", ByokPolicy: 42, CentralKeyPolicy: 7})
		return err
	})
	add("multi/UpdateProvider", []string{"id", "name", "display_name", "base_url", "byok_policy", "central_key_policy"}, func(ctx context.Context) error {
		_, err := a.UpdateProvider(ctx, &resolverv1.UpdateProviderRequest{Id: "x", Name: proto.String("-x"), DisplayName: proto.String("\n"), BaseUrl: proto.String("/rel"), ByokPolicy: 42, CentralKeyPolicy: -1})
		return err
	})
	add("multi/CreateModelConfig", []string{"ai_provider_id", "model", "display_name", "context_limit", "compression_threshold"}, func(ctx context.Context) error {
		_, err := a.CreateModelConfig(ctx, &resolverv1.CreateModelConfigRequest{AiProviderId: "x", Model: "", DisplayName: "\x01", ContextLimit: 0, CompressionThreshold: 101})
		return err
	})
	add("multi/UpdateModelConfig", []string{"id", "ai_provider_id", "model", "display_name", "context_limit", "compression_threshold"}, func(ctx context.Context) error {
		_, err := a.UpdateModelConfig(ctx, &resolverv1.UpdateModelConfigRequest{Id: "", AiProviderId: proto.String(uuid.Nil.String()), Model: proto.String(""),
			DisplayName: proto.String("\x01"), ContextLimit: proto.Int32(-1), CompressionThreshold: proto.Int32(-1)})
		return err
	})
	add("multi/AddProviderKey", []string{"provider_id", "api_key"}, func(ctx context.Context) error {
		_, err := a.AddProviderKey(ctx, &resolverv1.AddProviderKeyRequest{ProviderId: "", ApiKey: " "})
		return err
	})
	add("multi/RotateProviderKey", []string{"provider_id", "api_key"}, func(ctx context.Context) error {
		_, err := a.RotateProviderKey(ctx, &resolverv1.RotateProviderKeyRequest{ProviderId: "nope", ApiKey: long})
		return err
	}, long)
	add("multi/PutUserProviderKey", []string{"user_id", "ai_provider_id", "api_key"}, func(ctx context.Context) error {
		_, err := a.PutUserProviderKey(ctx, &resolverv1.PutUserProviderKeyRequest{UserId: "x", AiProviderId: uuid.Nil.String(), ApiKey: newline})
		return err
	}, "NLLEAK")
	add("multi/PutUser", []string{"id", "username"}, func(ctx context.Context) error {
		_, err := a.PutUser(ctx, &resolverv1.PutUserRequest{Id: "", Username: ""})
		return err
	})
	add("multi/PutChat", []string{"id", "owner_id", "model_config_id"}, func(ctx context.Context) error {
		_, err := a.PutChat(ctx, &resolverv1.PutChatRequest{Id: "", OwnerId: "x", ModelConfigId: uuid.Nil.String()})
		return err
	})
	add("multi/CreateToken", []string{"name", "scopes", "ttl_seconds"}, func(ctx context.Context) error {
		_, err := a.CreateToken(ctx, &resolverv1.CreateTokenRequest{Name: "", TtlSeconds: -5})
		return err
	})
	add("multi/ListAuditEvents", []string{"limit", "chat_id", "token_id"}, func(ctx context.Context) error {
		_, err := a.ListAuditEvents(ctx, &resolverv1.ListAuditEventsRequest{Limit: 1000, ChatId: "x", TokenId: uuid.Nil.String()})
		return err
	})

	seen := map[string]bool{}
	for _, tc := range cases {
		if seen[tc.name] {
			t.Fatalf("duplicate case name %s", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			err := adInvalid(t, e, tc.fields, tc.call)
			adNoLeak(t, err, tc.leak...)
		})
	}

	// The table reaches every request type of AdminService that has fields to validate.
	t.Run("covers-every-method", func(t *testing.T) {
		methods := resolverv1.File_resolver_v1_admin_proto.Services().ByName("AdminService").Methods()
		for i := range methods.Len() {
			m := methods.Get(i)
			if m.Input().Fields().Len() == 0 {
				continue // List* without parameters: nothing to validate
			}
			name := string(m.Name())
			found := false
			for _, tc := range cases {
				found = found || strings.HasPrefix(tc.name, name+"/") || tc.name == "multi/"+name
			}
			if !found {
				t.Errorf("no validation case for %s", name)
			}
		}
	})
}

// TestAdminE2EValidationBoundaries checks the accepted side of each limit: what is valid must pass
// and be stored as docs/CONTRACT.md §3 says (an API key trimmed).
func TestAdminE2EValidationBoundaries(t *testing.T) {
	t.Parallel()
	w := testenv.NewWorld(t, testenv.Options{})
	e, a := w.Env, w.Admin
	ctx := e.AsAdmin()
	u := w.User("bound-alice")

	t.Run("names", func(t *testing.T) {
		for _, n := range []string{"a", "0", "a-1-b", "openai-eu-2", strings.Repeat("a", 63), strings.Repeat("a1-", 20) + "abc"} {
			got, err := a.CreateProvider(ctx, &resolverv1.CreateProviderRequest{Type: "openai-compat", Name: n})
			if err != nil {
				t.Fatalf("name %q (%d chars) refused: %v", n, len(n), err)
			}
			if got.GetName() != n {
				t.Errorf("name = %q, want %q", got.GetName(), n)
			}
		}
	})

	t.Run("types", func(t *testing.T) {
		for _, typ := range []string{"anthropic", "azure", "bedrock", "google", "openai", "openai-compat", "openrouter", "vercel"} {
			got, err := a.CreateProvider(ctx, &resolverv1.CreateProviderRequest{Type: typ, Name: "type-" + typ})
			if err != nil {
				t.Fatalf("type %q refused: %v", typ, err)
			}
			if got.GetType() != typ {
				t.Errorf("type = %q, want %q", got.GetType(), typ)
			}
		}
	})

	t.Run("base_url", func(t *testing.T) {
		for i, u := range []string{"", "http://localhost:8080/v1", "https://api.example.com", "https://api.example.com/openai/v1/", "https://10.0.0.1:8443"} {
			got, err := a.CreateProvider(ctx, &resolverv1.CreateProviderRequest{Type: "openai-compat", Name: fmt.Sprintf("url-%d", i), BaseUrl: u})
			if err != nil {
				t.Fatalf("base_url %q refused: %v", u, err)
			}
			if got.GetBaseUrl() != u {
				t.Errorf("base_url = %q, want %q", got.GetBaseUrl(), u)
			}
		}
	})

	p := w.Provider("bound-openai", "openai", resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL)

	t.Run("context_limit-and-compression_threshold", func(t *testing.T) {
		for _, th := range []int32{0, 100} {
			got, err := a.CreateModelConfig(ctx, &resolverv1.CreateModelConfigRequest{AiProviderId: p.Id, Model: fmt.Sprintf("m-%d", th), ContextLimit: 1, CompressionThreshold: th})
			if err != nil {
				t.Fatalf("compression_threshold %d refused: %v", th, err)
			}
			if got.GetCompressionThreshold() != th || got.GetContextLimit() != 1 {
				t.Errorf("stored threshold/limit %d/%d, want %d/1", got.GetCompressionThreshold(), got.GetContextLimit(), th)
			}
			other := 100 - th
			upd, err := a.UpdateModelConfig(ctx, &resolverv1.UpdateModelConfigRequest{Id: got.Id, CompressionThreshold: proto.Int32(other), ContextLimit: proto.Int32(math.MaxInt32)})
			if err != nil {
				t.Fatalf("update compression_threshold to %d refused: %v", other, err)
			}
			if upd.GetCompressionThreshold() != other || upd.GetContextLimit() != math.MaxInt32 {
				t.Errorf("updated threshold/limit %d/%d", upd.GetCompressionThreshold(), upd.GetContextLimit())
			}
		}
	})

	t.Run("token", func(t *testing.T) {
		got, err := a.CreateToken(ctx, &resolverv1.CreateTokenRequest{Name: "bound-token", Scopes: []string{"chat:read"}, TtlSeconds: 0})
		if err != nil {
			t.Fatalf("ttl 0 refused: %v", err)
		}
		if got.ExpiresAt != nil {
			t.Errorf("ttl 0 gave expires_at %v, want none", got.ExpiresAt)
		}
	})

	// An API key of exactly 10 KiB once its surrounding white space is trimmed is accepted and
	// stored trimmed: ResolveModel serves exactly the trimmed value.
	t.Run("api_key-10240-bytes", func(t *testing.T) {
		w := adWorld(t, e)
		central := w.Provider("big-central", "openai", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
		cfg := w.Config(central.Id, "big-model", false)
		chat := w.Chat(u.Id, cfg.Id)
		title := func(wantKey, wantKeyID string, wantSource resolverv1.CredentialSource, cfgID string) {
			t.Helper()
			res, err := w.Resolve(chat.Id, cfgID, resolverv1.Purpose_PURPOSE_TITLE)
			if err != nil {
				t.Fatalf("resolve: %v", err)
			}
			cred := res.GetCredential()
			if cred.GetSource() != wantSource || cred.GetKeyId() != wantKeyID || cred.GetApiKey() != wantKey {
				t.Fatalf("credential = %v/%s/%d bytes, want %v/%s/%d bytes (trimmed)", cred.GetSource(), cred.GetKeyId(), len(cred.GetApiKey()), wantSource, wantKeyID, len(wantKey))
			}
		}

		k1 := adKey("big1", 10240)
		added, err := a.AddProviderKey(ctx, &resolverv1.AddProviderKeyRequest{ProviderId: central.Id, ApiKey: "  " + k1 + "  "})
		if err != nil {
			t.Fatalf("AddProviderKey with a 10240-byte key (padded) refused: %v", err)
		}
		title(k1, added.Id, resolverv1.CredentialSource_CREDENTIAL_SOURCE_CENTRAL, cfg.Id)

		k2 := adKey("big2", 10240)
		rotated, err := a.RotateProviderKey(ctx, &resolverv1.RotateProviderKeyRequest{ProviderId: central.Id, ApiKey: "\t" + k2 + " \n"})
		if err != nil {
			t.Fatalf("RotateProviderKey with a 10240-byte key (padded) refused: %v", err)
		}
		title(k2, rotated.Id, resolverv1.CredentialSource_CREDENTIAL_SOURCE_CENTRAL, cfg.Id)

		byok := w.Provider("big-byok", "anthropic", resolverv1.ByokPolicy_BYOK_POLICY_REQUIRED)
		byokCfg := w.Config(byok.Id, "big-claude", false)
		k3 := adKey("big3", 10240)
		uk, err := a.PutUserProviderKey(ctx, &resolverv1.PutUserProviderKeyRequest{UserId: u.Id, AiProviderId: byok.Id, ApiKey: " " + k3 + " "})
		if err != nil {
			t.Fatalf("PutUserProviderKey with a 10240-byte key (padded) refused: %v", err)
		}
		title(k3, uk.Id, resolverv1.CredentialSource_CREDENTIAL_SOURCE_USER, byokCfg.Id)
	})

	t.Run("options", func(t *testing.T) {
		opts, err := structpb.NewStruct(map[string]any{"temperature": 0.2, "tools": []any{"search"}, "nested": map[string]any{"a": true}})
		if err != nil {
			t.Fatal(err)
		}
		got, err := a.CreateModelConfig(ctx, &resolverv1.CreateModelConfigRequest{AiProviderId: p.Id, Model: "opts", ContextLimit: 10, CompressionThreshold: 10, Options: opts})
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got.GetOptions(), opts) {
			t.Errorf("options = %v, want %v", got.GetOptions(), opts)
		}
	})
}
