package resolve

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/egress"
	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/pkg/secret"
)

// This file holds the test fixtures of package resolve: an in-memory Source that counts what it is
// asked for, a small world builder, and an oracle that restates docs/CONTRACT.md §2 without calling the
// code under test.

// read is one call the fake served, in order.
type read struct {
	kind string    // "snapshot", "user" or "central"
	id   uuid.UUID // the chat id for a snapshot, the provider id for a key
	user uuid.UUID // the user id of a "user" read
}

// fakeSource is an in-memory Source: the rows of a tiny database and the reads made of it.
type fakeSource struct {
	mu sync.Mutex

	chat        Chat
	configs     map[uuid.UUID]*ModelConfig // every chat_model_configs row, deleted ones included
	userKeys    map[[2]uuid.UUID]*Key      // (user id, provider id) → the user's key
	centralKeys map[uuid.UUID][]*Key       // provider id → its enabled central keys, oldest first

	snapErr    error
	userErr    map[uuid.UUID]error // by provider id
	centralErr map[uuid.UUID]error // by provider id

	reads []read
	// snapRequested are the requestedConfigID arguments Snapshot was called with.
	snapRequested []uuid.UUID
}

func newFakeSource() *fakeSource {
	return &fakeSource{
		chat:        Chat{ID: uuid.New(), OwnerID: uuid.New()},
		configs:     map[uuid.UUID]*ModelConfig{},
		userKeys:    map[[2]uuid.UUID]*Key{},
		centralKeys: map[uuid.UUID][]*Key{},
		userErr:     map[uuid.UUID]error{},
		centralErr:  map[uuid.UUID]error{},
	}
}

// defaultConfig is the live (not deleted) config with is_default set, or nil.
func (f *fakeSource) defaultConfig() *ModelConfig {
	var def *ModelConfig
	for _, c := range f.configs {
		if c.IsDefault && !c.Deleted {
			if def != nil {
				panic("test bug: two live default configs")
			}
			def = c
		}
	}
	return def
}

func (f *fakeSource) Snapshot(_ context.Context, chatID, requestedConfigID uuid.UUID) (*Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads = append(f.reads, read{kind: "snapshot", id: chatID})
	f.snapRequested = append(f.snapRequested, requestedConfigID)
	if f.snapErr != nil {
		return nil, f.snapErr
	}
	if chatID != f.chat.ID {
		return nil, errs.New(errs.ChatNotFound, "no such chat", "chat_id", chatID.String())
	}
	// Like the real store, the snapshot holds only the configs a resolution may need.
	s := &Snapshot{Chat: f.chat, Configs: map[uuid.UUID]*ModelConfig{}}
	for _, id := range []uuid.UUID{requestedConfigID, f.chat.ModelConfigID} {
		if c, ok := f.configs[id]; ok {
			s.Configs[id] = c
		}
	}
	if def := f.defaultConfig(); def != nil {
		s.DefaultID = def.ID
		s.Configs[def.ID] = def
	}
	return s, nil
}

func (f *fakeSource) UserKey(_ context.Context, userID, providerID uuid.UUID) (*Key, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads = append(f.reads, read{kind: "user", id: providerID, user: userID})
	if err := f.userErr[providerID]; err != nil {
		return nil, err
	}
	return f.userKeys[[2]uuid.UUID{userID, providerID}], nil
}

func (f *fakeSource) CentralKeys(_ context.Context, providerID uuid.UUID) ([]*Key, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads = append(f.reads, read{kind: "central", id: providerID})
	if err := f.centralErr[providerID]; err != nil {
		return nil, err
	}
	return f.centralKeys[providerID], nil
}

// keyReads counts the key reads of one kind by provider id.
func (f *fakeSource) keyReads(kind string) map[uuid.UUID]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := map[uuid.UUID]int{}
	for _, r := range f.reads {
		if r.kind == kind {
			n[r.id]++
		}
	}
	return n
}

// count is how many reads of kind were made for id.
func (f *fakeSource) count(kind string, id uuid.UUID) int { return f.keyReads(kind)[id] }

// world builds the rows of a fakeSource. Its deployment allows the provider hosts in allowed
// (--allowed-provider-hosts); half of its providers point base_url at one of them, the others
// leave it empty (the SDK's default).
type world struct {
	src     *fakeSource
	n       int
	allowed []string // nil: no list, every host allowed
	// now is the resolutions' clock; turn the round-robin turn every provider is given, and
	// turns how many times the last resolution asked for one.
	now   time.Time
	turn  uint64
	turns int
}

// worldHosts is the --allowed-provider-hosts of every world unless a test changes it.
var worldHosts = []string{"api.allowed.test", "*.eu.allowed.test"}

// forbiddenURL is a base_url outside worldHosts.
const forbiddenURL = "https://collector.elsewhere.test/v1"

func newWorld() *world {
	return &world{src: newFakeSource(), allowed: worldHosts, now: time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC), turn: 7}
}

// hosts is the world's list as the server would parse it.
func (w *world) hosts() *egress.AllowList {
	l, err := egress.Parse(strings.Join(w.allowed, ","))
	if err != nil {
		panic(err)
	}
	return l
}

func (w *world) owner() uuid.UUID { return w.src.chat.OwnerID }

// provider adds a live, enabled provider.
func (w *world) provider(typ string, policy BYOKPolicy) *Provider {
	w.n++
	p := &Provider{ID: uuid.New(), Type: typ, Name: fmt.Sprintf("%s-%d", typ, w.n), Enabled: true, BYOKPolicy: policy}
	switch w.n % 3 {
	case 1:
		p.BaseURL = "https://api.allowed.test/v1"
	case 2:
		p.BaseURL = fmt.Sprintf("https://region-%d.eu.allowed.test:8443/v1", w.n)
	}
	return p
}

// config adds a live, enabled config of provider p.
func (w *world) config(p *Provider) *ModelConfig {
	w.n++
	c := &ModelConfig{ID: uuid.New(), ProviderID: p.ID, Model: fmt.Sprintf("model-%d", w.n), Enabled: true,
		ContextLimit: 1000, CompressionThreshold: 80, Options: []byte("{}"), Provider: p}
	w.src.configs[c.ID] = c
	return c
}

// centralKey adds an available central key to p, newer than its others.
func (w *world) centralKey(p *Provider) *Key { return w.centralKeyWith(p, Health{}) }

// centralKeyWith adds a central key with the given health to p, newer than its others.
func (w *world) centralKeyWith(p *Provider, h Health) *Key {
	k := OpenedKey(uuid.New(), secret.New(fmt.Sprintf("central-%s-%d", p.Name, len(w.src.centralKeys[p.ID]))), "")
	k.Health = h
	w.src.centralKeys[p.ID] = append(w.src.centralKeys[p.ID], k)
	return k
}

// cooling is the health of a key cooling down for d after the world's now; suspended a suspended one.
func (w *world) cooling(d time.Duration) Health { return Health{CoolingUntil: w.now.Add(d)} }

var suspended = Health{Suspended: true}

// allKeys lists every key the world holds.
func (w *world) allKeys() []*Key {
	var out []*Key
	for _, k := range w.src.userKeys {
		out = append(out, k)
	}
	for _, pool := range w.src.centralKeys {
		out = append(out, pool...)
	}
	return out
}

// plainOf is k's plaintext.
func plainOf(k *Key) string {
	s, _, err := k.Open(context.Background())
	if err != nil {
		panic(err)
	}
	return s.Reveal()
}

func (w *world) userKey(p *Provider) *Key {
	k := OpenedKey(uuid.New(), secret.New("user-"+p.Name), "")
	w.src.userKeys[[2]uuid.UUID{w.owner(), p.ID}] = k
	return k
}

func (w *world) chatModel(c *ModelConfig)   { w.src.chat.ModelConfigID = c.ID }
func (w *world) makeDefault(c *ModelConfig) { c.IsDefault = true }

func (w *world) resolve(allowBYOK bool, p Purpose, id uuid.UUID) (*Result, error) {
	w.turns = 0
	opts := Options{AllowBYOK: allowBYOK, AllowedHosts: w.hosts(), Now: func() time.Time { return w.now },
		Turn: func(uuid.UUID) uint64 { w.turns++; return w.turn }}
	return Resolve(context.Background(), w.src, opts, Request{ChatID: w.src.chat.ID, ModelConfigID: id, Purpose: p})
}

// keyByID finds a key the world holds, for checking the secret a result carries.
func (w *world) keyByID(id uuid.UUID) *Key {
	for _, k := range w.allKeys() {
		if k.ID == id {
			return k
		}
	}
	return nil
}

// ---- The oracle: docs/CONTRACT.md §2 restated, independently of rules.go and resolve.go. ----

// specUnusable is docs/CONTRACT.md §2.1: exists and not deleted, enabled, provider exists and not deleted,
// provider enabled, its base_url host allowed, checked in that order. "" means usable.
func specUnusable(c *ModelConfig, allowed []string) errs.Reason {
	if c == nil || c.Deleted {
		return errs.ModelConfigNotFound
	}
	if !c.Enabled {
		return errs.ModelConfigDisabled
	}
	if c.Provider == nil || c.Provider.Deleted {
		return errs.ProviderNotFound
	}
	if !c.Provider.Enabled {
		return errs.ProviderDisabled
	}
	if !specHostAllowed(c.Provider.BaseURL, allowed) {
		return errs.ProviderHostNotAllowed
	}
	return ""
}

// specHostAllowed is docs/CONTRACT.md §7.5 for the well-formed URLs these tests use: no list or an
// empty base_url allows; else the host, in lower case, equals an entry or lies below a *.suffix.
func specHostAllowed(baseURL string, allowed []string) bool {
	if len(allowed) == 0 || baseURL == "" {
		return true
	}
	u, err := url.Parse(baseURL)
	if err != nil {
		return false
	}
	host := strings.ToLower(u.Hostname())
	for _, e := range allowed {
		if host == e || strings.HasPrefix(e, "*.") && strings.HasSuffix(host, e[1:]) {
			return true
		}
	}
	return false
}

// specCred is the outcome of docs/CONTRACT.md §2.2 and the key tables it had to read to get there.
type specCred struct {
	source      CredentialSource
	err         errs.Reason
	readUser    bool
	readCentral bool
	central     int           // the index of the central key answered with, among the provider's
	skipped     errs.Reason   // why the owner's key was passed over
	retryAfter  time.Duration // CREDENTIALS_COOLING_DOWN's RetryInfo
	turned      bool          // a round-robin turn was taken
}

// specUser is what the chat owner has for docs/CONTRACT.md §2.2: no key, a key, a key marked invalid.
type specUser int

const (
	userNone specUser = iota
	userValid
	userInvalid
)

// specKey is a central key's health as the contract states it (§17).
type specKey struct {
	suspended    bool
	coolingUntil time.Time // zero: never reported
}

// specCredential is docs/CONTRACT.md §2.2 for one available central key or none, without reports.
func specCredential(typ string, policy BYOKPolicy, allowBYOK, hasUser, hasCentral bool) specCred {
	user := userNone
	if hasUser {
		user = userValid
	}
	var central []specKey
	if hasCentral {
		central = []specKey{{}}
	}
	return specChoose(typ, policy, allowBYOK, user, central, PolicyOldest, time.Time{}, 0)
}

// specChoose is docs/CONTRACT.md §2.2, step by step: central is the provider's enabled keys oldest
// first, keyPolicy its central_key_policy, now the moment, turn the round-robin turn it would get.
func specChoose(typ string, policy BYOKPolicy, allowBYOK bool, user specUser, central []specKey, keyPolicy CentralKeyPolicy, now time.Time, turn uint64) specCred {
	byokAllowed := allowBYOK && policy != BYOKDisabled
	o := specCred{central: -1}
	// 1. BYOK allowed and the owner has a key not marked invalid → USER. The user table is read
	// only when BYOK is allowed.
	if byokAllowed {
		o.readUser = true
		if user == userValid {
			o.source = SourceUser
			return o
		}
		// 2. Else policy required → USER_KEY_INVALID (the owner's key is marked invalid) or
		// USER_KEY_REQUIRED (the owner has none).
		if policy == BYOKRequired {
			o.err = errs.UserKeyRequired
			if user == userInvalid {
				o.err = errs.UserKeyInvalid
			}
			return o
		}
		if user == userInvalid {
			o.skipped = errs.UserKeyInvalid // if anything is answered at all
		}
	}
	// 3. Else an available central key (enabled, not suspended, not cooling down at now) by the
	// policy: the oldest, or the turn-th of the available ones (mod their number) when there is a
	// choice under round robin.
	o.readCentral = true
	var available []int
	var firstBack time.Time
	for i, k := range central {
		cooling := now.Before(k.coolingUntil)
		if !k.suspended && !cooling {
			available = append(available, i)
		}
		if !k.suspended && cooling && (firstBack.IsZero() || k.coolingUntil.Before(firstBack)) {
			firstBack = k.coolingUntil
		}
	}
	if len(available) > 0 {
		o.source, o.central = SourceCentral, available[0]
		if keyPolicy == PolicyRoundRobin && len(available) > 1 {
			o.central, o.turned = available[turn%uint64(len(available))], true
		}
		return o
	}
	// 3b. None available but some cooling down → CREDENTIALS_COOLING_DOWN, RetryInfo to the first end.
	if !firstBack.IsZero() {
		o.err, o.retryAfter, o.skipped = errs.CredentialsCoolingDown, firstBack.Sub(now), ""
		return o
	}
	// 4. Else bedrock → AMBIENT.
	if typ == "bedrock" {
		o.source = SourceAmbient
		return o
	}
	// 5. Else USER_KEY_INVALID (the owner's key is marked invalid) or USER_KEY_REQUIRED when BYOK is
	// allowed, otherwise NO_CREDENTIALS.
	o.skipped = ""
	switch {
	case byokAllowed && user == userInvalid:
		o.err = errs.UserKeyInvalid
	case byokAllowed:
		o.err = errs.UserKeyRequired
	default:
		o.err = errs.NoCredentials
	}
	return o
}

// specOutcome is what docs/CONTRACT.md §2.3 says a Resolve call answers, and which keys it reads.
type specOutcome struct {
	err          errs.Reason
	retryAfter   time.Duration // of CREDENTIALS_COOLING_DOWN
	skipped      errs.Reason   // Credential.UserKeySkipped
	turns        int           // round-robin turns taken
	config       uuid.UUID
	source       CredentialSource
	keyID        uuid.UUID
	requested    uuid.UUID
	fallback     bool
	reason       errs.Reason
	userReads    map[uuid.UUID]int
	centralReads map[uuid.UUID]int
}

// expect computes the docs/CONTRACT.md §2.3 answer for the world's current rows.
func (w *world) expect(allowBYOK bool, purpose Purpose, id uuid.UUID) specOutcome {
	o := specOutcome{userReads: map[uuid.UUID]int{}, centralReads: map[uuid.UUID]int{}}
	lookup := func(id uuid.UUID) *ModelConfig { return w.src.configs[id] } // nil for uuid.Nil too
	// credential applies 2.2 to c's provider; keys are read at most once per provider.
	var retryAfter time.Duration
	credential := func(c *ModelConfig) (CredentialSource, uuid.UUID, errs.Reason) {
		p := c.Provider
		uk := w.src.userKeys[[2]uuid.UUID{w.owner(), p.ID}]
		user := userNone
		switch {
		case uk != nil && uk.Health.Suspended:
			user = userInvalid
		case uk != nil:
			user = userValid
		}
		var central []specKey
		for _, k := range w.src.centralKeys[p.ID] {
			central = append(central, specKey{suspended: k.Health.Suspended, coolingUntil: k.Health.CoolingUntil})
		}
		sc := specChoose(p.Type, p.BYOKPolicy, allowBYOK, user, central, p.CentralKeyPolicy, w.now, w.turn)
		if sc.readUser {
			o.userReads[p.ID] = 1
		}
		if sc.readCentral {
			o.centralReads[p.ID] = 1
		}
		if sc.turned {
			o.turns = 1
		}
		o.skipped, retryAfter = sc.skipped, sc.retryAfter
		switch sc.source {
		case SourceUser:
			return sc.source, uk.ID, ""
		case SourceCentral:
			return sc.source, w.src.centralKeys[p.ID][sc.central].ID, ""
		}
		return sc.source, uuid.Nil, sc.err
	}
	type answer struct {
		err       errs.Reason
		config    uuid.UUID
		source    CredentialSource
		keyID     uuid.UUID
		requested uuid.UUID
		fallback  bool
		reason    errs.Reason
	}
	// asChat is PURPOSE_CHAT: an unusable config is replaced by the default; a credential failure
	// is an error.
	asChat := func(id uuid.UUID) answer {
		c := lookup(id)
		why := specUnusable(c, w.allowed)
		if why == "" {
			src, key, cerr := credential(c)
			if cerr != "" {
				return answer{err: cerr}
			}
			return answer{config: c.ID, source: src, keyID: key, requested: id}
		}
		def := w.src.defaultConfig()
		if def == nil || specUnusable(def, w.allowed) != "" {
			return answer{err: errs.NoUsableModelConfig}
		}
		src, key, cerr := credential(def)
		if cerr != "" {
			return answer{err: cerr}
		}
		return answer{config: def.ID, source: src, keyID: key, requested: id, fallback: true, reason: why}
	}
	// strict is a config with no fallback: the error is why it cannot be used.
	strict := func(id uuid.UUID) answer {
		c := lookup(id)
		if why := specUnusable(c, w.allowed); why != "" {
			return answer{err: why}
		}
		src, key, cerr := credential(c)
		if cerr != "" {
			return answer{err: cerr}
		}
		return answer{config: c.ID, source: src, keyID: key, requested: id}
	}

	var a answer
	switch {
	case id == uuid.Nil: // the chat's own model, as PURPOSE_CHAT, whatever the purpose
		a = asChat(w.src.chat.ModelConfigID)
	case purpose == PurposeChat:
		a = asChat(id)
	case purpose == PurposeTitle:
		a = strict(id)
	default: // soft overrides
		a = strict(id)
		if a.err != "" {
			why := a.err
			a = asChat(w.src.chat.ModelConfigID)
			if a.err == "" {
				a.requested, a.fallback, a.reason = id, true, why
			}
		}
	}
	o.err, o.config, o.source, o.keyID = a.err, a.config, a.source, a.keyID
	o.requested, o.fallback, o.reason = a.requested, a.fallback, a.reason
	if a.err != errs.CredentialsCoolingDown {
		retryAfter = 0
	}
	if a.err != "" {
		o.skipped, o.turns = "", 0
	}
	o.retryAfter = retryAfter
	return o
}

// checkOutcome compares a Resolve answer and the reads the fake saw with the oracle's.
func checkOutcome(t *testing.T, w *world, want specOutcome, res *Result, err error) {
	t.Helper()
	if want.err != "" {
		if err == nil {
			t.Fatalf("Resolve = config %s (fallback=%v, reason=%s), want error %s",
				res.Config.ID, res.Fallback, res.FallbackReason, want.err)
		}
		if got := errs.ReasonOf(err); got != want.err {
			t.Errorf("error reason = %q (%v), want %q", got, err, want.err)
		}
		if res != nil {
			t.Errorf("Resolve returned a result (fallback=%v) together with error %v", res.Fallback, err)
		}
		var e *errs.Error
		if errors.As(err, &e) && e.RetryAfter != want.retryAfter {
			t.Errorf("RetryAfter = %v, want %v", e.RetryAfter, want.retryAfter)
		}
	} else {
		if err != nil {
			t.Fatalf("Resolve error = %v, want config %s", err, want.config)
		}
		checkResult(t, w, res, want)
	}
	checkReads(t, w, want)
}

func checkResult(t *testing.T, w *world, res *Result, want specOutcome) {
	t.Helper()
	if res.Config == nil || res.Config.ID != want.config {
		t.Fatalf("resolved config = %v, want %s", res.Config, want.config)
	}
	if res.Provider == nil || res.Provider != res.Config.Provider {
		t.Errorf("result provider %v is not the resolved config's provider %v", res.Provider, res.Config.Provider)
	}
	if res.RequestedConfigID != want.requested {
		t.Errorf("RequestedConfigID = %s, want %s", res.RequestedConfigID, want.requested)
	}
	if res.Fallback != want.fallback || res.FallbackReason != want.reason {
		t.Errorf("Fallback, FallbackReason = %v, %q, want %v, %q", res.Fallback, res.FallbackReason, want.fallback, want.reason)
	}
	c := res.Credential
	if c.Source != want.source || c.KeyID != want.keyID {
		t.Errorf("credential = %s key %s, want %s key %s", c.Source, c.KeyID, want.source, want.keyID)
	}
	if c.UserKeySkipped != want.skipped {
		t.Errorf("UserKeySkipped = %q, want %q", c.UserKeySkipped, want.skipped)
	}
	if w.turns != want.turns {
		t.Errorf("round-robin turns taken = %d, want %d", w.turns, want.turns)
	}
	wantSecret := ""
	if k := w.keyByID(want.keyID); k != nil {
		wantSecret = plainOf(k)
	}
	if c.Secret.Reveal() != wantSecret {
		t.Errorf("credential secret does not match key %s", want.keyID)
	}
}

// checkReads asserts each key table was read exactly for the providers the contract needs, once each,
// and that user keys were asked for the chat's owner.
func checkReads(t *testing.T, w *world, want specOutcome) {
	t.Helper()
	for _, kind := range []string{"user", "central"} {
		got, exp := w.src.keyReads(kind), want.userReads
		if kind == "central" {
			exp = want.centralReads
		}
		if !maps.Equal(got, exp) {
			t.Errorf("%s key reads by provider = %v, want %v", kind, got, exp)
		}
	}
	for _, r := range w.src.reads {
		if r.kind == "user" && r.user != w.owner() {
			t.Errorf("UserKey asked for user %s, want the chat owner %s", r.user, w.owner())
		}
	}
}
