package resolve

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/errs"
)

// cfgState is a config's state for docs/CONTRACT.md §2.1.
type cfgState string

const (
	stUsable           cfgState = "usable"
	stMissing          cfgState = "missing"           // the id names no row
	stDeleted          cfgState = "deleted"           // MODEL_CONFIG_NOT_FOUND
	stDisabled         cfgState = "disabled"          // MODEL_CONFIG_DISABLED
	stProviderMissing  cfgState = "provider_missing"  // PROVIDER_NOT_FOUND
	stProviderDeleted  cfgState = "provider_deleted"  // PROVIDER_NOT_FOUND
	stProviderDisabled cfgState = "provider_disabled" // PROVIDER_DISABLED
	stHostNotAllowed   cfgState = "host_not_allowed"  // PROVIDER_HOST_NOT_ALLOWED
)

var allStates = []cfgState{stUsable, stMissing, stDeleted, stDisabled, stProviderMissing, stProviderDeleted, stProviderDisabled, stHostNotAllowed}

// credState is what a config's provider offers for docs/CONTRACT.md §2.2.
type credState string

const (
	credCentral      credState = "central"       // policy disabled, a central key → CENTRAL
	credUser         credState = "user"          // policy optional, user and central keys → USER (CENTRAL without BYOK)
	credUserRequired credState = "user_required" // policy required, a central key, no user key → USER_KEY_REQUIRED (CENTRAL without BYOK)
	credNone         credState = "none"          // policy disabled, no key, not bedrock → NO_CREDENTIALS
	credAmbient      credState = "ambient"       // bedrock, policy disabled, no key → AMBIENT
	// Workers' reports (docs/CONTRACT.md §17):
	credCooling     credState = "cooling"      // policy disabled, two keys cooling down (one suspended) → CREDENTIALS_COOLING_DOWN
	credSuspended   credState = "suspended"    // policy disabled, every key suspended → NO_CREDENTIALS
	credUserInvalid credState = "user_invalid" // policy optional, the owner's key invalid, a central key → CENTRAL, skipped (USER_KEY_REQUIRED... without BYOK: CENTRAL)
	credInvalidReq  credState = "invalid_req"  // policy required, the owner's key invalid, a central key → USER_KEY_INVALID (CENTRAL without BYOK)
	credRoundRobin  credState = "round_robin"  // round robin over four keys: one cooling, one suspended, two available
	credBedrockCool credState = "bedrock_cool" // bedrock, its only key cooling down → CREDENTIALS_COOLING_DOWN, not ambient
)

var allCreds = []credState{credCentral, credUser, credUserRequired, credNone, credAmbient,
	credCooling, credSuspended, credUserInvalid, credInvalidReq, credRoundRobin, credBedrockCool}

var allPurposes = []Purpose{PurposeChat, PurposeSubagent, PurposePersonalOverride, PurposeTitle, PurposeCompaction}
var softPurposes = []Purpose{PurposeSubagent, PurposePersonalOverride, PurposeCompaction}

// slot adds a config on a provider of its own, with the given credentials and state.
func (w *world) slot(state cfgState, cred credState) *ModelConfig {
	typ, policy := "openai", BYOKDisabled
	switch cred {
	case credUser, credUserInvalid:
		policy = BYOKOptional
	case credUserRequired, credInvalidReq:
		policy = BYOKRequired
	case credAmbient, credBedrockCool:
		typ = "bedrock"
	}
	p := w.provider(typ, policy)
	switch cred {
	case credCentral, credUserRequired:
		w.centralKey(p)
	case credUser:
		w.userKey(p)
		w.centralKey(p)
	case credCooling:
		w.centralKeyWith(p, w.cooling(time.Minute))
		w.centralKeyWith(p, suspended)
		w.centralKeyWith(p, w.cooling(20*time.Second))
		w.centralKeyWith(p, Health{CoolingUntil: w.now.Add(-time.Second), Suspended: true})
	case credSuspended:
		w.centralKeyWith(p, suspended)
		w.centralKeyWith(p, Health{CoolingUntil: w.now.Add(time.Hour), Suspended: true})
	case credUserInvalid, credInvalidReq:
		w.userKey(p).Health = suspended
		w.centralKeyWith(p, Health{CoolingUntil: w.now.Add(-time.Minute)}) // a cooldown that ended
	case credRoundRobin:
		p.CentralKeyPolicy = PolicyRoundRobin
		w.centralKeyWith(p, w.cooling(time.Second))
		w.centralKey(p)
		w.centralKeyWith(p, suspended)
		w.centralKey(p)
	case credBedrockCool:
		w.centralKeyWith(p, w.cooling(time.Millisecond))
	}
	c := w.config(p)
	switch state {
	case stMissing:
		delete(w.src.configs, c.ID)
	case stDeleted:
		c.Deleted = true
	case stDisabled:
		c.Enabled = false
	case stProviderMissing:
		c.Provider = nil
	case stProviderDeleted:
		p.Deleted, p.Enabled = true, false
	case stProviderDisabled:
		p.Enabled = false
	case stHostNotAllowed:
		p.BaseURL = forbiddenURL
	}
	return c
}

// runAgainstOracle resolves and compares with the oracle, and checks the Snapshot call.
func runAgainstOracle(t *testing.T, w *world, allow bool, p Purpose, id uuid.UUID) {
	t.Helper()
	want := w.expect(allow, p, id)
	res, err := w.resolve(allow, p, id)
	checkOutcome(t, w, want, res, err)
	checkSnapshotCall(t, w, id)
	checkNoSecretLeak(t, w, res, err)
}

func checkSnapshotCall(t *testing.T, w *world, id uuid.UUID) {
	t.Helper()
	if len(w.src.snapRequested) != 1 || w.src.snapRequested[0] != id {
		t.Errorf("Snapshot called with requested ids %v, want once with %s", w.src.snapRequested, id)
	}
}

// checkNoSecretLeak: no error message and no printed result carries a key's plaintext.
func checkNoSecretLeak(t *testing.T, w *world, res *Result, err error) {
	t.Helper()
	var printed string
	if err != nil {
		printed = err.Error()
	}
	if res != nil {
		printed += fmt.Sprintf("%+v %#v %v", *res, res.Credential, res.Credential.Secret)
	}
	var secrets []string
	for _, k := range w.allKeys() {
		secrets = append(secrets, plainOf(k))
	}
	for _, s := range secrets {
		if strings.Contains(printed, s) {
			t.Errorf("a secret is printed: %s", printed)
		}
	}
}

// Every purpose × every state of the requested config × every credential outcome of its
// provider × --allow-byok, with the chat's own model and the default both usable.
func TestResolveRequestedMatrix(t *testing.T) {
	for _, p := range allPurposes {
		for _, st := range allStates {
			for _, cr := range allCreds {
				for _, allow := range []bool{true, false} {
					t.Run(fmt.Sprintf("%s/%s/%s/allow=%v", p, st, cr, allow), func(t *testing.T) {
						w := newWorld()
						c := w.slot(stUsable, credCentral)
						w.chatModel(c)
						d := w.slot(stUsable, credUser)
						w.makeDefault(d)
						r := w.slot(st, cr)
						runAgainstOracle(t, w, allow, p, r.ID)
					})
				}
			}
		}
	}
}

// chatVariant and defaultVariant set up the chat's own model and the default for the chain tests.
type variant struct {
	name  string
	state cfgState
	cred  credState
	none  bool // the chat has no model / there is no default
}

var chatVariants = []variant{
	{name: "ok", state: stUsable, cred: credCentral},
	{name: "nocred", state: stUsable, cred: credNone},
	{name: "user_required", state: stUsable, cred: credUserRequired},
	{name: "disabled", state: stDisabled, cred: credCentral},
	{name: "deleted", state: stDeleted, cred: credCentral},
	{name: "host_not_allowed", state: stHostNotAllowed, cred: credCentral},
	{name: "none", none: true},
}

var defaultVariants = []variant{
	{name: "absent", none: true},
	{name: "ok", state: stUsable, cred: credAmbient},
	{name: "nocred", state: stUsable, cred: credNone},
	{name: "disabled", state: stDisabled, cred: credCentral},
	{name: "provider_disabled", state: stProviderDisabled, cred: credCentral},
	{name: "deleted", state: stDeleted, cred: credCentral}, // a deleted default is no default
	{name: "host_not_allowed", state: stHostNotAllowed, cred: credAmbient},
	{name: "is_chat_model"},
	{name: "is_requested"},
}

// Fallback chains: the requested config × the chat's own model × the default, for every purpose.
func TestResolveFallbackChains(t *testing.T) {
	requested := []variant{
		{name: "ok", state: stUsable, cred: credCentral},
		{name: "nocred", state: stUsable, cred: credNone},
		{name: "user_required", state: stUsable, cred: credUserRequired},
		{name: "missing", state: stMissing, cred: credCentral},
		{name: "disabled", state: stDisabled, cred: credCentral},
		{name: "provider_missing", state: stProviderMissing, cred: credCentral},
		{name: "provider_disabled", state: stProviderDisabled, cred: credCentral},
		{name: "host_not_allowed", state: stHostNotAllowed, cred: credAmbient},
	}
	for _, p := range allPurposes {
		for _, rv := range requested {
			for _, cv := range chatVariants {
				for _, dv := range defaultVariants {
					if (dv.name == "is_chat_model" && cv.none) || (dv.name == "is_requested" && rv.state == stMissing) {
						continue // no such row to be the default
					}
					t.Run(fmt.Sprintf("%s/requested=%s/chat=%s/default=%s", p, rv.name, cv.name, dv.name), func(t *testing.T) {
						w := newWorld()
						r := w.slot(rv.state, rv.cred)
						var c *ModelConfig
						if !cv.none {
							c = w.slot(cv.state, cv.cred)
							w.chatModel(c)
						}
						switch {
						case dv.name == "is_chat_model":
							w.makeDefault(c)
						case dv.name == "is_requested":
							w.makeDefault(r)
						case !dv.none:
							w.makeDefault(w.slot(dv.state, dv.cred))
						}
						runAgainstOracle(t, w, true, p, r.ID)
					})
				}
			}
		}
	}
}

// An empty model_config_id is the chat's own model resolved as PURPOSE_CHAT, whatever the purpose.
func TestResolveOwnModelMatrix(t *testing.T) {
	for _, p := range allPurposes {
		for _, st := range append(append([]cfgState{}, allStates...), "none") {
			for _, cr := range []credState{credCentral, credUserRequired, credNone, credAmbient} {
				if st == "none" && cr != credCentral {
					continue
				}
				for _, dv := range defaultVariants {
					if dv.name == "is_requested" || st == "none" && dv.name == "is_chat_model" || st == stMissing && dv.name == "is_chat_model" {
						continue
					}
					t.Run(fmt.Sprintf("%s/chat=%s,%s/default=%s", p, st, cr, dv.name), func(t *testing.T) {
						w := newWorld()
						var c *ModelConfig
						if st != "none" {
							c = w.slot(st, cr)
							w.chatModel(c)
						}
						switch {
						case dv.name == "is_chat_model":
							w.makeDefault(c)
						case !dv.none:
							w.makeDefault(w.slot(dv.state, dv.cred))
						}
						want := w.expect(true, p, uuid.Nil)
						// The oracle's own invariant: the purpose does not matter.
						if chat := w.expect(true, PurposeChat, uuid.Nil); fmt.Sprint(chat) != fmt.Sprint(want) {
							t.Fatalf("oracle: %s differs from chat", p)
						}
						if want.err == "" && want.requested != w.src.chat.ModelConfigID {
							t.Fatalf("oracle: requested %s, want the chat's own model", want.requested)
						}
						runAgainstOracle(t, w, true, p, uuid.Nil)
					})
				}
			}
		}
	}
}

// lit is a literal expectation; configs are named "R" (requested), "C" (the chat's own model), "D"
// (the default).
type lit struct {
	err       errs.Reason
	cfg       string
	requested string
	fallback  bool
	reason    errs.Reason
	source    CredentialSource
	reads     []string // the configs whose providers' keys must be read, and no others
}

type slotSpec struct {
	state cfgState
	cred  credState
}

func sl(st cfgState, cr credState) *slotSpec { return &slotSpec{st, cr} }

var okSlot = sl(stUsable, credCentral)

// The docs/CONTRACT.md §2.3 rules as hand-written cases, independent of the oracle.
func TestResolveScenarios(t *testing.T) {
	type scenario struct {
		name      string
		purposes  []Purpose
		r, c, d   *slotSpec // nil: no such config (the chat has no model, there is no default)
		defaultIs string    // "R" or "C" to make that config the default instead of d
		req       string    // "R", "C" or "" (empty model_config_id)
		want      lit
	}
	title := []Purpose{PurposeTitle}
	chat := []Purpose{PurposeChat}
	tests := []scenario{
		{"chat: usable", chat, okSlot, okSlot, okSlot, "", "R", lit{cfg: "R", requested: "R", source: SourceCentral, reads: []string{"R"}}},
		{"chat: user key", chat, sl(stUsable, credUser), okSlot, okSlot, "", "R", lit{cfg: "R", requested: "R", source: SourceUser, reads: []string{"R"}}},
		{"chat: ambient", chat, sl(stUsable, credAmbient), okSlot, okSlot, "", "R", lit{cfg: "R", requested: "R", source: SourceAmbient, reads: []string{"R"}}},
		{"chat: missing → default", chat, sl(stMissing, credCentral), okSlot, okSlot, "", "R", lit{cfg: "D", requested: "R", fallback: true, reason: errs.ModelConfigNotFound, source: SourceCentral, reads: []string{"D"}}},
		{"chat: deleted → default", chat, sl(stDeleted, credCentral), okSlot, okSlot, "", "R", lit{cfg: "D", requested: "R", fallback: true, reason: errs.ModelConfigNotFound, source: SourceCentral, reads: []string{"D"}}},
		{"chat: disabled → default", chat, sl(stDisabled, credCentral), okSlot, okSlot, "", "R", lit{cfg: "D", requested: "R", fallback: true, reason: errs.ModelConfigDisabled, source: SourceCentral, reads: []string{"D"}}},
		{"chat: provider missing → default", chat, sl(stProviderMissing, credCentral), okSlot, okSlot, "", "R", lit{cfg: "D", requested: "R", fallback: true, reason: errs.ProviderNotFound, source: SourceCentral, reads: []string{"D"}}},
		{"chat: provider deleted → default", chat, sl(stProviderDeleted, credCentral), okSlot, okSlot, "", "R", lit{cfg: "D", requested: "R", fallback: true, reason: errs.ProviderNotFound, source: SourceCentral, reads: []string{"D"}}},
		{"chat: provider disabled → default", chat, sl(stProviderDisabled, credCentral), okSlot, okSlot, "", "R", lit{cfg: "D", requested: "R", fallback: true, reason: errs.ProviderDisabled, source: SourceCentral, reads: []string{"D"}}},
		{"chat: host not allowed → default", chat, sl(stHostNotAllowed, credCentral), okSlot, okSlot, "", "R", lit{cfg: "D", requested: "R", fallback: true, reason: errs.ProviderHostNotAllowed, source: SourceCentral, reads: []string{"D"}}},
		{"chat: host not allowed, no default", chat, sl(stHostNotAllowed, credCentral), okSlot, nil, "", "R", lit{err: errs.NoUsableModelConfig}},
		{"chat: disabled, default's host not allowed", chat, sl(stDisabled, credCentral), okSlot, sl(stHostNotAllowed, credAmbient), "", "R", lit{err: errs.NoUsableModelConfig}},
		{"chat: disabled, no default", chat, sl(stDisabled, credCentral), okSlot, nil, "", "R", lit{err: errs.NoUsableModelConfig}},
		{"chat: disabled, default disabled", chat, sl(stDisabled, credCentral), okSlot, sl(stDisabled, credCentral), "", "R", lit{err: errs.NoUsableModelConfig}},
		{"chat: disabled, default's provider disabled", chat, sl(stDisabled, credCentral), okSlot, sl(stProviderDisabled, credCentral), "", "R", lit{err: errs.NoUsableModelConfig}},
		{"chat: the disabled requested is the default", chat, sl(stDisabled, credCentral), okSlot, nil, "R", "R", lit{err: errs.NoUsableModelConfig}},
		{"chat: no credentials is an error, no fallback", chat, sl(stUsable, credNone), okSlot, okSlot, "", "R", lit{err: errs.NoCredentials, reads: []string{"R"}}},
		{"chat: user key required is an error, no fallback", chat, sl(stUsable, credUserRequired), okSlot, okSlot, "", "R", lit{err: errs.UserKeyRequired, reads: []string{"R"}}},
		{"chat: default without credentials is an error", chat, sl(stDisabled, credCentral), okSlot, sl(stUsable, credNone), "", "R", lit{err: errs.NoCredentials, reads: []string{"D"}}},
		{"chat: chat's model named explicitly", chat, okSlot, okSlot, okSlot, "", "C", lit{cfg: "C", requested: "C", source: SourceCentral, reads: []string{"C"}}},

		// An empty model_config_id is the chat's own model as PURPOSE_CHAT, for every purpose.
		{"empty id: own model", allPurposes, okSlot, okSlot, okSlot, "", "", lit{cfg: "C", requested: "C", source: SourceCentral, reads: []string{"C"}}},
		{"empty id: own model disabled → default", allPurposes, okSlot, sl(stDisabled, credCentral), okSlot, "", "", lit{cfg: "D", requested: "C", fallback: true, reason: errs.ModelConfigDisabled, source: SourceCentral, reads: []string{"D"}}},
		{"empty id: own model deleted → default", allPurposes, okSlot, sl(stDeleted, credCentral), okSlot, "", "", lit{cfg: "D", requested: "C", fallback: true, reason: errs.ModelConfigNotFound, source: SourceCentral, reads: []string{"D"}}},
		{"empty id: own model's host not allowed → default", allPurposes, okSlot, sl(stHostNotAllowed, credCentral), okSlot, "", "", lit{cfg: "D", requested: "C", fallback: true, reason: errs.ProviderHostNotAllowed, source: SourceCentral, reads: []string{"D"}}},
		{"empty id: own model without credentials", allPurposes, okSlot, sl(stUsable, credNone), okSlot, "", "", lit{err: errs.NoCredentials, reads: []string{"C"}}},
		{"empty id: no own model → default", allPurposes, okSlot, nil, okSlot, "", "", lit{cfg: "D", requested: "", fallback: true, reason: errs.ModelConfigNotFound, source: SourceCentral, reads: []string{"D"}}},
		{"empty id: no own model, no default", allPurposes, okSlot, nil, nil, "", "", lit{err: errs.NoUsableModelConfig}},

		// Soft overrides.
		{"soft: usable", softPurposes, okSlot, okSlot, okSlot, "", "R", lit{cfg: "R", requested: "R", source: SourceCentral, reads: []string{"R"}}},
		{"soft: missing → chat", softPurposes, sl(stMissing, credCentral), okSlot, okSlot, "", "R", lit{cfg: "C", requested: "R", fallback: true, reason: errs.ModelConfigNotFound, source: SourceCentral, reads: []string{"C"}}},
		{"soft: deleted → chat", softPurposes, sl(stDeleted, credCentral), okSlot, okSlot, "", "R", lit{cfg: "C", requested: "R", fallback: true, reason: errs.ModelConfigNotFound, source: SourceCentral, reads: []string{"C"}}},
		{"soft: disabled → chat", softPurposes, sl(stDisabled, credCentral), okSlot, okSlot, "", "R", lit{cfg: "C", requested: "R", fallback: true, reason: errs.ModelConfigDisabled, source: SourceCentral, reads: []string{"C"}}},
		{"soft: provider missing → chat", softPurposes, sl(stProviderMissing, credCentral), okSlot, okSlot, "", "R", lit{cfg: "C", requested: "R", fallback: true, reason: errs.ProviderNotFound, source: SourceCentral, reads: []string{"C"}}},
		{"soft: provider disabled → chat", softPurposes, sl(stProviderDisabled, credCentral), okSlot, okSlot, "", "R", lit{cfg: "C", requested: "R", fallback: true, reason: errs.ProviderDisabled, source: SourceCentral, reads: []string{"C"}}},
		{"soft: host not allowed → chat", softPurposes, sl(stHostNotAllowed, credAmbient), okSlot, okSlot, "", "R", lit{cfg: "C", requested: "R", fallback: true, reason: errs.ProviderHostNotAllowed, source: SourceCentral, reads: []string{"C"}}},
		{"soft: host not allowed → chat's host not allowed → default", softPurposes, sl(stHostNotAllowed, credAmbient), sl(stHostNotAllowed, credCentral), okSlot, "", "R", lit{cfg: "D", requested: "R", fallback: true, reason: errs.ProviderHostNotAllowed, source: SourceCentral, reads: []string{"D"}}},
		{"soft: no credentials → chat", softPurposes, sl(stUsable, credNone), okSlot, okSlot, "", "R", lit{cfg: "C", requested: "R", fallback: true, reason: errs.NoCredentials, source: SourceCentral, reads: []string{"R", "C"}}},
		{"soft: user key required → chat", softPurposes, sl(stUsable, credUserRequired), sl(stUsable, credUser), okSlot, "", "R", lit{cfg: "C", requested: "R", fallback: true, reason: errs.UserKeyRequired, source: SourceUser, reads: []string{"R", "C"}}},
		{"soft: disabled → chat disabled → default", softPurposes, sl(stDisabled, credCentral), sl(stDisabled, credCentral), okSlot, "", "R", lit{cfg: "D", requested: "R", fallback: true, reason: errs.ModelConfigDisabled, source: SourceCentral, reads: []string{"D"}}},
		{"soft: no credentials → chat deleted → default", softPurposes, sl(stUsable, credNone), sl(stDeleted, credCentral), okSlot, "", "R", lit{cfg: "D", requested: "R", fallback: true, reason: errs.NoCredentials, source: SourceCentral, reads: []string{"R", "D"}}},
		{"soft: provider disabled → no chat model → default", softPurposes, sl(stProviderDisabled, credCentral), nil, okSlot, "", "R", lit{cfg: "D", requested: "R", fallback: true, reason: errs.ProviderDisabled, source: SourceCentral, reads: []string{"D"}}},
		{"soft: disabled → chat without credentials", softPurposes, sl(stDisabled, credCentral), sl(stUsable, credNone), okSlot, "", "R", lit{err: errs.NoCredentials, reads: []string{"C"}}},
		{"soft: disabled → chat disabled, no default", softPurposes, sl(stDisabled, credCentral), sl(stDisabled, credCentral), nil, "", "R", lit{err: errs.NoUsableModelConfig}},
		{"soft: disabled → chat model is the disabled default", softPurposes, sl(stDisabled, credCentral), sl(stDisabled, credCentral), nil, "C", "R", lit{err: errs.NoUsableModelConfig}},
		{"soft: the chat's own model named, without credentials", softPurposes, okSlot, sl(stUsable, credNone), okSlot, "", "C", lit{err: errs.NoCredentials, reads: []string{"C"}}},
		{"soft: the chat's own model named, disabled → default", softPurposes, okSlot, sl(stDisabled, credCentral), okSlot, "", "C", lit{cfg: "D", requested: "C", fallback: true, reason: errs.ModelConfigDisabled, source: SourceCentral, reads: []string{"D"}}},

		// PURPOSE_TITLE: a hard override; it reads only the override's provider's keys.
		{"title: usable", title, okSlot, okSlot, okSlot, "", "R", lit{cfg: "R", requested: "R", source: SourceCentral, reads: []string{"R"}}},
		{"title: user key of the override's provider", title, sl(stUsable, credUser), sl(stUsable, credUser), okSlot, "", "R", lit{cfg: "R", requested: "R", source: SourceUser, reads: []string{"R"}}},
		{"title: missing", title, sl(stMissing, credCentral), okSlot, okSlot, "", "R", lit{err: errs.ModelConfigNotFound}},
		{"title: deleted", title, sl(stDeleted, credCentral), okSlot, okSlot, "", "R", lit{err: errs.ModelConfigNotFound}},
		{"title: disabled", title, sl(stDisabled, credCentral), okSlot, okSlot, "", "R", lit{err: errs.ModelConfigDisabled}},
		{"title: provider missing", title, sl(stProviderMissing, credCentral), okSlot, okSlot, "", "R", lit{err: errs.ProviderNotFound}},
		{"title: provider deleted", title, sl(stProviderDeleted, credCentral), okSlot, okSlot, "", "R", lit{err: errs.ProviderNotFound}},
		{"title: provider disabled", title, sl(stProviderDisabled, credCentral), okSlot, okSlot, "", "R", lit{err: errs.ProviderDisabled}},
		{"title: host not allowed", title, sl(stHostNotAllowed, credAmbient), okSlot, okSlot, "", "R", lit{err: errs.ProviderHostNotAllowed}},
		{"title: user key required", title, sl(stUsable, credUserRequired), okSlot, okSlot, "", "R", lit{err: errs.UserKeyRequired, reads: []string{"R"}}},
		{"title: no credentials", title, sl(stUsable, credNone), okSlot, okSlot, "", "R", lit{err: errs.NoCredentials, reads: []string{"R"}}},
		{"title: the disabled override is the default", title, sl(stDisabled, credCentral), okSlot, nil, "R", "R", lit{err: errs.ModelConfigDisabled}},
	}
	for _, tt := range tests {
		for _, p := range tt.purposes {
			t.Run(fmt.Sprintf("%s/%s", tt.name, p), func(t *testing.T) {
				w := newWorld()
				cfgs := map[string]*ModelConfig{}
				if tt.r != nil {
					cfgs["R"] = w.slot(tt.r.state, tt.r.cred)
				}
				if tt.c != nil {
					cfgs["C"] = w.slot(tt.c.state, tt.c.cred)
					w.chatModel(cfgs["C"])
				}
				if tt.d != nil {
					cfgs["D"] = w.slot(tt.d.state, tt.d.cred)
					w.makeDefault(cfgs["D"])
				}
				if tt.defaultIs != "" {
					w.makeDefault(cfgs[tt.defaultIs])
				}
				id := func(name string) uuid.UUID {
					if c := cfgs[name]; c != nil {
						return c.ID
					}
					return uuid.Nil
				}
				want := specOutcome{err: tt.want.err, config: id(tt.want.cfg), requested: id(tt.want.requested),
					fallback: tt.want.fallback, reason: tt.want.reason, source: tt.want.source,
					userReads: map[uuid.UUID]int{}, centralReads: map[uuid.UUID]int{}}
				if want.err == "" {
					switch tt.want.source {
					case SourceUser:
						want.keyID = w.src.userKeys[[2]uuid.UUID{w.owner(), cfgs[tt.want.cfg].ProviderID}].ID
					case SourceCentral:
						want.keyID = w.src.centralKeys[cfgs[tt.want.cfg].ProviderID][0].ID
					}
				}
				res, err := w.resolve(true, p, id(tt.req))
				if want.err == "" {
					if err != nil {
						t.Fatalf("Resolve error = %v, want config %s", err, tt.want.cfg)
					}
					checkResult(t, w, res, want)
				} else if errs.ReasonOf(err) != want.err || res != nil {
					t.Fatalf("Resolve = %v, %v; want error %s", res, err, want.err)
				}
				read := map[uuid.UUID]bool{}
				for _, r := range w.src.reads {
					if r.kind != "snapshot" {
						read[r.id] = true
					}
				}
				wantRead := map[uuid.UUID]bool{}
				for _, name := range tt.want.reads {
					wantRead[cfgs[name].ProviderID] = true
				}
				if len(read) != len(wantRead) {
					t.Errorf("keys read for %d providers, want %v", len(read), tt.want.reads)
				}
				for pid := range wantRead {
					if !read[pid] {
						t.Errorf("keys of a provider of %v were not read", tt.want.reads)
					}
				}
				checkSnapshotCall(t, w, id(tt.req))
			})
		}
	}
}
