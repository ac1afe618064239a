package service

import (
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/dbauthz"
	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/resolve"
	"github.com/resolverd/resolverd/pkg/secret"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// ---------------------------------------------------------------------------------------------
// Request targets: the real handlers over the fake store.

// FuzzResolveModelRequest: ResolveModel refuses exactly what id("chat_id"), optionalID
// ("model_config_id") and purposeOf refuse, records the call in the audit trail either way, and a
// valid request reaches the store with the parsed ids.
func FuzzResolveModelRequest(f *testing.F) {
	for i, s := range uuidSeeds {
		f.Add(s, "", int32(1))
		f.Add(seedUUID, s, int32(i%8)-1)
	}
	f.Add(seedUUIDUpper, seedUUID2, int32(5))
	f.Add(nilUUID, nilUUID, int32(0))
	f.Fuzz(func(t *testing.T, chatID, configID string, purpose int32) {
		q, rec := &fakeQuerier{}, &fakeRecorder{}
		s := NewResolver(dbauthz.New(q), resolve.Options{AllowBYOK: true}, fuzzFPKey, rec, fuzzLog, nil)
		req := &resolverv1.ResolveModelRequest{ChatId: chatID, ModelConfigId: configID, Purpose: resolverv1.Purpose(purpose)}
		resp, err := s.ResolveModel(fuzzCtx(), req)
		if resp != nil {
			t.Fatalf("the fake store answered nothing, yet ResolveModel answered %v", resp)
		}

		var v violations
		chat := v.id("chat_id", chatID)
		cfg := v.optionalID("model_config_id", configID)
		p := purposeOf(&v, req.GetPurpose())
		call := checkOutcome(t, req, err, fieldsOf(v), q, "ResolutionSnapshot")

		if len(rec.events) != 1 {
			t.Fatalf("ResolveModel made %d audit records, want 1", len(rec.events))
		}
		ev := rec.events[0]
		wantOutcome := string(errs.NotFound) // the fake store's answer
		if len(v) > 0 {
			wantOutcome = string(errs.InvalidArgument)
		}
		if ev.Action != "ResolveModel" || ev.Outcome != wantOutcome || ev.Resolution == nil || ev.Resolution.Purpose != p.String() {
			t.Fatalf("audit record %+v (resolution %+v), want action ResolveModel, outcome %s, purpose %s", ev, ev.Resolution, wantOutcome, p)
		}
		if len(v) > 0 {
			return
		}
		checkStoredID(t, "chat_id", chatID, chat, call.args[0].(uuid.UUID))
		checkStoredID(t, "model_config_id", configID, cfg, call.args[1].(uuid.UUID))
		if ev.ChatID != chat {
			t.Fatalf("audit record of chat %v, want %v", ev.ChatID, chat)
		}
	})
}

// FuzzCreateProviderRequest: CreateProvider refuses exactly what its validators refuse, and a valid
// request reaches the store as given, with enabled defaulting to true and the policy mapped.
func FuzzCreateProviderRequest(f *testing.F) {
	f.Add("openai", "openai-eu", "OpenAI (EU)", "https://api.example.com/v1", false, false, int32(0))
	f.Add("bedrock", strings.Repeat("a", 63), "", "", true, false, int32(3))
	f.Add("openai", strings.Repeat("a", 64), "", "", true, true, int32(2))
	f.Add("OpenAI", "Bad_Name", " x", "https://user:pass@api.example.com", false, true, int32(4))
	f.Add("", "", "", "ftp://x", false, false, int32(-1))
	f.Add("vercel", "v", "V\x00", "https://api.example.com/v1?k=1", true, true, int32(1))
	f.Add("openai", "rr", "", "", false, false, int32(2<<8|2)) // round robin, BYOK optional
	f.Add("openai", "rr", "", "", false, false, int32(3<<8|1)) // an unknown central key policy
	f.Fuzz(func(t *testing.T, typ, name, display, baseURL string, setEnabled, enabled bool, policy int32) {
		a, q := fuzzAdmin()
		// policy's low byte is the BYOK policy, the rest the central key policy: the committed corpus
		// (small values) keeps its meaning.
		req := &resolverv1.CreateProviderRequest{Type: typ, Name: name, DisplayName: display, BaseUrl: baseURL,
			ByokPolicy: resolverv1.ByokPolicy(policy & 0xff), CentralKeyPolicy: resolverv1.CentralKeyPolicy(policy >> 8)}
		if setEnabled {
			req.Enabled = boolPtr(enabled)
		}
		_, err := a.CreateProvider(fuzzCtx(), req)

		var v violations
		v.providerType("type", typ)
		v.providerName("name", name)
		v.text("display_name", display, false)
		v.baseURL("base_url", baseURL)
		pol := v.byokPolicy("byok_policy", req.GetByokPolicy())
		keyPol := v.centralKeyPolicy("central_key_policy", req.GetCentralKeyPolicy())
		call := checkOutcome(t, req, err, fieldsOf(v), q, "CreateProvider")
		if len(v) > 0 {
			return
		}
		if keyPol == "" {
			keyPol = resolve.PolicyOldest // the default
		}
		p := call.args[0].(resolve.Provider)
		checkNewID(t, p.ID)
		want := resolve.Provider{ID: p.ID, Type: typ, Name: name, DisplayName: display, BaseURL: baseURL, Enabled: !setEnabled || enabled,
			BYOKPolicy: pol, CentralKeyPolicy: keyPol}
		if p != want {
			t.Fatalf("the store got %+v, want %+v", p, want)
		}
		if !nameOK(p.Name) || !slices.Contains(specProviderTypes, p.Type) || pol == "" {
			t.Fatalf("the store got provider %+v", p)
		}
	})
}

// FuzzUpdateProviderRequest: UpdateProvider validates exactly the fields that are set, and a valid
// request changes exactly those fields (the policy when not unspecified).
func FuzzUpdateProviderRequest(f *testing.F) {
	f.Add(seedUUID, "openai-eu", "OpenAI", "https://api.example.com", uint8(0xff), true, int32(2))
	f.Add(seedUUIDUpper, "", "", "", uint8(0), false, int32(0))
	f.Add(nilUUID, "-bad-", " x", "https://u@h", uint8(0x07), false, int32(9))
	f.Add("", strings.Repeat("z", 64), "", "", uint8(0x01), true, int32(1))
	f.Add(seedUUID, "", "", "", uint8(0x07), true, int32(3))
	f.Add(seedUUID, "", "", "", uint8(0), false, int32(2<<8)) // only the central key policy
	f.Add(seedUUID, "", "", "", uint8(0), false, int32(1<<8|9))
	f.Fuzz(func(t *testing.T, id, name, display, baseURL string, mask uint8, enabled bool, policy int32) {
		a, q := fuzzAdmin()
		req := &resolverv1.UpdateProviderRequest{
			Id: id, Name: strPtrIf(mask&1 != 0, name), DisplayName: strPtrIf(mask&2 != 0, display),
			// The low byte is the BYOK policy, the rest the central key policy (as in CreateProvider).
			BaseUrl: strPtrIf(mask&4 != 0, baseURL), ByokPolicy: resolverv1.ByokPolicy(policy & 0xff),
			CentralKeyPolicy: resolverv1.CentralKeyPolicy(policy >> 8),
		}
		if mask&8 != 0 {
			req.Enabled = boolPtr(enabled)
		}
		_, err := a.UpdateProvider(fuzzCtx(), req)

		var v violations
		pid := v.id("id", id)
		if req.Name != nil {
			v.providerName("name", name)
		}
		if req.DisplayName != nil {
			v.text("display_name", display, false)
		}
		if req.BaseUrl != nil {
			v.baseURL("base_url", baseURL)
		}
		var pol resolve.BYOKPolicy
		if req.GetByokPolicy() != resolverv1.ByokPolicy_BYOK_POLICY_UNSPECIFIED {
			pol = v.byokPolicy("byok_policy", req.GetByokPolicy())
		}
		keyPol := v.centralKeyPolicy("central_key_policy", req.GetCentralKeyPolicy())
		call := checkOutcome(t, req, err, fieldsOf(v), q, "UpdateProvider")
		if len(v) > 0 {
			return
		}
		checkStoredID(t, "id", id, pid, call.args[0].(uuid.UUID))
		var want db.Provider
		if req.Name != nil {
			want.Name = name
		}
		if req.DisplayName != nil {
			want.DisplayName = display
		}
		if req.BaseUrl != nil {
			want.BaseURL = baseURL
		}
		if req.Enabled != nil {
			want.Enabled = enabled
		}
		want.BYOKPolicy, want.CentralKeyPolicy = pol, keyPol
		if got := call.args[1].(db.Provider); got != want {
			t.Fatalf("the update wrote %+v, want %+v", got, want)
		}
	})
}

// FuzzProviderKeyRequests: AddProviderKey, RotateProviderKey and PutUserProviderKey refuse exactly
// what their validators refuse, never quote a refused key, and hand the store the trimmed key.
func FuzzProviderKeyRequests(f *testing.F) {
	for i, key := range []string{
		"sk-proj-abc123", "  sk-padded\n", "", strings.Repeat("k", 10240), strings.Repeat("k", 10241),
		"sk-\x00secretsecret", "sk-\xffsecretsecret",
	} {
		f.Add(uint8(i), seedUUID, seedUUID2, key, i%2 == 0, true)
	}
	f.Add(uint8(0), "", "", "", false, false)
	f.Add(uint8(2), nilUUID, seedUUIDUpper, "sk-ok", false, false)
	f.Fuzz(func(t *testing.T, method uint8, providerID, userID, apiKey string, setEnabled, enabled bool) {
		a, q := fuzzAdmin()
		var (
			req  proto.Message
			err  error
			v    violations
			name string
		)
		switch method % 3 {
		case 0:
			r := &resolverv1.AddProviderKeyRequest{ProviderId: providerID, ApiKey: apiKey}
			if setEnabled {
				r.Enabled = boolPtr(enabled)
			}
			req, name = r, "AddProviderKey"
			_, err = a.AddProviderKey(fuzzCtx(), r)
		case 1:
			r := &resolverv1.RotateProviderKeyRequest{ProviderId: providerID, ApiKey: apiKey}
			req, name = r, "RotateProviderKey"
			_, err = a.RotateProviderKey(fuzzCtx(), r)
		case 2:
			r := &resolverv1.PutUserProviderKeyRequest{UserId: userID, AiProviderId: providerID, ApiKey: apiKey}
			req, name = r, "PutUserProviderKey"
			_, err = a.PutUserProviderKey(fuzzCtx(), r)
		}
		var uid, pid uuid.UUID
		if method%3 == 2 {
			uid = v.id("user_id", userID)
			pid = v.id("ai_provider_id", providerID)
		} else {
			pid = v.id("provider_id", providerID)
		}
		v.apiKey("api_key", apiKey)
		call := checkOutcome(t, req, err, fieldsOf(v), q, name)
		if len(v) > 0 {
			checkKeyNotShown(t, err, "api_key", apiKey)
			return
		}
		checkNewID(t, call.args[0].(uuid.UUID))
		switch method % 3 {
		case 0:
			checkStoredID(t, "provider_id", providerID, pid, call.args[1].(uuid.UUID))
			checkAcceptedKey(t, apiKey, call.args[2].(secret.String))
			if got := call.args[3].(bool); got != (!setEnabled || enabled) {
				t.Fatalf("enabled %v reached the store as %v", req, got)
			}
		case 1:
			checkStoredID(t, "provider_id", providerID, pid, call.args[1].(uuid.UUID))
			checkAcceptedKey(t, apiKey, call.args[2].(secret.String))
		case 2:
			checkStoredID(t, "user_id", userID, uid, call.args[1].(uuid.UUID))
			checkStoredID(t, "ai_provider_id", providerID, pid, call.args[2].(uuid.UUID))
			checkAcceptedKey(t, apiKey, call.args[3].(secret.String))
		}
	})
}

// FuzzCreateModelConfigRequest: CreateModelConfig refuses exactly what its validators refuse, and a
// valid request reaches the store as given, its options as the JSON object of the Struct.
func FuzzCreateModelConfigRequest(f *testing.F) {
	f.Add(seedUUID, "gpt-4o", "GPT-4o", true, false, false, int32(128000), int32(70), uint8(2), "temperature", "x", 0.5, uint16(0))
	f.Add(seedUUIDUpper, "m", "", false, true, true, int32(1), int32(0), uint8(0), "", "", 0.0, uint16(0))
	f.Add("", "", " pad", false, false, false, int32(0), int32(101), uint8(3), "k", "v", math.NaN(), uint16(65535))
	f.Add(nilUUID, " ", "\x00", true, true, false, int32(-5), int32(-1), uint8(1), "", "", 1.0, uint16(0))
	f.Add(seedUUID2, strings.Repeat("m", 201), "ok", true, true, true, int32(1), int32(100), uint8(2), "k", "\xff", 1.0, uint16(0))
	f.Fuzz(func(t *testing.T, providerID, model, display string, setEnabled, enabled, isDefault bool, limit, threshold int32, optMode uint8, optKey, optStr string, optNum float64, optPad uint16) {
		a, q := fuzzAdmin()
		opts := fuzzStruct(optMode, optKey, optStr, optNum, optPad)
		req := &resolverv1.CreateModelConfigRequest{
			AiProviderId: providerID, Model: model, DisplayName: display, IsDefault: isDefault,
			ContextLimit: limit, CompressionThreshold: threshold, Options: opts,
		}
		if setEnabled {
			req.Enabled = boolPtr(enabled)
		}
		_, err := a.CreateModelConfig(fuzzCtx(), req)

		var v violations
		pid := v.id("ai_provider_id", providerID)
		v.text("model", model, true)
		v.text("display_name", display, false)
		v.contextLimit("context_limit", limit)
		v.compressionThreshold("compression_threshold", threshold)
		v.options("options", opts)
		call := checkOutcome(t, req, err, fieldsOf(v), q, "CreateModelConfig")
		if len(v) > 0 {
			return
		}
		c := call.args[0].(resolve.ModelConfig)
		checkNewID(t, c.ID)
		checkStoredID(t, "ai_provider_id", providerID, pid, c.ProviderID)
		checkOptionsJSON(t, c.Options, opts)
		if c.Model != model || c.DisplayName != display || c.Enabled != (!setEnabled || enabled) || c.IsDefault != isDefault ||
			c.ContextLimit != limit || c.CompressionThreshold != threshold || c.Deleted || c.Provider != nil {
			t.Fatalf("the store got %+v for %v", c, req)
		}
		if limit <= 0 || threshold < 0 || threshold > 100 || textProblem(model, true) != "" || textProblem(display, false) != "" {
			t.Fatalf("the store got an invalid config %+v", c)
		}
	})
}

// FuzzUpdateModelConfigRequest: UpdateModelConfig validates exactly the fields that are set, and a
// valid request changes exactly those.
func FuzzUpdateModelConfigRequest(f *testing.F) {
	f.Add(seedUUID, seedUUID2, "gpt-4o", "GPT", uint16(0xffff), true, true, int32(1000), int32(50), uint8(2), "k", "v", 1.0, uint16(0))
	f.Add(seedUUIDUpper, "", "", "", uint16(0), false, false, int32(0), int32(0), uint8(0), "", "", 0.0, uint16(0))
	f.Add("", "bad", " ", " x", uint16(0x3f), false, false, int32(0), int32(101), uint8(3), "k", "v", math.Inf(-1), uint16(65535))
	f.Add(nilUUID, nilUUID, "m", "", uint16(0x01), false, false, int32(1), int32(1), uint8(1), "", "", 0.0, uint16(0))
	f.Add(seedUUID, "", "", "", uint16(0x30), true, false, int32(-1), int32(-1), uint8(0), "", "", 0.0, uint16(0))
	f.Fuzz(func(t *testing.T, id, providerID, model, display string, mask uint16, enabled, isDefault bool, limit, threshold int32, optMode uint8, optKey, optStr string, optNum float64, optPad uint16) {
		a, q := fuzzAdmin()
		opts := fuzzStruct(optMode, optKey, optStr, optNum, optPad)
		req := &resolverv1.UpdateModelConfigRequest{
			Id: id, AiProviderId: strPtrIf(mask&1 != 0, providerID), Model: strPtrIf(mask&2 != 0, model),
			DisplayName: strPtrIf(mask&4 != 0, display), ContextLimit: int32PtrIf(mask&8 != 0, limit),
			CompressionThreshold: int32PtrIf(mask&16 != 0, threshold), Options: opts,
		}
		if mask&32 != 0 {
			req.Enabled = boolPtr(enabled)
		}
		if mask&64 != 0 {
			req.IsDefault = boolPtr(isDefault)
		}
		_, err := a.UpdateModelConfig(fuzzCtx(), req)

		var v violations
		cid := v.id("id", id)
		pid := uuid.Nil
		if req.AiProviderId != nil {
			pid = v.id("ai_provider_id", providerID)
		}
		if req.Model != nil {
			v.text("model", model, true)
		}
		if req.DisplayName != nil {
			v.text("display_name", display, false)
		}
		if req.ContextLimit != nil {
			v.contextLimit("context_limit", limit)
		}
		if req.CompressionThreshold != nil {
			v.compressionThreshold("compression_threshold", threshold)
		}
		if req.Options != nil {
			v.options("options", opts)
		}
		call := checkOutcome(t, req, err, fieldsOf(v), q, "UpdateModelConfig")
		if len(v) > 0 {
			return
		}
		checkStoredID(t, "id", id, cid, call.args[0].(uuid.UUID))
		got := call.args[1].(db.ModelConfig)
		if req.AiProviderId != nil {
			checkStoredID(t, "ai_provider_id", providerID, pid, got.ProviderID)
		} else if got.ProviderID != uuid.Nil {
			t.Fatalf("ai_provider_id unset, but the update wrote %v", got.ProviderID)
		}
		if req.Options != nil {
			checkOptionsJSON(t, got.Options, opts)
		} else if got.Options != nil {
			t.Fatalf("options unset, but the update wrote %q", got.Options)
		}
		want := resolve.ModelConfig{ProviderID: got.ProviderID, Options: got.Options}
		if req.Model != nil {
			want.Model = model
		}
		if req.DisplayName != nil {
			want.DisplayName = display
		}
		if req.Enabled != nil {
			want.Enabled = enabled
		}
		if req.IsDefault != nil {
			want.IsDefault = isDefault
		}
		if req.ContextLimit != nil {
			want.ContextLimit = limit
		}
		if req.CompressionThreshold != nil {
			want.CompressionThreshold = threshold
		}
		if !reflect.DeepEqual(got.ModelConfig, want) {
			t.Fatalf("the update wrote %+v, want %+v", got.ModelConfig, want)
		}
	})
}

// FuzzPutUserRequest: PutUser refuses exactly what id("id") and text("username", required) refuse.
func FuzzPutUserRequest(f *testing.F) {
	f.Add(seedUUID, "alice")
	f.Add(seedUUIDUpper, " alice")
	f.Add(nilUUID, "")
	f.Add("", "\x00")
	f.Add(seedUUID2, strings.Repeat("ü", 200))
	f.Add(seedUUID2, strings.Repeat("ü", 201))
	f.Fuzz(func(t *testing.T, id, username string) {
		a, q := fuzzAdmin()
		req := &resolverv1.PutUserRequest{Id: id, Username: username}
		_, err := a.PutUser(fuzzCtx(), req)
		var v violations
		uid := v.id("id", id)
		v.text("username", username, true)
		call := checkOutcome(t, req, err, fieldsOf(v), q, "PutUser")
		if len(v) > 0 {
			return
		}
		checkStoredID(t, "id", id, uid, call.args[0].(uuid.UUID))
		if got := call.args[1].(string); got != username || textProblem(got, true) != "" {
			t.Fatalf("the store got username %q for %q", got, username)
		}
	})
}

// FuzzPutChatRequest: PutChat refuses exactly what its id validators refuse; model_config_id may be
// empty.
func FuzzPutChatRequest(f *testing.F) {
	f.Add(seedUUID, seedUUID2, "")
	f.Add(seedUUIDUpper, seedUUID, seedUUID2)
	f.Add(nilUUID, "", nilUUID)
	f.Add("", "urn:uuid:"+seedUUID, "{"+seedUUID+"}")
	f.Fuzz(func(t *testing.T, id, owner, model string) {
		a, q := fuzzAdmin()
		req := &resolverv1.PutChatRequest{Id: id, OwnerId: owner, ModelConfigId: model}
		_, err := a.PutChat(fuzzCtx(), req)
		var v violations
		cid := v.id("id", id)
		oid := v.id("owner_id", owner)
		mid := v.optionalID("model_config_id", model)
		call := checkOutcome(t, req, err, fieldsOf(v), q, "PutChat")
		if len(v) > 0 {
			return
		}
		checkStoredID(t, "id", id, cid, call.args[0].(uuid.UUID))
		checkStoredID(t, "owner_id", owner, oid, call.args[1].(uuid.UUID))
		checkStoredID(t, "model_config_id", model, mid, call.args[2].(uuid.UUID))
	})
}

// FuzzIDRequests: the requests that carry only an id (every Delete*, RevokeToken,
// SetProviderKeyEnabled, and ListProviderKeys with its optional provider_id) refuse exactly a bad id
// and hand the store the parsed one.
func FuzzIDRequests(f *testing.F) {
	for i, s := range uuidSeeds {
		f.Add(uint8(i), s, i%2 == 0)
	}
	f.Fuzz(func(t *testing.T, method uint8, id string, enabled bool) {
		a, q := fuzzAdmin()
		ctx := fuzzCtx()
		var (
			req   proto.Message
			err   error
			name  string
			field = "id"
		)
		switch method % 8 {
		case 0:
			r := &resolverv1.DeleteProviderRequest{Id: id}
			req, name = r, "DeleteProvider"
			_, err = a.DeleteProvider(ctx, r)
		case 1:
			r := &resolverv1.DeleteProviderKeyRequest{Id: id}
			req, name = r, "DeleteProviderKey"
			_, err = a.DeleteProviderKey(ctx, r)
		case 2:
			r := &resolverv1.DeleteModelConfigRequest{Id: id}
			req, name = r, "DeleteModelConfig"
			_, err = a.DeleteModelConfig(ctx, r)
		case 3:
			r := &resolverv1.DeleteUserRequest{Id: id}
			req, name = r, "DeleteUser"
			_, err = a.DeleteUser(ctx, r)
		case 4:
			r := &resolverv1.DeleteUserProviderKeyRequest{Id: id}
			req, name = r, "DeleteUserProviderKey"
			_, err = a.DeleteUserProviderKey(ctx, r)
		case 5:
			r := &resolverv1.RevokeTokenRequest{Id: id}
			req, name = r, "RevokeToken"
			_, err = a.RevokeToken(ctx, r)
		case 6:
			r := &resolverv1.SetProviderKeyEnabledRequest{Id: id, Enabled: proto.Bool(enabled)}
			req, name = r, "SetProviderKeyEnabled"
			_, err = a.SetProviderKeyEnabled(ctx, r)
		case 7:
			r := &resolverv1.ListProviderKeysRequest{ProviderId: id}
			req, name, field = r, "ListProviderKeys", "provider_id"
			_, err = a.ListProviderKeys(ctx, r)
		}
		var v violations
		var want uuid.UUID
		if field == "provider_id" {
			want = v.optionalID(field, id)
		} else {
			want = v.id(field, id)
		}
		call := checkOutcome(t, req, err, fieldsOf(v), q, name)
		if len(v) > 0 {
			return
		}
		checkStoredID(t, field, id, want, call.args[0].(uuid.UUID))
		if name == "SetProviderKeyEnabled" && call.args[1].(bool) != enabled {
			t.Fatalf("enabled=%v reached the store as %v", enabled, call.args[1])
		}
	})
}

// FuzzCreateTokenRequest: CreateToken refuses exactly a bad name, unknown or no scopes, and a
// ttl_seconds outside 0..ten years; a valid request hands the store the name, the sorted distinct
// scopes, a SHA-256 and the expiry (none for 0).
func FuzzCreateTokenRequest(f *testing.F) {
	f.Add("ci", "chat:read,model_config:read", int64(3600))
	f.Add("worker", "*", int64(0))
	f.Add("", "", int64(-1))
	f.Add(" x", "chat:read,chat:read,bogus", int64(10*365*24*3600))
	f.Add("n", "chat:read", int64(10*365*24*3600+1))
	f.Add("n\x00", "CHAT:READ", int64(math.MaxInt64))
	f.Fuzz(func(t *testing.T, name, scopeList string, ttl int64) {
		a, q := fuzzAdmin()
		var scopes []string
		if scopeList != "" {
			scopes = strings.Split(scopeList, ",")
		}
		req := &resolverv1.CreateTokenRequest{Name: name, Scopes: scopes, TtlSeconds: ttl}
		before := time.Now()
		resp, err := a.CreateToken(fuzzCtx(), req)
		if resp != nil {
			t.Fatalf("the fake store created nothing, yet CreateToken answered %v", resp)
		}
		var v violations
		v.text("name", name, true)
		parsed, perr := rbac.ParseScopes(scopes)
		switch {
		case perr != nil:
			v.add("scopes", "%v", perr)
		case len(parsed) == 0:
			v.add("scopes", "at least one scope is required")
		}
		if ttl < 0 || ttl > int64(MaxTokenTTL/time.Second) {
			v.add("ttl_seconds", "out of range")
		}
		call := checkOutcome(t, req, err, fieldsOf(v), q, "CreateToken")
		if len(v) > 0 {
			return
		}
		checkNewID(t, call.args[0].(uuid.UUID))
		if got := call.args[1].(string); got != name {
			t.Fatalf("the store got name %q for %q", got, name)
		}
		want := slices.Clone(scopes)
		slices.Sort(want)
		want = slices.Compact(want)
		if got := call.args[2].([]string); !slices.Equal(got, want) {
			t.Fatalf("the store got scopes %v for %v, want %v", got, scopes, want)
		}
		if h := call.args[3].([]byte); len(h) != 32 {
			t.Fatalf("the store got a %d-byte hash", len(h))
		}
		exp := call.args[4].(*time.Time)
		switch {
		case ttl == 0 && exp != nil:
			t.Fatalf("ttl_seconds 0 expires at %v", exp)
		case ttl > 0 && exp == nil:
			t.Fatalf("ttl_seconds %d never expires", ttl)
		case ttl > 0:
			lo, hi := before.Add(time.Duration(ttl)*time.Second-time.Second), time.Now().Add(time.Duration(ttl)*time.Second+time.Second)
			if exp.Before(lo) || exp.After(hi) {
				t.Fatalf("ttl_seconds %d expires at %v, want between %v and %v", ttl, exp, lo, hi)
			}
		}
	})
}

// FuzzListAuditEventsRequest: ListAuditEvents refuses exactly a bad chat_id or token_id, a
// (deprecated) limit outside 0..500, an action that is not short printable text (at most 200
// characters, valid UTF-8, no control or invisible formatting characters, no surrounding white space)
// and a page token parsePageToken refuses for these filters; a valid request hands the store the
// filter (limit+1 rows, DefaultPageSize+1 for 0). An accepted action goes into a text query
// parameter, so it must be something PostgreSQL takes: no NUL (the gRPC transport already refuses
// invalid UTF-8 in a string field).
func FuzzListAuditEventsRequest(f *testing.F) {
	tok, err := newPageTokens(fuzzFPKey).issue("ListAuditEvents", auditFilter(uuid.MustParse(seedUUID), uuid.MustParse(seedUUID2), "ResolveModel"), 12345)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(int32(0), "", "", "", "")
	f.Add(int32(500), tok, seedUUIDUpper, seedUUID2, "ResolveModel")
	f.Add(int32(500), tok, seedUUID, seedUUID2, "RotateProviderKey")
	f.Add(int32(501), "YTE6MA", nilUUID, "x", strings.Repeat("a", 201))
	f.Add(int32(-1), "not base64!", seedUUIDUpper, "", strings.Repeat("a", 200))
	f.Add(int32(1), tok, "", seedUUID, "RotateProviderKey")
	f.Fuzz(func(t *testing.T, limit int32, tok, chatID, tokenID, action string) {
		a, q := fuzzAdmin()
		req := &resolverv1.ListAuditEventsRequest{Limit: limit, PageToken: tok, ChatId: chatID, TokenId: tokenID, Action: action}
		_, err := a.ListAuditEvents(fuzzCtx(), req)

		var v violations
		chat := v.optionalID("chat_id", chatID)
		token := v.optionalID("token_id", tokenID)
		wantLimit := int(limit)
		switch {
		case limit == 0:
			wantLimit = DefaultPageSize
		case limit < 0 || limit > 500:
			v.add("limit", "out of range")
		}
		if !utf8.ValidString(action) || utf8.RuneCountInString(action) > 200 || action != strings.TrimSpace(action) ||
			strings.IndexFunc(action, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) >= 0 {
			v.add("action", "not short printable text")
		}
		var before int64
		if tok != "" {
			pos, problem := parsePageToken[int64](a.pages, "ListAuditEvents", auditFilter(chat, token, action), tok)
			if problem != "" {
				v.add("page_token", "bad")
			} else {
				before = *pos
			}
		}
		call := checkOutcome(t, req, err, fieldsOf(v), q, "ListAuditEvents")
		if len(v) > 0 {
			return
		}
		got := call.args[0].(db.AuditFilter)
		checkStoredID(t, "chat_id", chatID, chat, got.ChatID)
		checkStoredID(t, "token_id", tokenID, token, got.TokenID)
		want := db.AuditFilter{ChatID: chat, TokenID: token, Action: action, BeforeID: before, Limit: wantLimit + 1}
		if got != want {
			t.Fatalf("the store got filter %+v, want %+v", got, want)
		}
		if utf8.ValidString(action) && strings.ContainsRune(action, 0) {
			t.Fatalf("accepted the action %q, which holds NUL: PostgreSQL refuses it and the call fails with INTERNAL instead of INVALID_ARGUMENT", action)
		}
	})
}
