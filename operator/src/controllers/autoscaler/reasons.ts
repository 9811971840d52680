/** The reasons of the Events the autoscaler records on the edge Nodes it scales. */
export const AutoscalerReason = {
  ScaledUp: 'ScaledUp',
  /** The replicas were outside minReplicas..maxReplicas. */
  ScaledToBounds: 'ScaledToBounds',
  /** Edges are told to drain before a scale-down. */
  DrainStarted: 'DrainStarted',
  /** The drained edges are removed. */
  ScaledDown: 'ScaledDown',
  /** Viewers came back during a drain. */
  DrainCancelled: 'DrainCancelled',
} as const;
