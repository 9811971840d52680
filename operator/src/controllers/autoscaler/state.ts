/**
 * The autoscaler's state, kept in an annotation of the edge Node it scales (not in memory):
 * a new leader continues a stabilization window or a drain where the previous one left it.
 */
import { z } from 'zod';
import { ANNOTATIONS } from '../shared.js';
import type { ScalerState } from './decide.js';

const AnnotationSchema = z.object({
  /** The last recommendation (also shown in the CDN status as edgesDesired). */
  desired: z.int().min(0),
  lastScaleTime: z.iso.datetime(),
  drain: z.object({ toReplicas: z.int().min(0), since: z.iso.datetime() }).optional(),
});
export type AutoscalerAnnotation = z.output<typeof AnnotationSchema>;

/** The state recorded on `node`, or undefined (none yet, or unreadable). */
export function autoscalerStateOf(node: {
  metadata: { annotations?: Record<string, string> | undefined };
}): AutoscalerAnnotation | undefined {
  const raw = node.metadata.annotations?.[ANNOTATIONS.autoscalerState];
  if (raw === undefined) return undefined;
  try {
    const result = AnnotationSchema.safeParse(JSON.parse(raw));
    return result.success ? result.data : undefined;
  } catch {
    return undefined;
  }
}

export function toScalerState(
  annotation: AutoscalerAnnotation | undefined,
  fallbackTime: number,
): ScalerState {
  if (!annotation) return { lastScaleTime: fallbackTime };
  return {
    lastScaleTime: Date.parse(annotation.lastScaleTime),
    ...(annotation.drain
      ? { drain: { toReplicas: annotation.drain.toReplicas, since: Date.parse(annotation.drain.since) } }
      : {}),
  };
}

/** Viewers are left out on purpose: they change all the time, and every change would be a write. */
export function encodeAutoscalerState(state: ScalerState, desired: number): string {
  const annotation: AutoscalerAnnotation = {
    desired,
    lastScaleTime: new Date(state.lastScaleTime).toISOString(),
    ...(state.drain
      ? { drain: { toReplicas: state.drain.toReplicas, since: new Date(state.drain.since).toISOString() } }
      : {}),
  };
  return JSON.stringify(annotation);
}
