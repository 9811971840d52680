import { z } from 'zod';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Parses environment variables with `schema`; throws ConfigError with a one-line message that
 * names the variable and the value it had — never a secret: the values of *SECRET*, *TOKEN*,
 * *PASSWORD* variables are not shown, and URLs are shown without their credentials. Shared with
 * the operator's config.
 */
export function parseEnvironment<Schema extends z.ZodTypeAny>(
  schema: Schema,
  env: NodeJS.ProcessEnv,
): z.output<Schema> {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const variable = String(issue.path[0] ?? 'environment');
  const raw = env[variable];
  const shown =
    raw === undefined || /SECRET|TOKEN|PASSWORD/i.test(variable)
      ? ''
      : ` (got ${JSON.stringify(withoutCredentials(raw))})`;
  throw new ConfigError(`invalid configuration: ${variable} ${issue.message}${shown}`);
}

/** An optional variable: unset and blank are the same (Kubernetes writes empty values). */
export const optionalNonEmpty = z
  .string()
  .optional()
  .transform((value) => (value === undefined || value.trim() === '' ? undefined : value.trim()));

/** true/false (or 1/0), with a default. */
export const booleanFlag = (fallback: 'true' | 'false') =>
  z
    .enum(['true', 'false', '1', '0'], { error: 'must be true or false' })
    .default(fallback)
    .transform((value) => value === 'true' || value === '1');

/** A whole number of milliseconds within [min, max], with a default. */
export const milliseconds = (fallback: number, min = 0, max = 3_600_000) =>
  z.coerce
    .number({ error: 'must be a number of milliseconds' })
    .int('must be an integer')
    .min(min, `must be at least ${min}`)
    .max(max, `must be at most ${max}`)
    .default(fallback);
/** scheme://user:password@host… → scheme://***@host… (config errors go to logs). */
function withoutCredentials(value: string): string {
  return value.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^@/?#]*@/, '$1***@');
}
