/**
 * `target` seen through a proxy whose methods named in `overrides` are
 * replaced; every other method is bound to `target` (once, then cached) and
 * every other property read through.
 */
export function withMethods<T extends object>(target: T, overrides: Map<PropertyKey, unknown>): T {
  const methods = new Map(overrides);
  return new Proxy(target, {
    get(t, prop) {
      const known = methods.get(prop);
      if (known !== undefined) return known;
      const v = Reflect.get(t, prop, t);
      if (typeof v !== 'function') return v;
      const bound = v.bind(t);
      methods.set(prop, bound);
      return bound;
    },
  });
}
