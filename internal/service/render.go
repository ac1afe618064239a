package service

import (
	"bytes"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/resolverd/resolverd/internal/cache"
	"github.com/resolverd/resolverd/internal/resolve"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// renders keeps, by config id, the two fields of an answer built for earlier answers: the config's
// and its provider's messages, wire-encoded one after the other, so a warm answer attaches them as
// they are (see answer). Building a ModelConfig parses its options JSON, the dearest part of a warm
// answer. An entry is reused only while the config and provider it was built from are unchanged
// field for field, so it can never be stale; its bytes are shared read-only between concurrent
// answers.
type renders struct {
	pairs *cache.LRU[uuid.UUID, renderedPair]
}

// renderedPair is model_config (field 1) and provider (field 2) of ResolveModelResponse, tag and
// length included, and the rows they were built from.
type renderedPair struct {
	config   resolve.ModelConfig // Provider nil, Options a copy
	provider resolve.Provider
	id       string // config.ID as text, for the decision
	raw      []byte // shared read-only by every answer that carries it
}

// responseField appends msg encoded as field num of ResolveModelResponse to b.
func responseField(b []byte, num protowire.Number, msg proto.Message) []byte {
	m, err := proto.Marshal(msg)
	if err != nil {
		panic(err) // a message built from valid fields always marshals
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}

func newRenders() *renders {
	return &renders{pairs: cache.New[uuid.UUID, renderedPair](10_000, time.Hour)}
}

func sameConfig(a, b *resolve.ModelConfig) bool {
	return a.ID == b.ID && a.ProviderID == b.ProviderID && a.Model == b.Model && a.DisplayName == b.DisplayName &&
		a.Enabled == b.Enabled && a.IsDefault == b.IsDefault && a.Deleted == b.Deleted && a.ContextLimit == b.ContextLimit &&
		a.CompressionThreshold == b.CompressionThreshold && bytes.Equal(a.Options, b.Options)
}

// pair returns the kept wire form of cfg and p, building it again when either changed.
func (r *renders) pair(cfg *resolve.ModelConfig, p *resolve.Provider) renderedPair {
	if e, ok := r.pairs.Get(cfg.ID); ok && e.provider == *p && sameConfig(&e.config, cfg) {
		return e
	}
	cmsg := configProto(cfg, timeZero, timeZero)
	raw := responseField(nil, 1, cmsg)
	raw = responseField(raw, 2, providerProto(p, timeZero, timeZero))
	src := *cfg
	src.Provider, src.Options = nil, bytes.Clone(cfg.Options)
	e := renderedPair{config: src, provider: *p, id: cmsg.GetId(), raw: raw}
	r.pairs.Put(cfg.ID, e)
	return e
}

// answer builds a ResolveModelResponse whose model_config (field 1) and provider (field 2) are
// the kept wire forms, attached as the message's unknown fields: protobuf writes them out as they
// are, and a client reads them as the ordinary fields. The in-process message has them only in
// that form, so nothing but marshalling may read it. out holds the credential already (see
// newAnswer); the three messages of an answer are one allocation.
func (r *renders) answer(out *answerMessages, cfg *resolve.ModelConfig, p *resolve.Provider, res *resolve.Result) *resolverv1.ResolveModelResponse {
	pair := r.pair(cfg, p)
	out.decision.Fallback, out.decision.FallbackReason = res.Fallback, string(res.FallbackReason)
	out.decision.UserKeySkippedReason = string(res.Credential.UserKeySkipped)
	if res.RequestedConfigID == cfg.ID {
		out.decision.RequestedModelConfigId = pair.id // the same text, already made
	} else {
		out.decision.RequestedModelConfigId = idString(res.RequestedConfigID)
	}
	out.response.Credential, out.response.Decision = &out.credential, &out.decision
	out.response.ProtoReflect().SetUnknown(protoreflect.RawFields(pair.raw))
	return &out.response
}

// answerMessages are the messages of one answer, allocated together.
type answerMessages struct {
	response   resolverv1.ResolveModelResponse
	credential resolverv1.Credential
	decision   resolverv1.Decision
}
