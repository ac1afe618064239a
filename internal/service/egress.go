package service

import (
	"slices"

	"github.com/resolverd/resolverd/internal/egress"
	"github.com/resolverd/resolverd/internal/errs"
)

// AllowProviderHosts makes CreateProvider and UpdateProvider refuse a base_url whose host is outside
// hosts (serve's --allowed-provider-hosts, docs/CONTRACT.md §7.5); nil allows every host. It returns
// s, for chaining after NewAdmin.
func (s *Admin) AllowProviderHosts(hosts *egress.AllowList) *Admin {
	s.hosts = hosts
	return s
}

// providerHost reports a base_url whose host hosts does not allow, unless the field was already
// found malformed (one violation per field). An empty base_url, the SDK's default, is always allowed.
func (v *violations) providerHost(field, baseURL string, hosts *egress.AllowList) {
	if slices.ContainsFunc(*v, func(f errs.FieldViolation) bool { return f.Field == field }) {
		return
	}
	host, ok := hosts.Check(baseURL)
	if ok {
		return
	}
	if _, err := egress.HostOf(baseURL); err != nil {
		v.add(field, "cannot be checked against this deployment's allowed provider hosts: it %s", err)
		return
	}
	v.add(field, "host %q is not among this deployment's allowed provider hosts (--allowed-provider-hosts)", host)
}
