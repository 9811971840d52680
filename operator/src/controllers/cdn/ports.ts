/**
 * WebRTC port blocks of a CDN's groups with network exposure nodePort, as a pure function.
 *
 * A NodePort is unique in the whole cluster, so every pod needs ports no other pod has: each
 * group (Node) gets a block of `podSlots × workers` ports, pod i using
 * `rtcPortBase + i × workers + w`. Blocks are stable: a group keeps its block while it still
 * fits (moving it would restart every pod of the group), and only groups that are new or grew
 * get a new one, in the first gap from the CDN's rtcPortBase up.
 */
import type { Problem } from '../shared.js';
import { CdnReason } from './reasons.js';

export interface PortBlock {
  rtcPortBase: number;
  workers: number;
  podSlots: number;
}

export interface PortDemand {
  /** The Node's name. */
  node: string;
  /** Pods that need ports: the most the group may run. */
  slots: number;
}

export interface PortRange {
  /** The CDN's network.rtcPortBase. */
  base: number;
  /** The last usable port. */
  last: number;
  workers: number;
}

const sizeOf = (block: PortBlock): number => block.podSlots * block.workers;
const endOf = (block: PortBlock): number => block.rtcPortBase + sizeOf(block) - 1;

/**
 * A block for every demand, keeping `existing` blocks that still fit; a problem instead when the
 * range is too small for them all.
 */
export function allocatePortBlocks(
  demands: readonly PortDemand[],
  existing: ReadonlyMap<string, PortBlock>,
  range: PortRange,
): { blocks: Map<string, PortBlock> } | { problem: Problem } {
  const blocks = new Map<string, PortBlock>();
  const taken: PortBlock[] = [];
  const overlaps = (block: PortBlock) =>
    taken.some((other) => block.rtcPortBase <= endOf(other) && other.rtcPortBase <= endOf(block));

  // Keep what fits, in port order so that a conflict keeps the lower block.
  const kept = demands
    .map((demand) => ({ demand, block: existing.get(demand.node) }))
    .filter(
      (entry): entry is { demand: PortDemand; block: PortBlock } =>
        entry.block !== undefined &&
        entry.block.workers === range.workers &&
        entry.block.podSlots >= entry.demand.slots &&
        entry.block.rtcPortBase >= range.base &&
        endOf(entry.block) <= range.last,
    )
    .sort((a, b) => a.block.rtcPortBase - b.block.rtcPortBase);
  for (const { demand, block } of kept) {
    if (overlaps(block)) continue;
    blocks.set(demand.node, block);
    taken.push(block);
  }

  for (const demand of demands) {
    if (blocks.has(demand.node)) continue;
    const wanted = demand.slots * range.workers;
    let start = range.base;
    for (const other of [...taken].sort((a, b) => a.rtcPortBase - b.rtcPortBase)) {
      if (start + wanted - 1 < other.rtcPortBase) break;
      start = Math.max(start, endOf(other) + 1);
    }
    if (start + wanted - 1 > range.last) {
      const needed = demands.reduce((sum, each) => sum + each.slots * range.workers, 0);
      return {
        problem: {
          reason: CdnReason.PortRangeExhausted,
          message: `exposure nodePort needs ${needed} WebRTC ports from ${range.base} (pods × workers per group, edges counted at maxReplicas) but only ports up to ${range.last} are usable; lower network.rtcPortBase, workersPerNode or edges.maxReplicas`,
        },
      };
    }
    const block = { rtcPortBase: start, workers: range.workers, podSlots: demand.slots };
    blocks.set(demand.node, block);
    taken.push(block);
  }
  return { blocks };
}
