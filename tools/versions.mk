# Pinned versions of every tool that is not a Python package. `make tools`
# installs each into .tools/ (ignored by git) and reuses it when present.
UV_VERSION          := 0.13.9
HELM_VERSION        := v4.3.1
KUBE_SCORE_VERSION  := v1.20.0
KIND_VERSION        := v0.33.0
# Go module fetched for its CRDs only (charts-check validates PodMonitor and
# PrometheusRule against them); v0.85.0 is the newest the module proxy serves.
PROMETHEUS_OPERATOR_VERSION := v0.85.0
TOXIPROXY_VERSION   := v2.5.0
MAILPIT_VERSION     := v1.27.11
# Jaeger v2.13.0 (the v1.76.0 tag is on the same commit; see tools/jaeger/go.mod).
JAEGER_VERSION      := v1.76.0
# Kafka's own version is pinned in tools/kafka/pom.xml.
KAFKA_VERSION       := 4.3.1
JMX_EXPORTER_VERSION := 1.0.1

# The kind path on a machine without a registry (deploy/k8s/kind/, make kind-up):
# everything below is built here from its Go module, Debian's packages or
# Maven Central, and cached by version outside the checkout.
# Kubernetes from the k8s.io/kubernetes module; 1.34 because kubelet 1.35+
# expects cgroup v2 and these machines run a v1/v2 hybrid.
KUBERNETES_VERSION  := v1.34.4
ETCD_VERSION        := v3.6.5
COREDNS_VERSION     := v1.12.1
CRICTL_VERSION      := v1.34.0
LOCAL_PATH_PROVISIONER_VERSION := v0.0.30
# NetworkPolicies enforced on the node (kindnetd, which does it in stock kind,
# is not in the kind module): kube-router's firewall alone, on iptables and
# ipset (kube-network-policies needs the nftables queue expression, which this
# machine's kernel lacks). v2.1.0 is the newest the module proxy serves.
KUBE_ROUTER_VERSION := v2.1.0
# The base of every image built here: debootstrapped Debian (python3 is 3.11).
DEBIAN_SUITE        := bookworm
