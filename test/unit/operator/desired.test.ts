/**
 * The pure desired-state functions of the CDN and Node controllers: which objects a CDN turns
 * into, with which names, labels, selectors and ownerReferences, and the media node's container
 * contract (env, ports, probes) filled in from a Node and its CDN. No API server here: the
 * controllers' tests (controllers.test.ts) check the same objects against a real one.
 */
import { describe, expect, it } from '@jest/globals';
import type { V1EnvVar } from '@kubernetes/client-node';
import { EnvSchema as MediaNodeEnvSchema } from '../../../media-node/src/config.js';
import {
  API_VERSION,
  type CDN,
  type CDNInput,
  type CDNNode,
  CDNNodeSchema,
  CDNSchema,
} from '../../../operator/src/api/v1alpha1.js';
import {
  cdnStatus,
  configMapData,
  desiredClusterSecret,
  planCdn,
} from '../../../operator/src/controllers/cdn/desired.js';
import {
  EDGE_TERMINATION_GRACE_SECONDS,
  mediaNodeEnv,
  nodeStatus,
  planNode,
  selectorString,
  TERMINATION_GRACE_SECONDS,
} from '../../../operator/src/controllers/node/desired.js';
import {
  ANNOTATIONS,
  MEDIA_NODE_DRAIN_DEADLINE_MS,
  MEDIA_NODE_SHUTDOWN_TIMEOUT_MS,
  podOrdinal,
  redisPrefixFor,
  workloadNameProblem,
} from '../../../operator/src/controllers/shared.js';

const NOW = new Date('2025-01-01T00:00:00Z');

function cdn(spec: Partial<CDNInput['spec']> = {}, metadata: Partial<CDN['metadata']> = {}): CDN {
  return CDNSchema.parse({
    apiVersion: API_VERSION,
    kind: 'CDN',
    metadata: { name: 'live', namespace: 'media', uid: 'cdn-uid', generation: 3, ...metadata },
    spec: {
      image: 'ghcr.io/rtccdn/media-node:0.1.0',
      redis: { url: 'redis://redis:6379' },
      regions: [{ name: 'eu-west' }],
      ...spec,
    },
  });
}

function nodeOf(owner: CDN, role: 'origin' | 'edge' | 'transcoder', replicas = 2): CDNNode {
  const desired = planCdn(owner).nodes.find((node) => node.spec.role === role);
  if (!desired) throw new Error(`no ${role} node planned`);
  return CDNNodeSchema.parse({
    ...desired,
    metadata: { ...desired.metadata, uid: `${role}-uid`, generation: 1 },
    spec: { ...desired.spec, replicas },
  });
}

const envByName = (env: V1EnvVar[]): Record<string, V1EnvVar> =>
  Object.fromEntries(env.map((variable) => [variable.name, variable]));

describe('planCdn', () => {
  it('plans an origin and an edge Node per region, owned by the CDN, with the roles labelled', () => {
    const plan = planCdn(
      cdn({ regions: [{ name: 'eu-west' }, { name: 'us-east', transcoders: { replicas: 1 } }] }),
    );
    expect(plan.problems).toEqual([]);
    expect(plan.nodes.map((node) => node.metadata.name)).toEqual([
      'live-eu-west-origin',
      'live-eu-west-edge',
      'live-us-east-origin',
      'live-us-east-edge',
      'live-us-east-transcoder',
    ]);
    for (const node of plan.nodes) {
      expect(node.metadata.namespace).toBe('media');
      expect(node.metadata.ownerReferences).toEqual([
        {
          apiVersion: API_VERSION,
          kind: 'CDN',
          name: 'live',
          uid: 'cdn-uid',
          controller: true,
          blockOwnerDeletion: true,
        },
      ]);
      expect(node.metadata.labels).toEqual({
        'app.kubernetes.io/managed-by': 'rtccdn-operator',
        'rtccdn.io/cdn': 'live',
        'rtccdn.io/region': node.spec.region,
        'rtccdn.io/role': node.spec.role,
      });
      expect(node.spec.cdnRef).toEqual({ name: 'live' });
      expect(node.spec.ports).toEqual({ rtcPortBase: 40000, workers: 2 });
      // The Node must be valid for the CRD schema as the operator writes it.
      expect(CDNNodeSchema.safeParse({ ...node, spec: { ...node.spec } }).success).toBe(true);
    }
  });

  it('leaves edge replicas to the autoscaler and sets origin and transcoder replicas from the CDN', () => {
    const plan = planCdn(
      cdn({ regions: [{ name: 'eu-west', origins: { replicas: 3 }, transcoders: { replicas: 2 } }] }),
    );
    const replicas = Object.fromEntries(plan.nodes.map((node) => [node.spec.role, node.spec.replicas]));
    expect(replicas).toEqual({ origin: 3, edge: undefined, transcoder: 2 });
    expect('replicas' in plan.nodes.find((node) => node.spec.role === 'edge')!.spec).toBe(false);
  });

  it('gives Nodes the resources of their role', () => {
    const plan = planCdn(cdn({ resources: { edge: { requests: { cpu: '4' } } } }));
    expect(plan.nodes.find((node) => node.spec.role === 'edge')!.spec.resources).toEqual({
      requests: { cpu: '4' },
    });
    expect(plan.nodes.find((node) => node.spec.role === 'origin')!.spec.resources).toBeUndefined();
  });

  it('plans ClusterIP Services for origins (WHIP) and edges (WHEP) selecting the pods of the region and role', () => {
    const plan = planCdn(cdn());
    expect(plan.services.map((service) => service.metadata.name)).toEqual([
      'live-eu-west-origin',
      'live-eu-west-edge',
    ]);
    const edge = plan.services[1]!;
    expect(edge.spec).toEqual({
      type: 'ClusterIP',
      selector: {
        'app.kubernetes.io/name': 'rtccdn-media-node',
        'app.kubernetes.io/managed-by': 'rtccdn-operator',
        'rtccdn.io/cdn': 'live',
        'rtccdn.io/region': 'eu-west',
        'rtccdn.io/role': 'edge',
      },
      ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }],
    });
    expect(edge.metadata.ownerReferences?.[0]).toMatchObject({
      kind: 'CDN',
      uid: 'cdn-uid',
      controller: true,
    });
  });

  it('puts the shared non-secret configuration in the ConfigMap', () => {
    const owner = cdn({
      acl: { defaultPolicy: 'deny' },
      profiles: [{ name: '720p', width: 1280, height: 720, bitrate: 2_500_000 }],
    });
    const { configMap } = planCdn(owner);
    expect(configMap.metadata.name).toBe('live-config');
    expect(configMap.data).toEqual({
      ACL_DEFAULT_POLICY: 'deny',
      ADAPTIVE_LADDER: 'false',
      PROFILES: JSON.stringify([
        { name: '720p', width: 1280, height: 720, fps: 30, codec: 'VP8', bitrate: 2_500_000 },
      ]),
      REDIS_PREFIX: 'rtccdn:media.live:',
    });
    expect(configMapData(cdn()).PROFILES).toBe('[]');
    expect(configMapData(cdn({ adaptiveLadder: true })).ADAPTIVE_LADDER).toBe('true');
  });

  it('reports a region whose StatefulSet names would be invalid instead of deploying it', () => {
    const long = 'a'.repeat(41); // live-<41>-origin is 53 characters
    const plan = planCdn(cdn({ regions: [{ name: 'eu-west' }, { name: long }] }));
    expect(plan.nodes.map((node) => node.spec.region)).toEqual(['eu-west', 'eu-west']);
    expect(plan.problems).toEqual([
      { reason: 'InvalidName', message: expect.stringContaining(`region ${long} is not deployed`) },
    ]);
    // A CDN name starting with a digit cannot name a Service.
    expect(planCdn(cdn({}, { name: '1live' })).problems[0]?.reason).toBe('InvalidName');
  });

  it('makes a cluster Secret owned by the CDN', () => {
    const secret = desiredClusterSecret(cdn(), 'x'.repeat(43));
    expect(secret.metadata).toMatchObject({ name: 'live-cluster', namespace: 'media' });
    expect(secret.stringData).toEqual({ clusterSecret: 'x'.repeat(43) });
    expect(secret.metadata.ownerReferences?.[0]).toMatchObject({ kind: 'CDN', controller: true });
  });
});

describe('planNode', () => {
  const owner = cdn({
    redis: { secretRef: { name: 'redis', key: 'url' } },
    publishTokenSecretRef: { name: 'publish', key: 'token' },
    network: { exposure: 'hostPort', rtcPortBase: 41000, workersPerNode: 3 },
  });

  it('fills in the media node container contract, every variable valid for the media node', () => {
    const origin = nodeOf(owner, 'origin');
    const env = envByName(mediaNodeEnv(origin, owner));
    expect(Object.keys(env)).toEqual([
      'ROLE',
      'REGION',
      'NODE_ID',
      'INTERNAL_ADDRESS',
      'ANNOUNCED_IP',
      'PORT',
      'INTERNAL_PORT',
      'RTC_PORT',
      'WORKERS',
      'REDIS_URL',
      'REDIS_PREFIX',
      'CLUSTER_SECRET',
      'PUBLISH_TOKEN',
      'ACL_DEFAULT_POLICY',
      'ACL_API',
      'PROFILES',
      'LOG_LEVEL',
      'SHUTDOWN_TIMEOUT_MS',
      'DEMO_PAGE',
    ]);
    expect(env.ROLE).toEqual({ name: 'ROLE', value: 'origin' });
    expect(env.REGION).toEqual({ name: 'REGION', value: 'eu-west' });
    expect(env.NODE_ID?.valueFrom).toEqual({ fieldRef: { fieldPath: 'metadata.name' } });
    expect(env.INTERNAL_ADDRESS?.valueFrom).toEqual({ fieldRef: { fieldPath: 'status.podIP' } });
    expect(env.ANNOUNCED_IP?.valueFrom).toEqual({ fieldRef: { fieldPath: 'status.hostIP' } });
    expect(env.RTC_PORT?.value).toBe('41000');
    expect(env.WORKERS?.value).toBe('3');
    expect(env.REDIS_URL?.valueFrom).toEqual({ secretKeyRef: { name: 'redis', key: 'url' } });
    expect(env.CLUSTER_SECRET?.valueFrom).toEqual({
      secretKeyRef: { name: 'live-cluster', key: 'clusterSecret' },
    });
    expect(env.PUBLISH_TOKEN?.valueFrom).toEqual({ secretKeyRef: { name: 'publish', key: 'token' } });
    for (const key of ['REDIS_PREFIX', 'ACL_DEFAULT_POLICY', 'PROFILES']) {
      expect(env[key]?.valueFrom).toEqual({ configMapKeyRef: { name: 'live-config', key } });
    }

    // Resolve every reference the way the kubelet would, and hand the result to the media
    // node's own schema: what the operator writes, the media node accepts.
    const config = configMapData(owner);
    const resolve = (variable: V1EnvVar): string => {
      const from = variable.valueFrom;
      if (variable.value !== undefined) return variable.value;
      if (from?.fieldRef)
        return from.fieldRef.fieldPath === 'metadata.name' ? 'live-eu-west-origin-0' : '10.0.0.7';
      if (from?.configMapKeyRef) return config[from.configMapKeyRef.key]!;
      if (from?.secretKeyRef) return from.secretKeyRef.key === 'url' ? 'redis://redis:6379' : 's'.repeat(43);
      throw new Error(`${variable.name} has no value`);
    };
    const resolved = Object.fromEntries(
      Object.values(env).map((variable) => [variable.name, resolve(variable)]),
    );
    const parsed = MediaNodeEnvSchema.safeParse(resolved);
    expect(parsed.success ? [] : parsed.error.issues).toEqual([]);
  });

  it('gives the publish token to origins only, and an announced address when the CDN sets one', () => {
    const edgeEnv = envByName(mediaNodeEnv(nodeOf(owner, 'edge'), owner));
    expect(edgeEnv.PUBLISH_TOKEN).toBeUndefined();
    expect(edgeEnv.ROLE?.value).toBe('edge');
    // Edges, where viewers play, take the CDN's ladder switch (optional: an older ConfigMap lacks it).
    expect(edgeEnv.ADAPTIVE_LADDER?.valueFrom).toEqual({
      configMapKeyRef: { name: 'live-config', key: 'ADAPTIVE_LADDER', optional: true },
    });
    expect(MediaNodeEnvSchema.shape.ADAPTIVE_LADDER.parse(configMapData(owner).ADAPTIVE_LADDER)).toBe(false);
    const natted = cdn({ network: { announcedAddress: 'media.example.com' } });
    expect(envByName(mediaNodeEnv(nodeOf(natted, 'edge'), natted)).ANNOUNCED_IP).toEqual({
      name: 'ANNOUNCED_IP',
      value: 'media.example.com',
    });
  });

  it('plans a StatefulSet with host ports per worker, anti-affinity, probes and a grace period matching the shutdown timeout', () => {
    const edge = nodeOf(owner, 'edge', 3);
    const plan = planNode(edge, { cdn: owner, clusterSecretHash: 'abc' });
    expect(plan.problems).toEqual([]);
    const set = plan.statefulSet!;
    expect(set.metadata).toMatchObject({ name: 'live-eu-west-edge', namespace: 'media' });
    expect(set.metadata.ownerReferences).toEqual([
      {
        apiVersion: API_VERSION,
        kind: 'Node',
        name: 'live-eu-west-edge',
        uid: 'edge-uid',
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);
    const spec = set.spec!;
    expect(spec.replicas).toBe(3);
    expect(spec.serviceName).toBe('live-eu-west-edge-pods');
    expect(spec.podManagementPolicy).toBe('Parallel');
    // Edges are rolled by the operator, drained first (rollout.ts); others by the StatefulSet.
    expect(spec.updateStrategy).toEqual({ type: 'OnDelete' });
    expect(planNode(nodeOf(owner, 'origin'), { cdn: owner }).statefulSet!.spec!.updateStrategy).toEqual({
      type: 'RollingUpdate',
    });
    // A rollout's surge pod runs on top of spec.replicas.
    expect(planNode(edge, { cdn: owner, surge: 1 }).statefulSet!.spec!.replicas).toBe(4);
    expect(spec.selector).toEqual({
      matchLabels: { 'app.kubernetes.io/name': 'rtccdn-media-node', 'rtccdn.io/node': 'live-eu-west-edge' },
    });
    const template = spec.template;
    // The selector selects the pods; the role Services' selector too.
    expect(template.metadata?.labels).toMatchObject(spec.selector.matchLabels!);
    expect(template.metadata?.labels).toMatchObject(planCdn(owner).services[1]!.spec!.selector!);
    expect(template.metadata?.annotations?.[ANNOTATIONS.configHash]).toMatch(/^[0-9a-f]{16}$/);
    const pod = template.spec!;
    expect(pod.enableServiceLinks).toBe(false);
    expect(pod.hostNetwork).toBeUndefined();
    expect(pod.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution).toEqual([
      { labelSelector: { matchLabels: spec.selector.matchLabels }, topologyKey: 'kubernetes.io/hostname' },
    ]);
    const container = pod.containers[0]!;
    expect(container.image).toBe('ghcr.io/rtccdn/media-node:0.1.0');
    expect(container.ports).toEqual([
      { name: 'http', containerPort: 8080, protocol: 'TCP' },
      { name: 'internal', containerPort: 8081, protocol: 'TCP' },
      { name: 'rtc-udp-0', containerPort: 41000, protocol: 'UDP', hostPort: 41000 },
      { name: 'rtc-tcp-0', containerPort: 41000, protocol: 'TCP', hostPort: 41000 },
      { name: 'rtc-udp-1', containerPort: 41001, protocol: 'UDP', hostPort: 41001 },
      { name: 'rtc-tcp-1', containerPort: 41001, protocol: 'TCP', hostPort: 41001 },
      { name: 'rtc-udp-2', containerPort: 41002, protocol: 'UDP', hostPort: 41002 },
      { name: 'rtc-tcp-2', containerPort: 41002, protocol: 'TCP', hostPort: 41002 },
    ]);
    expect(container.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect(container.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(container.lifecycle?.preStop?.sleep?.seconds).toBeGreaterThan(0);
    // SIGTERM comes after preStop; an edge with viewers then drains for up to DRAIN_DEADLINE_MS
    // and shuts down within SHUTDOWN_TIMEOUT_MS: the grace period covers all three.
    expect(pod.terminationGracePeriodSeconds).toBe(EDGE_TERMINATION_GRACE_SECONDS);
    expect(EDGE_TERMINATION_GRACE_SECONDS).toBeGreaterThan(
      container.lifecycle!.preStop!.sleep!.seconds +
        (MEDIA_NODE_DRAIN_DEADLINE_MS + MEDIA_NODE_SHUTDOWN_TIMEOUT_MS) / 1000,
    );
    expect(envByName(container.env!).DRAIN_DEADLINE_MS?.value).toBe(String(MEDIA_NODE_DRAIN_DEADLINE_MS));
    // Origins do not drain viewers: their grace period is the shutdown's alone.
    const origin = planNode(nodeOf(owner, 'origin'), { cdn: owner }).statefulSet!.spec!.template.spec!;
    expect(origin.terminationGracePeriodSeconds).toBe(TERMINATION_GRACE_SECONDS);
    expect(envByName(origin.containers[0]!.env!).DRAIN_DEADLINE_MS).toBeUndefined();
    // Evicted from a lost Kubernetes node after 30 s, not the default 300 s.
    expect(pod.tolerations?.map((t) => [t.key, t.effect, t.tolerationSeconds])).toEqual([
      ['node.kubernetes.io/unreachable', 'NoExecute', 30],
      ['node.kubernetes.io/not-ready', 'NoExecute', 30],
    ]);
    expect(TERMINATION_GRACE_SECONDS).toBeGreaterThan(
      container.lifecycle!.preStop!.sleep!.seconds + MEDIA_NODE_SHUTDOWN_TIMEOUT_MS / 1000,
    );
    expect(envByName(container.env!).SHUTDOWN_TIMEOUT_MS?.value).toBe(String(MEDIA_NODE_SHUTDOWN_TIMEOUT_MS));
  });

  it('uses the host network when asked, and plans a headless Service for stable pod names', () => {
    const hostNetwork = cdn({ network: { exposure: 'hostNetwork' } });
    const plan = planNode(nodeOf(hostNetwork, 'origin'), { cdn: hostNetwork });
    expect(plan.statefulSet!.spec!.template.spec).toMatchObject({
      hostNetwork: true,
      dnsPolicy: 'ClusterFirstWithHostNet',
    });
    expect(plan.headlessService).toMatchObject({
      metadata: { name: 'live-eu-west-origin-pods' },
      spec: {
        clusterIP: 'None',
        publishNotReadyAddresses: true,
        selector: { 'app.kubernetes.io/name': 'rtccdn-media-node', 'rtccdn.io/node': 'live-eu-west-origin' },
      },
    });
  });

  it('plans a PodDisruptionBudget per group: evictions take one of its pods at a time, unready ones always', () => {
    for (const role of ['edge', 'origin'] as const) {
      const node = nodeOf(owner, role, 3);
      const plan = planNode(node, { cdn: owner });
      const name = `live-eu-west-${role}`;
      expect(plan.podDisruptionBudget).toEqual({
        apiVersion: 'policy/v1',
        kind: 'PodDisruptionBudget',
        metadata: {
          name,
          namespace: 'media',
          labels: plan.statefulSet!.metadata.labels,
          ownerReferences: plan.statefulSet!.metadata.ownerReferences,
        },
        spec: {
          maxUnavailable: 1,
          // The StatefulSet's own pods, and only them.
          selector: { matchLabels: plan.statefulSet!.spec!.selector.matchLabels },
          unhealthyPodEvictionPolicy: 'AlwaysAllow',
        },
      });
      expect(plan.statefulSet!.spec!.selector.matchLabels).toEqual({
        'app.kubernetes.io/name': 'rtccdn-media-node',
        'rtccdn.io/node': name,
      });
    }
    // Owned by the Node: it goes with it.
    expect(
      planNode(nodeOf(owner, 'edge'), { cdn: owner }).podDisruptionBudget!.metadata.ownerReferences,
    ).toEqual([expect.objectContaining({ kind: 'Node', controller: true })]);
    // No budget for a Node that is not deployed.
    const longName = CDNNodeSchema.parse({
      ...nodeOf(owner, 'edge'),
      metadata: { name: 'x'.repeat(53), namespace: 'media', uid: 'u' },
    });
    expect(planNode(longName, { cdn: owner }).podDisruptionBudget).toBeUndefined();
  });

  it('rolls the pods when the shared configuration or the cluster secret changes, not otherwise', () => {
    const hash = (owner: CDN, secret?: string) =>
      planNode(nodeOf(owner, 'edge'), { cdn: owner, clusterSecretHash: secret }).statefulSet!.spec!.template
        .metadata!.annotations![ANNOTATIONS.configHash];
    const base = cdn();
    expect(hash(base, 'a')).toBe(hash(cdn(), 'a'));
    expect(hash(base, 'a')).not.toBe(hash(base, 'b'));
    expect(hash(base, 'a')).not.toBe(hash(cdn({ acl: { defaultPolicy: 'deny' } }), 'a'));
  });

  it('refuses nodePort exposure without pod slots and invalid names with a reason instead of a broken StatefulSet', () => {
    const nodePort = cdn({ network: { exposure: 'nodePort', announcedAddress: '203.0.113.7' } });
    // A Node written by hand, without the port block the CDN controller would give it.
    const handWritten = CDNNodeSchema.parse({
      ...nodeOf(nodePort, 'edge'),
      spec: { ...nodeOf(nodePort, 'edge').spec, ports: { rtcPortBase: 30000, workers: 2 } },
    });
    const plan = planNode(handWritten, { cdn: nodePort });
    expect(plan.statefulSet).toBeUndefined();
    expect(plan.problems[0]?.reason).toBe('PodSlotsMissing');
    const longName = CDNNodeSchema.parse({
      ...nodeOf(owner, 'edge'),
      metadata: { name: 'x'.repeat(53), namespace: 'media', uid: 'u' },
    });
    expect(planNode(longName, { cdn: owner }).problems[0]?.reason).toBe('InvalidName');
  });
});

describe('status', () => {
  it('reports Node readiness from the StatefulSet, the string selector, and load when known', () => {
    const edge = nodeOf(cdn(), 'edge', 2);
    const set = {
      metadata: { name: 'live-eu-west-edge', generation: 4 },
      status: { replicas: 2, readyReplicas: 1, updatedReplicas: 2, observedGeneration: 4 },
    };
    const notReady = nodeStatus(
      edge,
      { statefulSet: set, problems: [], load: { viewers: 7, streams: 2 } },
      NOW,
    );
    expect(notReady).toMatchObject({
      replicas: 2,
      readyReplicas: 1,
      selector: selectorString('live-eu-west-edge'),
      viewers: 7,
      streams: 2,
      observedGeneration: 1,
    });
    expect(notReady.selector).toBe(
      'app.kubernetes.io/name=rtccdn-media-node,rtccdn.io/node=live-eu-west-edge',
    );
    expect(notReady.conditions).toEqual([
      {
        type: 'Ready',
        status: 'False',
        reason: 'PodsNotReady',
        message: '1/2 media nodes ready',
        lastTransitionTime: '2025-01-01T00:00:00Z',
        observedGeneration: 1,
      },
      // Edges also say whether the operator is rolling them (drain first, one at a time).
      {
        type: 'RolloutInProgress',
        status: 'False',
        reason: 'RolloutComplete',
        message: 'every pod runs the current revision',
        lastTransitionTime: '2025-01-01T00:00:00Z',
        observedGeneration: 1,
      },
    ]);
    const rolling = nodeStatus(
      edge,
      {
        statefulSet: set,
        problems: [],
        load: undefined,
        rollout: { reason: 'PodDraining', message: 'pod 1 draining: 3 viewers left, deadline in 40 s' },
      },
      NOW,
    );
    expect(rolling.conditions?.[1]).toMatchObject({
      type: 'RolloutInProgress',
      status: 'True',
      reason: 'PodDraining',
      message: 'pod 1 draining: 3 viewers left, deadline in 40 s',
    });
    const ready = nodeStatus(
      { ...edge, status: notReady },
      { statefulSet: { ...set, status: { ...set.status, readyReplicas: 2 } }, problems: [], load: undefined },
      new Date('2025-01-01T00:01:00Z'),
    );
    expect(ready.viewers).toBeUndefined();
    expect(ready.conditions?.[0]).toMatchObject({
      status: 'True',
      reason: 'PodsReady',
      lastTransitionTime: '2025-01-01T00:01:00Z',
    });
    // Same status again: the transition time stays.
    const again = nodeStatus(
      { ...edge, status: ready },
      { statefulSet: { ...set, status: { ...set.status, readyReplicas: 2 } }, problems: [], load: undefined },
      new Date('2025-01-01T00:05:00Z'),
    );
    expect(again.conditions?.[0]?.lastTransitionTime).toBe('2025-01-01T00:01:00Z');
  });

  it('reports the CDN Ready only when every region has its nodes, and Degraded with the first problem', () => {
    const owner = cdn({
      regions: [{ name: 'eu-west', origins: { replicas: 1 }, edges: { minReplicas: 2 } }],
    });
    const origin = { ...nodeOf(owner, 'origin', 1), status: { readyReplicas: 1 } };
    const edge = { ...nodeOf(owner, 'edge', 2), status: { readyReplicas: 1 } };
    const partial = cdnStatus(
      owner,
      { nodes: [origin, edge], problems: [], load: { liveStreams: 3, viewers: 40 } },
      NOW,
    );
    expect(partial).toMatchObject({
      observedGeneration: 3,
      regions: [{ name: 'eu-west', originsReady: 1, edgesReady: 1, edgesDesired: 2 }],
      liveStreams: 3,
      viewers: 40,
    });
    expect(
      partial.conditions?.map(({ type, status, reason, message }) => ({ type, status, reason, message })),
    ).toEqual([
      {
        type: 'Degraded',
        status: 'False',
        reason: 'AsExpected',
        message: 'the CDN is deployed as specified',
      },
      { type: 'Ready', status: 'False', reason: 'NodesNotReady', message: 'eu-west: edges 1/2 ready' },
    ]);
    const ready = cdnStatus(
      owner,
      { nodes: [origin, { ...edge, status: { readyReplicas: 2 } }], problems: [], load: undefined },
      NOW,
    );
    expect(ready.conditions?.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'True',
      reason: 'NodesReady',
    });
    expect(ready.liveStreams).toBeUndefined();

    const broken = cdnStatus(
      owner,
      {
        nodes: [origin, edge],
        problems: [{ reason: 'RedisSecretMissing', message: 'Secret redis not found' }],
        load: undefined,
      },
      NOW,
    );
    expect(broken.conditions?.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'False',
      reason: 'RedisSecretMissing',
    });
    expect(broken.conditions?.find((c) => c.type === 'Degraded')).toMatchObject({
      status: 'True',
      reason: 'RedisSecretMissing',
    });
    const unreachable = cdnStatus(
      owner,
      {
        nodes: [],
        problems: [],
        load: undefined,
        loadProblem: { reason: 'RedisUnreachable', message: 'ECONNREFUSED' },
      },
      NOW,
    );
    expect(unreachable.conditions?.find((c) => c.type === 'Degraded')).toMatchObject({
      status: 'True',
      reason: 'RedisUnreachable',
    });
    expect(unreachable.conditions?.find((c) => c.type === 'Ready')?.reason).toBe('NodesNotReady');
  });
});

describe('names', () => {
  it('limits workload names to 52 characters of DNS-1035', () => {
    expect(workloadNameProblem('live-eu-west-edge')).toBeUndefined();
    expect(workloadNameProblem('a'.repeat(52))).toBeUndefined();
    expect(workloadNameProblem('a'.repeat(53))).toMatch(/limited to 52/);
    expect(workloadNameProblem('1live')).toMatch(/DNS-1035/);
    expect(workloadNameProblem('live.tv-eu-edge')).toMatch(/DNS-1035/);
  });

  it('finds pod ordinals of a StatefulSet and nothing else', () => {
    expect(podOrdinal('live-eu-edge', 'live-eu-edge-0')).toBe(0);
    expect(podOrdinal('live-eu-edge', 'live-eu-edge-12')).toBe(12);
    expect(podOrdinal('live-eu-edge', 'live-eu-edge-01')).toBeUndefined();
    expect(podOrdinal('live-eu-edge', 'live-eu-edge-pods')).toBeUndefined();
    expect(podOrdinal('live-eu', 'live-eu-edge-1')).toBeUndefined();
  });

  it('gives each CDN its own Redis prefix, within the layout limit', () => {
    expect(redisPrefixFor('media', 'live')).toBe('rtccdn:media.live:');
    const long = redisPrefixFor('n'.repeat(63), 'c'.repeat(200));
    expect(long).toMatch(/^rtccdn:[0-9a-f]{32}:$/);
    expect(long.length).toBeLessThanOrEqual(64);
    // Namespaces are DNS labels (no dots), so namespace.cdn parses back unambiguously.
  });
});
