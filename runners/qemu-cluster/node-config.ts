/**
 * The configuration files of a cluster node, written on the host into the node's overlay
 * (pure text: what findings-k8s-node-in-guest.md measured to work). containerd (config
 * version 2) with the CRI plugin on overlayfs, runc without systemd cgroups and a local
 * pause image; a CNI bridge with the node's own pod subnet; the kubelet on cgroupfs,
 * serving TLS with the node's certificate, never garbage-collecting images (no registry
 * could give them back).
 */

export function containerdConfig(opts: { criSocket: string; sandboxImage: string }): string {
  return `version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "${opts.criSocket}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${opts.sandboxImage}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "/usr/sbin/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"
`;
}

export function cniConfig(podSubnet: string): string {
  return `${JSON.stringify({
    cniVersion: '0.4.0',
    name: 'k8s-pod-network',
    plugins: [
      {
        type: 'bridge',
        bridge: 'cni0',
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: { type: 'host-local', ranges: [[{ subnet: podSubnet }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: '/var/lib/cni/networks' },
      },
    ],
  }, null, 2)}\n`;
}

export function kubeletConfig(criSocket: string): string {
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 0.0.0.0
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://${criSocket}
failSwapOn: false
resolvConf: /etc/resolv.conf
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: /etc/kubernetes/pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: /etc/kubernetes/pki/kubelet-serving.crt
tlsPrivateKeyFile: /etc/kubernetes/pki/kubelet-serving.key
evictionHard: {memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
`;
}
