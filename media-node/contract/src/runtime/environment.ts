import type { z } from 'zod';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Parses environment variables with `schema`; throws ConfigError with a one-line message that
 * names the variable and the value it had. Shared with the operator's config.
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
  const shown = raw === undefined ? '' : ` (got ${JSON.stringify(raw)})`;
  throw new ConfigError(`invalid configuration: ${variable} ${issue.message}${shown}`);
}
