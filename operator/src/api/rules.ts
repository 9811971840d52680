/**
 * CEL rules next to the zod schemas, and the list and default helpers built on them: the
 * schema tooling of every API version (see v1alpha1.ts for how it is used).
 *
 * Each CEL rule carries its TypeScript twin (`violation`), run by zod's parse, so the operator
 * and the API server reject the same objects with the same message. Rules that compare with
 * the previous object (`oldSelf`, e.g. immutable fields) exist only on the server.
 */
import { z } from 'zod';

/** Metadata key under which a schema's CEL rules are stored (emitted verbatim into the CRD). */
export const X_VALIDATIONS = 'x-kubernetes-validations';
export const X_LIST_TYPE = 'x-kubernetes-list-type';
export const X_LIST_MAP_KEYS = 'x-kubernetes-list-map-keys';
export const X_INT_OR_STRING = 'x-kubernetes-int-or-string';

/** One entry of `x-kubernetes-validations`, as the API server reads it. */
export interface CelValidation {
  rule: string;
  message: string;
  /** Field the error is reported on, relative to the schema holding the rule (e.g. `.minReplicas`). */
  fieldPath?: string;
  /**
   * Error type reported. Beware: FieldValueDuplicate and FieldValueRequired drop the message
   * (the API server prints only "Duplicate value" / "Required value").
   */
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
}

/** A CEL rule and its TypeScript twin. */
export interface Rule<T> extends CelValidation {
  /**
   * The same check in TypeScript, run by zod's parse: returns the path (relative to the value,
   * `[]` for the value itself) of the first violation, or `undefined` when the value is valid.
   * Omitted only for transition rules (`oldSelf`), which need the previous object.
   */
  violation?: (value: T) => PropertyKey[] | undefined;
}

/**
 * Attaches CEL rules to a schema: they become `x-kubernetes-validations` in the CRD (appended to
 * rules already attached) and, through each rule's `violation`, zod refinements with the same
 * message.
 */
export function withRules<S extends z.ZodType>(schema: S, rules: readonly Rule<z.output<S>>[]): S {
  let refined = schema;
  for (const { message, violation } of rules) {
    if (!violation) continue;
    refined = refined.superRefine((value, ctx) => {
      const path = violation(value);
      if (path) ctx.addIssue({ code: 'custom', message, path, input: value });
    });
  }
  const existing = (z.globalRegistry.get(schema)?.[X_VALIDATIONS] as CelValidation[] | undefined) ?? [];
  const cel = rules.map(({ rule, message, fieldPath, reason }) => ({
    rule,
    message,
    ...(fieldPath === undefined ? {} : { fieldPath }),
    ...(reason === undefined ? {} : { reason }),
  }));
  return refined.meta({ [X_VALIDATIONS]: [...existing, ...cel] });
}

/** Exactly one of two optional fields of an object must be set. */
export function exactlyOneOf<T extends object>(a: keyof T & string, b: keyof T & string): Rule<T> {
  return {
    rule: `has(self.${a}) != has(self.${b})`,
    message: `exactly one of ${a} or ${b} must be set`,
    violation: (value) => ((value[a] === undefined) === (value[b] === undefined) ? [] : undefined),
  };
}

/** The items of a list have distinct values of `key` (reported on the first duplicate). */
export function uniqueBy<T extends object>(key: keyof T & string, message: string): Rule<T[]> {
  return {
    rule: `self.all(x, self.exists_one(y, y.${key} == x.${key}))`,
    message,
    violation: (items) => {
      const seen = new Set<unknown>();
      for (const [index, item] of items.entries()) {
        if (seen.has(item[key])) return [index, key];
        seen.add(item[key]);
      }
      return undefined;
    },
  };
}

/** A transition rule: the field cannot change once set (checked by the API server only). */
export function immutable(message: string): Rule<unknown> {
  return { rule: 'self == oldSelf', message };
}

/**
 * A list keyed by `key` (`x-kubernetes-list-type: map`): server-side apply merges its items by
 * key instead of replacing the whole list, and duplicate keys are rejected (with a CEL rule for a
 * readable message, twinned in zod).
 */
export function keyedList<I extends z.ZodObject>(
  item: I,
  key: keyof z.output<I> & string,
  duplicateMessage: string,
  bounds: { min?: number; max: number },
) {
  let list = z.array(item).max(bounds.max);
  if (bounds.min !== undefined) list = list.min(bounds.min);
  return withRules(list, [uniqueBy<z.output<I>>(key, duplicateMessage)]).meta({
    [X_LIST_TYPE]: 'map',
    [X_LIST_MAP_KEYS]: [key],
  });
}

/**
 * An object whose fields all have defaults, itself defaulted when omitted. The default is the
 * complete object (not `{}`): the API server evaluates CEL rules on a default value as written,
 * before nested defaults apply, so `{}` would fail a rule such as `self.min <= self.max`.
 */
export function defaulted<S extends z.ZodObject>(schema: S) {
  return schema.prefault(schema.parse({}) as z.input<S>);
}
