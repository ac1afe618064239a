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

// renders keeps the API messages of configs and providers built for earlier answers: building a
// ModelConfig parses its options JSON, the dearest part of a warm answer. An entry is reused only
// while the row it was built from is unchanged field for field, so it can never be stale; the
// messages are shared read-only between concurrent answers (marshalling does not change them).
type renders struct {
	configs   *cache.LRU[uuid.UUID, renderedConfig]
	providers *cache.LRU[uuid.UUID, renderedProvider]
	// pairs keeps, by config id, the two fields of an answer for the config and its provider as
	// one slice, so that an answer attaches it as it is (see answer).
	pairs *cache.LRU[uuid.UUID, renderedPair]
}

// renderedPair is model_config and provider of ResolveModelResponse, wire-encoded one after the
// other, and the rows they were built from.
type renderedPair struct {
	config   *renderedConfig
	provider *renderedProvider
	raw      []byte // shared read-only by every answer that carries it
}

// Each rendering also keeps its wire form as a field of ResolveModelResponse (tag and length
// included), so an answer does not marshal the same config again: see answerWire.
type renderedConfig struct {
	src  resolve.ModelConfig
	msg  *resolverv1.ModelConfig
	wire []byte
}

type renderedProvider struct {
	src  resolve.Provider
	msg  *resolverv1.Provider
	wire []byte
}

// responseField encodes msg as field num of ResolveModelResponse.
func responseField(num protowire.Number, msg proto.Message) []byte {
	b, err := proto.Marshal(msg)
	if err != nil {
		panic(err) // a message built from valid fields always marshals
	}
	out := protowire.AppendTag(nil, num, protowire.BytesType)
	return protowire.AppendBytes(out, b)
}

func newRenders() *renders {
	return &renders{
		configs:   cache.New[uuid.UUID, renderedConfig](10_000, time.Hour),
		providers: cache.New[uuid.UUID, renderedProvider](10_000, time.Hour),
		pairs:     cache.New[uuid.UUID, renderedPair](10_000, time.Hour),
	}
}

func (r *renders) config(c *resolve.ModelConfig) renderedConfig {
	if e, ok := r.configs.Get(c.ID); ok && sameConfig(&e.src, c) {
		return e
	}
	msg := configProto(c, timeZero, timeZero)
	src := *c
	src.Provider, src.Options = nil, bytes.Clone(c.Options)
	e := renderedConfig{src: src, msg: msg, wire: responseField(1, msg)}
	r.configs.Put(c.ID, e)
	return e
}

func sameConfig(a, b *resolve.ModelConfig) bool {
	return a.ID == b.ID && a.ProviderID == b.ProviderID && a.Model == b.Model && a.DisplayName == b.DisplayName &&
		a.Enabled == b.Enabled && a.IsDefault == b.IsDefault && a.Deleted == b.Deleted && a.ContextLimit == b.ContextLimit &&
		a.CompressionThreshold == b.CompressionThreshold && bytes.Equal(a.Options, b.Options)
}

func (r *renders) provider(p *resolve.Provider) renderedProvider {
	if e, ok := r.providers.Get(p.ID); ok && e.src == *p {
		return e
	}
	msg := providerProto(p, timeZero, timeZero)
	e := renderedProvider{src: *p, msg: msg, wire: responseField(2, msg)}
	r.providers.Put(p.ID, e)
	return e
}

// pair returns the kept wire form of cfg and p, building what changed.
func (r *renders) pair(cfg *resolve.ModelConfig, p *resolve.Provider) renderedPair {
	if e, ok := r.pairs.Get(cfg.ID); ok && e.provider.src == *p && sameConfig(&e.config.src, cfg) {
		return e
	}
	c, pr := r.config(cfg), r.provider(p)
	raw := make([]byte, 0, len(c.wire)+len(pr.wire))
	e := renderedPair{config: &c, provider: &pr, raw: append(append(raw, c.wire...), pr.wire...)}
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
		out.decision.RequestedModelConfigId = pair.config.msg.GetId() // the same text, already made
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
