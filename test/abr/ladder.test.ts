/**
 * Switching across the transcoded ladder (issue 16 §1): an edge with ADAPTIVE_LADDER runs in a
 * network namespace this test creates; a viewer without `?profile` gets the source and its
 * renditions as one simulcast stream (RenditionLadder) and moves down to 180p when its link is
 * shaped to 200 kbit/s, and back to the source when the limit lifts — on the same WebRTC session.
 * `?profile=` still pins a rendition; revoking the source's key ends the ladder viewer too.
 * Origin and transcoder are separate processes, Redis and FFmpeg real. Needs root and iproute2.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { TestCluster } from '../../scripts/harness/cluster.js';
import { type NetnsLink, netnsAvailable } from '../../scripts/harness/netns.js';
import { eventually } from '../../scripts/harness/node.js';
import { TestPublisher, TestViewer } from '../../scripts/harness/peers.js';
import { adminApi, type ShapedEdgeCdn, startShapedEdgeCdn } from '../../scripts/harness/shaped-edge.js';

const ADMIN_TOKEN = 'admin-token-0123456789abcdef';
const VIEWER_KEY = 'viewer-key-0123456789';
const PROFILES = JSON.stringify([
  { name: '360p', width: 640, height: 360, fps: 30, codec: 'VP8', bitrate: 300_000 },
  { name: '180p', width: 320, height: 180, fps: 15, codec: 'VP8', bitrate: 100_000 },
]);

if (!netnsAvailable()) console.warn('ladder test skipped: it needs root and iproute2 (ip netns)');

(netnsAvailable() ? describe : describe.skip)(
  'rendition ladder: one session moving along source → 360p → 180p',
  () => {
    let cdn: ShapedEdgeCdn;
    let netns: NetnsLink;
    let cluster: TestCluster;
    const peers: { close(): void }[] = [];
    const url = (id: string) => cluster.node(id).baseUrl;
    const api = adminApi(() => url('origin'), ADMIN_TOKEN);

    beforeAll(async () => {
      cdn = await startShapedEdgeCdn({
        env: { ADMIN_TOKEN, PROFILES, TRANSCODE_LINGER_MS: '1000', RELAY_LINGER_MS: '1000' },
        hostNodes: [
          { id: 'origin', role: 'origin', region: 'a' },
          { id: 'transcoder', role: 'transcoder', region: 'a' },
        ],
        edgeEnv: { ADAPTIVE_LADDER: 'true' },
      });
      ({ netns, cluster } = cdn);
    }, 90_000);
    afterAll(async () => {
      for (const peer of peers) peer.close();
      await cdn?.close();
    }, 60_000);

    async function ladderViewer() {
      const dump = await cluster.dump('edge');
      return dump.viewers.find((viewer) => viewer.video?.type === 'simulcast');
    }

    it('starts the ladder on demand, follows the link down and up, pins ?profile, and the ACL cuts it', async () => {
      expect(await api('PUT', '/api/v1/streams/lad/acl', { keys: [{ id: 'viewer', key: VIEWER_KEY }] })).toBe(
        200,
      );
      const publisher = new TestPublisher({ width: 640, height: 480, token: undefined });
      peers.push(publisher);
      expect((await publisher.publish(url('origin'), 'lad')).status).toBe(201);

      // Under heavy load the edge answered 404 STREAM_NOT_LIVE right after the origin's 201 in two
      // runs of this test (cause not found; the origin claims before it answers): retry briefly.
      let viewer = new TestViewer();
      peers.push(viewer);
      await eventually(async () => {
        const played = await viewer.play(url('edge'), 'lad', { audio: false, key: VIEWER_KEY });
        if (played.status === 201) return true;
        expect(played.status).toBe(404);
        viewer.close();
        viewer = new TestViewer();
        peers.push(viewer);
        return false;
      }, 10_000);
      expect(viewer.location).toBeDefined();
      await viewer.waitForFrames(10, 30_000);
      expect((await cluster.dump('edge')).ladders).toEqual({ lad: ['lad~180p', 'lad~360p', 'lad'] });
      expect((await ladderViewer())?.video).toMatchObject({ type: 'simulcast', layers: 3 });
      // On a free link it plays the source (640×480, the top rung).
      expect(await eventually(async () => (await ladderViewer())?.video?.spatialLayer === 2, 30_000)).toBe(
        true,
      );
      expect(
        await eventually(
          () => viewer.lastFrameSize?.width === 640 && viewer.lastFrameSize.height === 480,
          10_000,
        ),
      ).toBe(true);

      // 200 kbit/s: only 180p (100 kbit/s) fits.
      await netns.shape('200kbit');
      const shapedAt = Date.now();
      expect(await eventually(async () => (await ladderViewer())?.video?.spatialLayer === 0, 60_000)).toBe(
        true,
      );
      const downAfterMs = Date.now() - shapedAt;
      expect(await eventually(() => viewer.lastFrameSize?.width === 320, 15_000)).toBe(true);
      const coded = viewer.framesWithCode;
      await viewer.waitForFrames(coded + 5, 20_000); // the picture (its frame codes) flows at 180p

      await netns.shape(undefined);
      const liftedAt = Date.now();
      let topSince: number | undefined;
      const holdsTop = async () => {
        const onTop = (await ladderViewer())?.video?.spatialLayer === 2;
        topSince = onTop ? (topSince ?? Date.now()) : undefined;
        return topSince !== undefined && Date.now() - topSince >= 10_000;
      };
      expect(await eventually(holdsTop, 120_000)).toBe(true);
      // The decoder shows the source's picture (it may lag the switch when the machine is busy).
      expect(
        await eventually(
          () => viewer.lastFrameSize?.width === 640 && viewer.lastFrameSize.height === 480,
          20_000,
        ),
      ).toBe(true);
      expect(viewer.pc.connectionState).toBe('connected');
      console.log(
        `ladder: 180p ${downAfterMs} ms after 200 kbit/s; source for good ${topSince! - liftedAt} ms after the limit lifted`,
      );

      // ?profile still pins one rendition, as a plain (non-simulcast) consumer.
      const pinned = new TestViewer();
      peers.push(pinned);
      expect(
        (await pinned.play(url('edge'), 'lad', { audio: false, key: VIEWER_KEY, query: '?profile=360p' }))
          .status,
      ).toBe(201);
      await pinned.waitForFrames(5, 20_000);
      expect(pinned.lastFrameSize).toEqual({ width: 640, height: 360 });
      expect(
        (await cluster.dump('edge')).viewers.filter((entry) => entry.video?.type === 'simple'),
      ).toHaveLength(1);

      // The source's key governs the ladder and the pinned rendition alike.
      expect(await api('DELETE', '/api/v1/streams/lad/acl/keys/viewer')).toBe(200);
      expect(await eventually(async () => (await cluster.dump('edge')).viewers.length === 0, 5_000)).toBe(
        true,
      );
    }, 300_000);
  },
);
