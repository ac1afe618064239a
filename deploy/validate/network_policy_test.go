package validate

// The NetworkPolicy around the Deployment's pods.

import (
	"fmt"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestNetworkPolicy(t *testing.T) {
	objs := loadBase(t)
	d := only[*appsv1.Deployment](t, objs)
	job := only[*batchv1.Job](t, objs)
	np := only[*networkingv1.NetworkPolicy](t, objs)
	spec := np.Spec

	if !selects(&spec.PodSelector, d.Spec.Template.Labels) {
		t.Errorf("NetworkPolicy podSelector %v does not select the Deployment's pods", spec.PodSelector.MatchLabels)
	}
	if !slices.Contains(spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		t.Errorf("policyTypes %v: want Ingress and Egress", spec.PolicyTypes)
	}
	// Ingress: 50051 from chat workers only, 9090 from the monitoring namespace only, nothing else.
	allowed := map[int32][]networkingv1.NetworkPolicyPeer{}
	for _, rule := range spec.Ingress {
		if len(rule.From) == 0 {
			t.Errorf("an ingress rule without `from` admits every source: %s", mustJSON(rule))
		}
		if len(rule.Ports) == 0 {
			t.Errorf("an ingress rule without ports opens every port: %s", mustJSON(rule))
		}
		for _, p := range rule.Ports {
			if p.Port == nil || p.Port.Type != intstr.Int {
				t.Errorf("ingress port %v: use the number", p.Port)
				continue
			}
			allowed[p.Port.IntVal] = append(allowed[p.Port.IntVal], rule.From...)
		}
	}
	if ports := sortedKeys(allowed); !slices.Equal(ports, []int32{metricsPt, grpcPort}) {
		t.Errorf("ingress opens ports %v, want %d and %d", ports, grpcPort, metricsPt)
	}
	for _, peer := range allowed[grpcPort] {
		if peer.PodSelector == nil || peer.PodSelector.MatchLabels["app.kubernetes.io/part-of"] != "chat-workers" || peer.IPBlock != nil {
			t.Errorf("port %d admits %s: want only pods labelled app.kubernetes.io/part-of=chat-workers", grpcPort, mustJSON(peer))
		}
		if peer.PodSelector != nil && peer.PodSelector.MatchLabels[appLabel] != "" {
			t.Errorf("port %d: the chat-workers selector also requires %s (commonLabels?): the workers would be locked out", grpcPort, appLabel)
		}
	}
	for _, peer := range allowed[metricsPt] {
		if peer.NamespaceSelector == nil || peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" || peer.IPBlock != nil {
			t.Errorf("port %d admits %s: want only the monitoring namespace", metricsPt, mustJSON(peer))
		}
	}
	// Egress: DNS over UDP and TCP, PostgreSQL, OTLP.
	egress := map[string]bool{}
	for _, rule := range spec.Egress {
		for _, p := range rule.Ports {
			proto := corev1.ProtocolTCP
			if p.Protocol != nil {
				proto = *p.Protocol
			}
			if p.Port != nil {
				egress[fmt.Sprintf("%s/%s", p.Port.String(), proto)] = true
			}
		}
		if len(rule.Ports) == 0 {
			t.Errorf("an egress rule without ports allows everything: %s", mustJSON(rule))
		}
	}
	for _, want := range []string{"53/UDP", "53/TCP", "5432/TCP", "4317/TCP"} {
		if !egress[want] {
			t.Errorf("egress does not allow %s", want)
		}
	}
	// The migration Job needs DNS and PostgreSQL; if the policy selects it, those must be open.
	if selects(&spec.PodSelector, job.Spec.Template.Labels) && !(egress["53/UDP"] && egress["5432/TCP"]) {
		t.Errorf("the policy selects the migration Job but blocks its database")
	}
}
