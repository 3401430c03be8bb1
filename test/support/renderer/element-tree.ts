/**
 * A shallow look into a React element tree without a DOM (the unit tests run in Node): calls the
 * function components that use no hooks, so a test can find an element by its `data-testid` and
 * call its handler the way a click would. A component that uses hooks cannot be called outside
 * React; it is left as it is, and only the children it was given are searched.
 */
import { isValidElement, type ReactElement, type ReactNode } from 'react';

type Props = Record<string, unknown> & { children?: ReactNode };

/** A component that needs React to render it (it calls hooks) throws when called bare. */
function expand(element: ReactElement<Props>): ReactNode | undefined {
  if (typeof element.type !== 'function') return undefined;
  const quiet = console.error;
  // React logs "Invalid hook call" before it throws; here that is expected, not a failure.
  console.error = () => undefined;
  try {
    return (element.type as (props: Props) => ReactNode)(element.props);
  } catch {
    return undefined;
  } finally {
    console.error = quiet;
  }
}

/** Every host element (div, button…) reachable from `node`, in document order. */
export function hostElements(node: ReactNode): ReactElement<Props>[] {
  const found: ReactElement<Props>[] = [];
  const visit = (n: ReactNode): void => {
    if (Array.isArray(n)) return n.forEach(visit);
    if (!isValidElement<Props>(n)) return;
    if (typeof n.type === 'string') found.push(n);
    const rendered = expand(n);
    if (rendered !== undefined) return visit(rendered);
    visit(n.props.children);
  };
  visit(node);
  return found;
}

export function byTestId(node: ReactNode, testId: string): ReactElement<Props> {
  const matches = hostElements(node).filter((e) => e.props['data-testid'] === testId);
  if (matches.length !== 1) throw new Error(`expected one element with data-testid="${testId}", found ${matches.length}`);
  return matches[0] as ReactElement<Props>;
}

/** Calls the element's handler, as the browser would for that event. */
export function fire(element: ReactElement<Props>, handler: 'onClick' | 'onChange', event: unknown = {}): void {
  const fn = element.props[handler];
  if (typeof fn !== 'function') throw new Error(`the element has no ${handler}`);
  (fn as (event: unknown) => void)(event);
}
