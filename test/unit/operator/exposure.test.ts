/**
 * How media reaches clients outside the cluster, as pure functions: the port blocks of
 * exposure nodePort (stable, never overlapping), the per-pod NodePort Services and environment a
 * Node gets from them, the URLs the CDN status hands out, and the pod failures a Node's and a
 * CDN's Ready condition quote.
 */
import { describe, expect, it } from '@jest/globals';
import type { V1EnvVar } from '@kubernetes/client-node';
import {
  API_VERSION,
  type CDN,
  type CDNInput,
  type CDNNode,
  CDNNodeSchema,
  CDNSchema,
} from '../../../operator/src/api/v1alpha1.js';
import { cdnStatus, planCdn } from '../../../operator/src/controllers/cdn/desired.js';
import { allocatePortBlocks, type PortBlock } from '../../../operator/src/controllers/cdn/ports.js';
import { serviceUrl } from '../../../operator/src/controllers/cdn/urls.js';
import { nodeStatus, planNode, rtcServiceName } from '../../../operator/src/controllers/node/desired.js';
import { podFailure } from '../../../operator/src/controllers/node/pods.js';
import type { KubeNodeObject, PodObject, ServiceObject } from '../../../operator/src/kube/objects.js';

const NOW = new Date('2026-01-01T00:00:00Z');

function cdn(spec: Partial<CDNInput['spec']> = {}): CDN {
  return CDNSchema.parse({
    apiVersion: API_VERSION,
    kind: 'CDN',
    metadata: { name: 'live', namespace: 'media', uid: 'cdn-uid', generation: 1 },
    spec: {
      image: 'rtccdn/media-node:dev',
      redis: { url: 'redis://redis:6379' },
      regions: [
        { name: 'eu', edges: { minReplicas: 1, maxReplicas: 3 } },
        { name: 'us', edges: { minReplicas: 1, maxReplicas: 2 }, transcoders: { replicas: 1 } },
      ],
      network: { exposure: 'nodePort', rtcPortBase: 30000, workersPerNode: 2 },
      ...spec,
    },
  });
}

const blocksOf = (owner: CDN, existing?: ReadonlyMap<string, PortBlock>) =>
  new Map(planCdn(owner, existing).nodes.map((node) => [node.metadata.name, node.spec.ports]));

function nodeFrom(owner: CDN, name: string, replicas: number): CDNNode {
  const desired = planCdn(owner).nodes.find((node) => node.metadata.name === name);
  if (!desired) throw new Error(`no node ${name}`);
  return CDNNodeSchema.parse({
    ...desired,
    metadata: { ...desired.metadata, uid: `${name}-uid`, generation: 1 },
    spec: { ...desired.spec, replicas },
  });
}

describe('port blocks (exposure nodePort)', () => {
  it('gives every group its own block: pod slots × workers ports, edges counted at maxReplicas', () => {
    const blocks = blocksOf(cdn());
    expect(Object.fromEntries(blocks)).toEqual({
      'live-eu-origin': { rtcPortBase: 30000, workers: 2, podSlots: 1 },
      'live-eu-edge': { rtcPortBase: 30002, workers: 2, podSlots: 3 },
      'live-us-origin': { rtcPortBase: 30008, workers: 2, podSlots: 1 },
      'live-us-edge': { rtcPortBase: 30010, workers: 2, podSlots: 2 },
      'live-us-transcoder': { rtcPortBase: 30014, workers: 2, podSlots: 1 },
    });
  });

  it('keeps a block that still fits when another group grows, so its pods are not restarted', () => {
    const before = blocksOf(cdn()) as Map<string, PortBlock>;
    const grown = cdn({
      regions: [
        { name: 'eu', edges: { minReplicas: 1, maxReplicas: 5 } },
        { name: 'us', edges: { minReplicas: 1, maxReplicas: 2 }, transcoders: { replicas: 1 } },
      ],
    });
    const after = blocksOf(grown, before);
    for (const name of ['live-eu-origin', 'live-us-origin', 'live-us-edge', 'live-us-transcoder']) {
      expect(after.get(name)).toEqual(before.get(name));
    }
    // The grown group moves to the first gap large enough (after the last block).
    expect(after.get('live-eu-edge')).toEqual({ rtcPortBase: 30016, workers: 2, podSlots: 5 });
  });

  it('never hands out overlapping blocks, even from conflicting existing ones', () => {
    const existing = new Map<string, PortBlock>([
      ['a', { rtcPortBase: 30000, workers: 2, podSlots: 2 }],
      ['b', { rtcPortBase: 30002, workers: 2, podSlots: 2 }],
    ]);
    const result = allocatePortBlocks(
      [
        { node: 'a', slots: 2 },
        { node: 'b', slots: 2 },
        { node: 'c', slots: 1 },
      ],
      existing,
      { base: 30000, last: 65535, workers: 2 },
    );
    if (!('blocks' in result)) throw new Error('expected blocks');
    const ranges = [...result.blocks.values()].map((block) => [
      block.rtcPortBase,
      block.rtcPortBase + block.podSlots * block.workers - 1,
    ]);
    for (const [i, [start, end]] of ranges.entries()) {
      for (const [otherStart, otherEnd] of ranges.slice(i + 1)) {
        expect(end! < otherStart! || otherEnd! < start!).toBe(true);
      }
    }
    expect(result.blocks.get('a')).toEqual(existing.get('a'));
  });

  it('reports a range too small instead of planning, and applies nothing', () => {
    const tight = cdn({ network: { exposure: 'nodePort', rtcPortBase: 65530, workersPerNode: 2 } });
    const plan = planCdn(tight);
    expect(plan.blocked?.reason).toBe('PortRangeExhausted');
    expect(plan.nodes).toEqual([]);
    expect(plan.problems.map((problem) => problem.reason)).toContain('PortRangeExhausted');
  });

  it('leaves ports alone with hostPort exposure', () => {
    const hostPort = cdn({ network: { exposure: 'hostPort', rtcPortBase: 40000, workersPerNode: 2 } });
    for (const ports of blocksOf(hostPort).values())
      expect(ports).toEqual({ rtcPortBase: 40000, workers: 2 });
  });
});

describe('a Node with exposure nodePort', () => {
  const owner = cdn();
  const edge = nodeFrom(owner, 'live-eu-edge', 2);
  const plan = planNode(edge, { cdn: owner, clusterSecretHash: 'x' });
  const env = Object.fromEntries(
    (plan.statefulSet?.spec?.template.spec?.containers[0]?.env ?? []).map((v: V1EnvVar) => [v.name, v]),
  );

  it('runs pods that take their ordinal as POD_INDEX and announce their Kubernetes node', () => {
    expect(plan.problems).toEqual([]);
    expect(env['POD_INDEX']?.valueFrom?.fieldRef?.fieldPath).toBe(
      "metadata.labels['apps.kubernetes.io/pod-index']",
    );
    expect(env['RTC_PORT']?.value).toBe('30002');
    expect(env['ANNOUNCED_IP']?.valueFrom?.fieldRef?.fieldPath).toBe('status.hostIP');
    const container = plan.statefulSet?.spec?.template.spec?.containers[0];
    // No host ports (several edges share a Kubernetes node) and no anti-affinity forcing one per node.
    expect(container?.ports?.some((port) => port.hostPort !== undefined)).toBe(false);
    expect(plan.statefulSet?.spec?.template.spec?.affinity?.podAntiAffinity).toBeUndefined();
  });

  it('runs a region’s pods on that region’s Kubernetes nodes, unless the CDN names no region label', () => {
    expect(plan.statefulSet?.spec?.template.spec?.affinity?.nodeAffinity).toEqual({
      requiredDuringSchedulingIgnoredDuringExecution: {
        nodeSelectorTerms: [
          { matchExpressions: [{ key: 'topology.kubernetes.io/region', operator: 'In', values: ['eu'] }] },
        ],
      },
    });
    const anywhere = cdn({ placement: { regionLabel: '' } });
    const free = planNode(nodeFrom(anywhere, 'live-eu-edge', 1), { cdn: anywhere, clusterSecretHash: 'x' });
    expect(free.statefulSet?.spec?.template.spec?.affinity).toBeUndefined();
  });

  it('gets one NodePort Service per pod slot carrying exactly that pod ports', () => {
    expect(plan.rtcServices.map((service) => service.metadata.name)).toEqual([
      rtcServiceName('live-eu-edge', 0),
      rtcServiceName('live-eu-edge', 1),
      rtcServiceName('live-eu-edge', 2),
    ]);
    const second = plan.rtcServices[1]!;
    expect(second.spec?.type).toBe('NodePort');
    expect(second.spec?.externalTrafficPolicy).toBe('Local');
    // Draining edges are unready but their viewers' media must keep flowing.
    expect(second.spec?.publishNotReadyAddresses).toBe(true);
    expect(second.spec?.selector?.['statefulset.kubernetes.io/pod-name']).toBe('live-eu-edge-1');
    // Pod 1 of a block at 30002 with 2 workers: 30004 and 30005, UDP and TCP, same port everywhere.
    expect(
      second.spec?.ports?.map((port) => [port.protocol, port.port, port.targetPort, port.nodePort]),
    ).toEqual([
      ['UDP', 30004, 30004, 30004],
      ['TCP', 30004, 30004, 30004],
      ['UDP', 30005, 30005, 30005],
      ['TCP', 30005, 30005, 30005],
    ]);
  });

  it('runs no more pods than it has slots, and says so', () => {
    const tooMany = nodeFrom(owner, 'live-eu-edge', 5);
    const capped = planNode(tooMany, { cdn: owner, clusterSecretHash: 'x' });
    expect(capped.statefulSet?.spec?.replicas).toBe(3);
    const status = nodeStatus(
      tooMany,
      {
        statefulSet: { metadata: { name: 'live-eu-edge' }, status: { replicas: 3, readyReplicas: 3 } },
        problems: [],
        load: undefined,
        runnable: 3,
      },
      NOW,
    );
    expect(status.conditions?.[0]).toMatchObject({ status: 'False', reason: 'PodSlotsExhausted' });
  });
});

describe('status URLs', () => {
  const node = (name: string, region: string, ready: boolean, ip: string): KubeNodeObject => ({
    metadata: { name, labels: { 'topology.kubernetes.io/region': region } },
    status: {
      addresses: [{ type: 'InternalIP', address: ip }],
      conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
    },
  });
  const service = (type: string, extra: Partial<ServiceObject> = {}): ServiceObject => ({
    metadata: { name: 'live-eu-edge', namespace: 'media' },
    spec: { type, ports: [{ name: 'http', port: 80, nodePort: 31080 }] },
    ...extra,
  });
  const nodes = [
    node('us-1', 'us', true, '10.0.0.3'),
    node('eu-2', 'eu', true, '10.0.0.2'),
    node('eu-1', 'eu', false, '10.0.0.1'),
  ];

  it('points a NodePort Service at a ready Kubernetes node of the region', () => {
    expect(serviceUrl(service('NodePort'), 'eu', nodes, '/whep/')).toBe('http://10.0.0.2:31080/whep/');
    expect(serviceUrl(service('NodePort'), 'us', nodes, '/whep/')).toBe('http://10.0.0.3:31080/whep/');
    // A region without ready nodes: any ready node answers a NodePort.
    expect(serviceUrl(service('NodePort'), 'ap', [nodes[0]!], '/whep/')).toBe('http://10.0.0.3:31080/whep/');
    expect(serviceUrl(service('NodePort'), 'eu', [], '/whep/')).toBeUndefined();
  });

  it('uses the load balancer address once there is one, and the cluster DNS name for ClusterIP', () => {
    expect(serviceUrl(service('LoadBalancer'), 'eu', nodes, '/whep/')).toBeUndefined();
    const provisioned = service('LoadBalancer', {
      status: { loadBalancer: { ingress: [{ ip: '2001:db8::7' }] } },
    });
    expect(serviceUrl(provisioned, 'eu', nodes, '/whep/')).toBe('http://[2001:db8::7]/whep/');
    expect(serviceUrl(service('ClusterIP'), 'eu', nodes, '/whip/')).toBe(
      'http://live-eu-edge.media.svc/whip/',
    );
  });

  it('hands out no WHIP URL for a region without origins (its Service has no pods to publish to)', () => {
    const owner = cdn({
      regions: [
        { name: 'eu', edges: { minReplicas: 1, maxReplicas: 3 } },
        { name: 'us', origins: { replicas: 0 }, edges: { minReplicas: 1, maxReplicas: 2 } },
      ],
    });
    const urls = new Map([
      ['eu', { whipUrl: 'http://10.0.0.2:31000/whip/', whepUrl: 'http://10.0.0.2:31080/whep/' }],
      ['us', { whipUrl: 'http://10.0.0.3:31001/whip/', whepUrl: 'http://10.0.0.3:31081/whep/' }],
    ]);
    const status = cdnStatus(owner, { nodes: [], problems: [], load: undefined, urls }, NOW);
    expect(status.regions?.[0]?.whipUrl).toBe('http://10.0.0.2:31000/whip/');
    expect(status.regions?.[1]).toMatchObject({ name: 'us', whepUrl: 'http://10.0.0.3:31081/whep/' });
    expect(status.regions?.[1]?.whipUrl).toBeUndefined();
  });

  it('lands in the CDN status per region, with the ACL API URL', () => {
    const owner = cdn();
    const status = cdnStatus(
      owner,
      {
        nodes: [],
        problems: [],
        load: undefined,
        urls: new Map([
          ['eu', { whipUrl: 'http://10.0.0.2:31000/whip/', whepUrl: 'http://10.0.0.2:31080/whep/' }],
        ]),
        aclApiUrl: 'http://acl.rtccdn.svc:8091/api/v1/streams/',
      },
      NOW,
    );
    expect(status.regions?.[0]).toMatchObject({
      name: 'eu',
      whipUrl: 'http://10.0.0.2:31000/whip/',
      whepUrl: 'http://10.0.0.2:31080/whep/',
    });
    expect(status.regions?.[1]?.whipUrl).toBeUndefined();
    expect(status.aclApiUrl).toBe('http://acl.rtccdn.svc:8091/api/v1/streams/');
  });
});

describe('pod failures', () => {
  const pod = (name: string, status: PodObject['status']): PodObject => ({ metadata: { name }, status });

  it('names an image that cannot be pulled, a crash loop with its last words, a missing Secret, no room', () => {
    expect(
      podFailure([
        pod('e-0', {
          containerStatuses: [
            {
              name: 'media-node',
              state: { waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "x"' } },
            },
          ],
        }),
      ]),
    ).toEqual({
      reason: 'ImagePullFailed',
      message: 'pod e-0: ImagePullBackOff: Back-off pulling image "x"',
    });
    expect(
      podFailure([
        pod('e-0', {
          containerStatuses: [
            {
              name: 'media-node',
              state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 10s' } },
              lastState: {
                terminated: { exitCode: 2, message: 'invalid configuration: REDIS_URL\nunreachable' },
              },
            },
          ],
        }),
      ]),
    ).toEqual({
      reason: 'CrashLooping',
      message:
        'pod e-0: CrashLoopBackOff: exited with code 2: invalid configuration: REDIS_URL | unreachable',
    });
    expect(
      podFailure([
        pod('e-1', {
          conditions: [
            {
              type: 'PodScheduled',
              status: 'False',
              reason: 'Unschedulable',
              message:
                "0/3 nodes are available: 3 node(s) didn't have free ports for the requested pod ports.",
            },
          ],
        }),
      ])?.reason,
    ).toBe('Unschedulable');
    expect(
      podFailure([
        pod('e-0', {
          containerStatuses: [
            {
              name: 'media-node',
              state: { waiting: { reason: 'CreateContainerConfigError', message: 'secret "s" not found' } },
            },
          ],
        }),
      ])?.reason,
    ).toBe('ContainerConfigError');
  });

  it('ignores pods that are starting normally or going away', () => {
    expect(
      podFailure([
        pod('e-0', {
          containerStatuses: [{ name: 'media-node', state: { waiting: { reason: 'ContainerCreating' } } }],
        }),
        {
          metadata: { name: 'e-1', deletionTimestamp: '2026-01-01T00:00:00Z' },
          status: {
            containerStatuses: [{ name: 'media-node', state: { waiting: { reason: 'CrashLoopBackOff' } } }],
          },
        },
      ]),
    ).toBeUndefined();
  });

  it('becomes the Node Ready reason while pods are missing, and the CDN Ready reason', () => {
    const owner = cdn();
    const origin = nodeFrom(owner, 'live-eu-origin', 1);
    const failure = { reason: 'ImagePullFailed', message: 'pod live-eu-origin-0: ErrImagePull: not found' };
    const status = nodeStatus(
      origin,
      { statefulSet: undefined, problems: [], load: undefined, podFailure: failure },
      NOW,
    );
    expect(status.conditions?.[0]).toMatchObject({ status: 'False', reason: 'ImagePullFailed' });
    expect(status.conditions?.[0]?.message).toContain('ErrImagePull: not found');
    const withStatus = CDNNodeSchema.parse({ ...origin, status });
    const cdnReady = cdnStatus(
      owner,
      { nodes: [withStatus], problems: [], load: undefined },
      NOW,
    ).conditions?.find((condition) => condition.type === 'Ready');
    expect(cdnReady).toMatchObject({ status: 'False', reason: 'ImagePullFailed' });
    expect(cdnReady?.message).toContain('eu: origins 0/1, edges 0/1 ready');
    expect(cdnReady?.message).toContain(
      'Node live-eu-origin: 0/1 media nodes ready; pod live-eu-origin-0: ErrImagePull',
    );
  });
});
