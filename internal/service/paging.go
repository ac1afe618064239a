package service

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/resolverd/resolverd/internal/db"
)

// Page sizes of every List method (Google AIP-158): page_size 0 means DefaultPageSize, a larger one
// than MaxPageSize is treated as MaxPageSize, a negative one is INVALID_ARGUMENT.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// pageSize validates a page_size and returns the number of rows to serve.
func (v *violations) pageSize(field string, n int32) int {
	switch {
	case n < 0:
		v.add(field, "must not be negative (0 means %d; at most %d are served)", DefaultPageSize, MaxPageSize)
		return DefaultPageSize
	case n == 0:
		return DefaultPageSize
	case n > MaxPageSize:
		return MaxPageSize
	}
	return int(n)
}

// pageTokens issues and checks the page tokens of every List method. A token is the unpadded
// base64url of a MAC, a version byte and the JSON of {method, digest of the filters, position of the
// last row served}. It is opaque to callers, valid only for the method and the filters it was issued
// for, and cannot be forged: only a position the server itself produced reaches the keyset query.
// The MAC key derives from the deployment's fingerprint key, so every replica accepts the tokens of
// every other, across restarts.
type pageTokens struct{ key []byte }

const (
	pageTokenVersion = 1
	pageTokenMACLen  = 16
)

func newPageTokens(fpKey []byte) pageTokens {
	m := hmac.New(sha256.New, fpKey)
	m.Write([]byte("resolverd page token key v1"))
	return pageTokens{key: m.Sum(nil)}
}

// pageState is what a token carries.
type pageState struct {
	Method string          `json:"m"`
	Filter string          `json:"f,omitempty"`
	After  json.RawMessage `json:"a"`
}

// filterDigest keeps tokens short whatever the filters: only equality matters.
func filterDigest(filter string) string {
	if filter == "" {
		return ""
	}
	h := sha256.Sum256([]byte(filter))
	return base64.RawURLEncoding.EncodeToString(h[:12])
}

func (t pageTokens) mac(body []byte) []byte {
	m := hmac.New(sha256.New, t.key)
	m.Write(body)
	return m.Sum(nil)[:pageTokenMACLen]
}

// issue returns the token of the page that follows pos in method's list with these filters.
func (t pageTokens) issue(method, filter string, pos any) (string, error) {
	after, err := json.Marshal(pos)
	if err != nil {
		return "", fmt.Errorf("encode the page position: %w", err)
	}
	payload, err := json.Marshal(pageState{Method: method, Filter: filterDigest(filter), After: after})
	if err != nil {
		return "", fmt.Errorf("encode the page token: %w", err)
	}
	body := append([]byte{pageTokenVersion}, payload...)
	return base64.RawURLEncoding.EncodeToString(append(t.mac(body), body...)), nil
}

// parsePageToken returns the position tok carries for method with these filters. When tok is not a
// token issued for them, problem says why, for the caller.
func parsePageToken[P any](t pageTokens, method, filter, tok string) (pos *P, problem string) {
	const foreign = "is not a page token this server issued; pass the previous response's next_page_token unchanged"
	raw, err := base64.RawURLEncoding.Strict().DecodeString(tok)
	// Re-encoding refuses what the decoder tolerates (line breaks): only the issued string is valid.
	if err != nil || len(raw) <= pageTokenMACLen || base64.RawURLEncoding.EncodeToString(raw) != tok {
		return nil, foreign
	}
	mac, body := raw[:pageTokenMACLen], raw[pageTokenMACLen:]
	if !hmac.Equal(mac, t.mac(body)) || body[0] != pageTokenVersion {
		return nil, foreign
	}
	var st pageState
	if err := strictJSON(body[1:], &st); err != nil {
		return nil, foreign
	}
	if st.Method != method {
		return nil, fmt.Sprintf("was issued by %s, not %s; pass this method's own next_page_token", st.Method, method)
	}
	if st.Filter != filterDigest(filter) {
		return nil, "was issued for other filters; repeat the filters of the first page, or start again without page_token"
	}
	pos = new(P)
	if err := strictJSON(st.After, pos); err != nil {
		return nil, foreign
	}
	return pos, ""
}

func strictJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

// pager is the page one List call serves: size rows after the position of its page token.
type pager[P any] struct {
	tokens         pageTokens
	method, filter string
	size           int
	after          *P
}

// newPager reads a List request's page_token (field page_token) for method. filter renders the
// request's filters canonically ("" when it has none): a token is valid only with the filters it was
// issued for. size is the validated page size.
func newPager[P any](v *violations, t pageTokens, method, filter string, size int, token string) pager[P] {
	p := pager[P]{tokens: t, method: method, filter: filter, size: size}
	if token != "" {
		after, problem := parsePageToken[P](t, method, filter, token)
		if problem != "" {
			v.add("page_token", "%s", problem)
		}
		p.after = after
	}
	return p
}

// serve reads the page with list (one row more than the page holds: its presence says there is a
// next page), converts its rows with conv and returns them with the next page's token, "" on the
// last page. pos is a row's position in the list's order.
func serve[R, P, M any](ctx context.Context, p pager[P], list func(context.Context, db.Page[P]) ([]R, error),
	pos func(R) P, conv func(R) M) ([]M, string, error) {
	rows, err := list(ctx, db.Page[P]{Limit: p.size + 1, After: p.after})
	if err != nil {
		return nil, "", err
	}
	var next string
	if len(rows) > p.size {
		rows = rows[:p.size]
		if next, err = p.tokens.issue(p.method, p.filter, pos(rows[len(rows)-1])); err != nil {
			return nil, "", err
		}
	}
	out := make([]M, len(rows))
	for i, r := range rows {
		out[i] = conv(r)
	}
	return out, next, nil
}
