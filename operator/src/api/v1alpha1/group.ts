/** The API group and version of the rtccdn custom resources. */
export const GROUP = 'rtccdn.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}` as const;
/** `kubectl get rtccdn` lists every kind of the project. */
export const CATEGORY = 'rtccdn';
