/**
 * Kubernetes' name rules (k8s.io/apimachinery/pkg/util/validation), written once for the
 * operator: the CRD schemas, the configuration, the controllers and the ACL API check names
 * with these. Patterns leave the length out so that a CRD states it as maxLength.
 */
import { z } from 'zod';
import {
  DNS_LABEL_MAX_LENGTH,
  DNS_LABEL_PATTERN,
  dnsLabel,
  isDnsLabel,
} from '../../../media-node/contract/names.js';

/** RFC 1123 label: namespaces, region names, key ids (the media node's rule, from its contract). */
export { DNS_LABEL_MAX_LENGTH, DNS_LABEL_PATTERN, dnsLabel, isDnsLabel };

/** RFC 1123 subdomain (dot-separated labels): the names of most objects. */
export const DNS_SUBDOMAIN_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const DNS_SUBDOMAIN_MAX_LENGTH = 253;

/** RFC 1035 label: an RFC 1123 label that starts with a letter (Service names). */
export const DNS_1035_LABEL_PATTERN = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

/** A DNS subdomain; `message` is the error for any violation. */
export const dnsSubdomain = (message = 'must be a DNS subdomain (lowercase letters, digits, - and .)') =>
  z.string().min(1, message).max(DNS_SUBDOMAIN_MAX_LENGTH, message).regex(DNS_SUBDOMAIN_PATTERN, message);
