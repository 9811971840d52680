/**
 * A Stryker "ignorer": mutants that can only change what is written to the log are not counted
 * (Stryker reports them as Ignored, with this reason). Nothing else is ignored.
 *
 * Logging-only code is, exactly:
 *   - a statement that is only such a call (removing it removes a log line, nothing else);
 *   - a call of a log method (trace, debug, info, warn, error, fatal, or a computed one such as
 *     `request.log[level]`) on a logger — an expression whose last name is `log` or `logger`
 *     (`logger`, `this.#logger`, `options.logger`, `request.log`) — with all its arguments;
 *   - an arrow function whose body is such a call (`.catch((error) => logger.warn(...))`);
 *   - a block whose statements are all such calls, and an `if` without `else` whose branch is.
 * The arguments of our log calls have no side effects (checked when this was written; a log
 * call that computed state in its arguments would have to be written otherwise).
 */
import { declareValuePlugin, PluginKind } from '@stryker-mutator/api/plugin';

const LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal']);

/** `logger`, `log`, `this.#logger`, `this.#options.logger`, `request.log`. */
function isLogger(node) {
  if (!node) return false;
  if (node.type === 'Identifier') return /^(log|logger)$/i.test(node.name);
  if (node.type === 'MemberExpression' && !node.computed) {
    const property = node.property;
    const name = property.type === 'PrivateName' ? property.id.name : property.name;
    return /^(log|logger)$/i.test(name ?? '');
  }
  return false;
}

function isLogCall(node) {
  if (node?.type !== 'CallExpression') return false;
  const callee = node.callee;
  if (callee.type !== 'MemberExpression' || !isLogger(callee.object)) return false;
  if (callee.computed) return true; // request.log[level](...)
  return callee.property.type === 'Identifier' && LEVELS.has(callee.property.name);
}

function isLogStatement(node) {
  if (node?.type === 'ExpressionStatement') return isLogCall(node.expression);
  if (node?.type === 'BlockStatement') return node.body.length > 0 && node.body.every(isLogStatement);
  return false;
}

export const strykerPlugins = [
  declareValuePlugin(PluginKind.Ignore, 'logging', {
    shouldIgnore(path) {
      const node = path.node;
      if (isLogCall(node)) return 'logging only: a log call and its arguments';
      if (node.type === 'ArrowFunctionExpression' && isLogCall(node.body))
        return 'logging only: a function that only logs';
      if (node.type === 'ExpressionStatement' && isLogCall(node.expression))
        return 'logging only: a statement that only logs';
      if (isLogStatement(node) && node.type === 'BlockStatement')
        return 'logging only: a block that only logs';
      if (node.type === 'IfStatement' && !node.alternate && isLogStatement(node.consequent))
        return 'logging only: a condition that only decides whether to log';
      return undefined;
    },
  }),
];
