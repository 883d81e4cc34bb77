import { MemoryClusterState } from '../../server/cluster/memory-cluster-state.ts';
import { describeClusterState } from '../contract/cluster-state.contract.ts';

describeClusterState('MemoryClusterState', async () => {
  const node = new MemoryClusterState({ nodeId: 'node-a' });
  await node.start();
  return { a: node, b: node, cleanup: () => node.close() };
});
