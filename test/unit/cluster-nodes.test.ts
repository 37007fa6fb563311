/**
 * The kubeconfig platform's cells: real Node objects as a cluster's API server returned
 * them (`kubectl get nodes -o json` on clusters bpfgate assembled: an x86_64 node, an
 * arm64 4K node and an arm64 16K node, Debian trixie kernels; test/fixtures/cluster/README.md).
 * The page size is read from the huge page sizes the kubelet reports: each page size
 * offers its own.
 */
import { describe, expect, it } from 'vitest';
import { cellOfNode, nodeCellId, type NodeObject } from '../../runners/kubeconfig/platform.js';
import { nodeFile } from '../support/cluster-node.js';

const nodes = (JSON.parse(nodeFile('.', 'nodes.json')!) as { items: NodeObject[] }).items;
const byKernel = (suffix: string) => nodes.find((n) => n.status?.nodeInfo?.kernelVersion?.endsWith(suffix))!;

describe('a cell per node', () => {
  it('takes arch, page size and kernel release from each real node', () => {
    const cells = nodes.map((n) => cellOfNode(n)!);
    expect(cells.map((c) => [c.arch, c.pageSize, c.kernelLabel]).sort()).toEqual([
      ['arm64', 16, '6.12.118+deb13-arm64-16k'],
      ['arm64', 4, '6.12.118+deb13-arm64'],
      ['x86_64', 4, '6.12.118+deb13-amd64'],
    ]);
    for (const [i, c] of cells.entries()) {
      expect(c).toMatchObject({ id: `node-${nodes[i]!.metadata.name}`, platform: 'kubeconfig', kernel: { kind: 'running', node: nodes[i]!.metadata.name } });
    }
  });

  it('tells 16K from 4K arm64 by the huge page sizes alone, not by the kernel\'s name', () => {
    for (const [suffix, pages] of [['-arm64-16k', 16], ['-arm64', 4]] as const) {
      const node = byKernel(suffix);
      const renamed: NodeObject = { ...node, status: { ...node.status, nodeInfo: { ...node.status!.nodeInfo, kernelVersion: '6.12.0-custom' } } };
      expect(cellOfNode(renamed)!.pageSize).toBe(pages);
    }
    // 4K arm64 offers contiguous-PTE 64Ki pages; 16K offers 32Mi without them.
    expect(byKernel('-arm64').status!.capacity).toHaveProperty('hugepages-64Ki');
    expect(byKernel('-arm64-16k').status!.capacity).not.toHaveProperty('hugepages-64Ki');
  });

  it('falls back to the arch label, and leaves out a node of an arch bpfgate does not know', () => {
    const x86 = byKernel('-amd64');
    const labelled: NodeObject = { metadata: x86.metadata, status: { capacity: x86.status!.capacity } };
    expect(cellOfNode(labelled)).toMatchObject({ arch: 'x86_64', pageSize: 4, kernelLabel: 'unknown' });
    const riscv: NodeObject = { metadata: { name: 'rv', labels: { 'kubernetes.io/arch': 'riscv64' } }, status: { nodeInfo: { architecture: 'riscv64' } } };
    expect(cellOfNode(riscv)).toBeUndefined();
  });

  it('makes a cell id of any node name', () => {
    expect(nodeCellId('ip-10-0-1-5.eu-west-1.compute.internal')).toBe('node-ip-10-0-1-5.eu-west-1.compute.internal');
    expect(nodeCellId('worker/1 a')).toBe('node-worker_1_a');
  });
});
