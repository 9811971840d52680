import type { z } from 'zod';

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

/** scheme://user:password@host… → scheme://***@host… (config errors go to logs). */
function withoutCredentials(value: string): string {
  return value.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^@/?#]*@/, '$1***@');
}
